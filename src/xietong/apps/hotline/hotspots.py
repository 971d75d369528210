"""热点: clusters of tickets on one topic and place, per week, ranked, with a trend.

Tickets of the window are grouped by district, then clustered by text within a
district: each ticket joins the cluster whose centroid (mean TF-IDF vector of jieba
tokens) is closest, if the cosine similarity reaches ``JOIN_SIMILARITY``, else starts a
new one (single-pass leader clustering — fast, deterministic, and good enough for short
messages about one pothole or one noisy site). A cluster's label is its heaviest words.
Clusters are ranked by tickets in the latest week, then in the whole window; the trend
is the count per week, oldest first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from xietong.apps.hotline import text as textmod

JOIN_SIMILARITY = 0.3
MIN_TICKETS = 2
LABEL_WORDS = 4
MAX_FEATURES = 4000


@dataclass(frozen=True)
class HotItem:
    ref: str
    text: str
    district: str  # a name, or "" for the city as a whole
    week: date  # the Monday of the ticket's week (China time)


@dataclass(frozen=True)
class Hotspot:
    label: str
    keywords: list[str]
    district: str
    total: int
    latest: int
    trend: list[int]  # tickets per week, oldest first (aligned with ``weeks``)
    rising: bool
    refs: list[str]


@dataclass(frozen=True)
class HotspotReport:
    weeks: list[str]
    hotspots: list[Hotspot]
    tickets: int


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def discover(items: Sequence[HotItem], weeks: Sequence[date], *, limit: int = 10) -> list[Hotspot]:
    if not items:
        return []
    # min_df=2: a word in one ticket only cannot link two tickets, and dropping those
    # keeps the centroid matrix small (clusters × shared vocabulary)
    vectorizer = TfidfVectorizer(
        analyzer=textmod.tokens,
        sublinear_tf=True,
        norm="l2",
        dtype=np.float32,
        min_df=2,
        max_features=MAX_FEATURES,
    )
    try:
        matrix = vectorizer.fit_transform([item.text for item in items]).tocsr()
    except ValueError:  # no word shared by two tickets: no hotspot
        return []
    vocabulary = np.array(vectorizer.get_feature_names_out())
    by_district: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        by_district[item.district].append(index)
    clusters: list[tuple[str, list[int], np.ndarray]] = []
    for district, indexes in by_district.items():
        members: list[list[int]] = []
        centroids = np.zeros((16, matrix.shape[1]), dtype=np.float32)
        norms = np.zeros(16, dtype=np.float32)
        for index in indexes:
            row = matrix[index]
            if row.nnz == 0:
                continue
            count = len(members)
            best = -1
            if count:
                # only the ticket's own words contribute to the dot products
                scores = (centroids[:count, row.indices] @ row.data) / np.maximum(
                    norms[:count], 1e-9
                )
                best = int(np.argmax(scores))
                if scores[best] < JOIN_SIMILARITY:
                    best = -1
            if best < 0:
                if count == centroids.shape[0]:
                    centroids = np.vstack([centroids, np.zeros_like(centroids)])
                    norms = np.concatenate([norms, np.zeros_like(norms)])
                centroids[count, row.indices] = row.data
                norms[count] = float(np.linalg.norm(row.data))
                members.append([index])
            else:
                group = members[best]
                group.append(index)
                centroids[best] *= 1 - 1 / len(group)  # running mean of the members
                centroids[best, row.indices] += row.data / len(group)
                norms[best] = float(np.linalg.norm(centroids[best]))
        clusters.extend(
            (district, group, centroids[position].copy()) for position, group in enumerate(members)
        )
    week_index = {week: position for position, week in enumerate(weeks)}
    found: list[Hotspot] = []
    for district, members, centroid in clusters:
        if len(members) < MIN_TICKETS:
            continue
        trend = [0] * len(weeks)
        for index in members:
            position = week_index.get(items[index].week)
            if position is not None:
                trend[position] += 1
        top = np.argsort(-centroid)[:LABEL_WORDS]
        keywords = [str(vocabulary[i]) for i in top if centroid[i] > 0]
        latest = trend[-1] if trend else 0
        previous = trend[-2] if len(trend) > 1 else 0
        found.append(
            Hotspot(
                label=f"{district or '全市'} · {'、'.join(keywords[:3])}",
                keywords=keywords,
                district=district,
                total=len(members),
                latest=latest,
                trend=trend,
                rising=latest > previous,
                refs=[items[index].ref for index in members],
            )
        )
    found.sort(key=lambda spot: (-spot.latest, -spot.total, spot.label))
    return found[:limit]
