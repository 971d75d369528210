"""Similar tickets and the knowledge base: duplicates, reply suggestions, FAQ search,
hotspots, and the corrections exported for training.

All text comparison goes through ``text`` (jieba tokens, TF-IDF, cosine). The knowledge
base holds FAQ entries, replies citizens were satisfied with, and — in the demo — the
real replies of ``gov-messages/replies.csv``, loaded at demo time from beside the repo.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from xietong.apps.hotline import text
from xietong.apps.hotline._common import (
    HANDLE,
    KNOWLEDGE_MANAGE,
    KNOWLEDGE_READ,
    STATS,
    TRAINING_EXPORT,
    guarded,
    load_ticket,
    text_field,
)
from xietong.apps.hotline.hotspots import HotItem, HotspotReport, discover, monday
from xietong.apps.hotline.models import Correction, Knowledge, Ticket
from xietong.apps.hotline.queries import _check_read
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.calendar import to_local_date
from xietong.kernel.context import Context
from xietong.kernel.org.models import Region
from xietong.kernel.uow import UnitOfWork

SIMILAR_WINDOW = timedelta(days=90)
SIMILAR_POOL = 2000
KNOWLEDGE_POOL = 20000


@dataclass(frozen=True)
class SimilarTicket:
    number: str
    title: str
    status: str
    district_code: str | None
    score: float
    same_citizen: bool


def similar_tickets(ctx: Context, actor: Actor, number: str, limit: int = 5) -> list[SimilarTicket]:
    """Tickets on the same issue (last 90 days), best first — candidates for a merge."""
    with ctx.db.read() as session:
        ticket = load_ticket(session, number)
        _check_read(actor, ticket)
        since = ticket.created_at - SIMILAR_WINDOW
        rows = session.scalars(
            select(Ticket)
            .where(Ticket.id != ticket.id, Ticket.created_at >= since)
            .order_by(Ticket.id.desc())
            .limit(SIMILAR_POOL)
        ).all()
        ranked = text.most_similar(
            f"{ticket.title} {ticket.text}",
            [f"{row.title} {row.text}" for row in rows],
            limit=limit,
            minimum=0.2,
        )
        return [
            SimilarTicket(
                rows[i].number,
                rows[i].title,
                rows[i].status,
                rows[i].district_code,
                round(score, 4),
                rows[i].contact_digest == ticket.contact_digest,
            )
            for i, score in ranked
        ]


@dataclass(frozen=True)
class KnowledgeHit:
    id: int
    title: str
    question: str
    answer: str
    source: str
    score: float


def _rank(entries: list[Knowledge], query: str, limit: int, minimum: float) -> list[KnowledgeHit]:
    ranked = text.most_similar(
        query, [f"{e.title} {e.question}" for e in entries], limit=limit, minimum=minimum
    )
    return [
        KnowledgeHit(
            entries[i].id,
            entries[i].title,
            entries[i].question[:500],
            entries[i].answer,
            entries[i].source,
            round(score, 4),
        )
        for i, score in ranked
    ]


def search(ctx: Context, actor: Actor, query: str, *, limit: int = 10) -> list[KnowledgeHit]:
    """FAQ search in Chinese: the question is segmented with jieba and matched by TF-IDF."""
    authorize(actor, KNOWLEDGE_READ)
    query = (query or "").strip()[:200]
    if not text.tokens(query):
        return []
    with ctx.db.read() as session:
        entries = list(
            session.scalars(select(Knowledge).order_by(Knowledge.id).limit(KNOWLEDGE_POOL))
        )
        return _rank(entries, query, limit, 0.05)


def reply_suggestions(
    ctx: Context, actor: Actor, number: str, *, limit: int = 3
) -> list[KnowledgeHit]:
    """Past replies to similar questions, for the handler to adapt (not to send blindly)."""
    authorize(actor, HANDLE)
    with ctx.db.read() as session:
        ticket = load_ticket(session, number)
        authorize(actor, HANDLE, guarded(ticket))
        query = f"{ticket.title} {ticket.text}"
        entries = list(
            session.scalars(select(Knowledge).order_by(Knowledge.id).limit(KNOWLEDGE_POOL))
        )
        return _rank(entries, query, limit, 0.1)


def add_entry(
    ctx: Context,
    actor: Actor,
    title: str,
    question: str,
    answer: str,
    *,
    category: str | None = None,
) -> int:
    authorize(actor, KNOWLEDGE_MANAGE)
    title = text_field(title, "标题", "Title", 200, code="invalid_title")
    question = text_field(question, "问题", "Question", 5000, code="invalid_question")
    answer = text_field(answer, "答案", "Answer", 10000, code="invalid_answer")
    with UnitOfWork(ctx, actor) as uow:
        count = len(
            uow.session.scalars(select(Knowledge.id).where(Knowledge.source == "faq")).all()
        )
        row = Knowledge(
            source="faq",
            ref=f"faq-{count + 1}-{clock.new_id()[:8]}",
            title=title,
            question=question,
            answer=answer,
            category=category,
            created_at=clock.now(),
        )
        uow.session.add(row)
        uow.session.flush()
        uow.record("hotline.knowledge.add", f"hotline.knowledge:{row.id}", {"title": title})
        uow.commit()
        return row.id


def import_replies_csv(ctx: Context, actor: Actor, path: Path, *, limit: int | None = None) -> int:
    """Load a replies file (id,title,text,time,reply,reply_time) into the knowledge base;
    rows already loaded (same id) are skipped. Returns how many were added."""
    authorize(actor, KNOWLEDGE_MANAGE)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("reply") and r.get("text")]
    if limit is not None:
        rows = rows[:limit]
    with UnitOfWork(ctx, actor) as uow:
        known = set(uow.session.scalars(select(Knowledge.ref).where(Knowledge.source == "import")))
        now = clock.now()
        added = 0
        for row in rows:
            ref = row["id"][:64]
            if ref in known:
                continue
            known.add(ref)
            uow.session.add(
                Knowledge(
                    source="import",
                    ref=ref,
                    title=(row.get("title") or row["text"][:40])[:200],
                    question=row["text"],
                    answer=row["reply"].strip(),
                    created_at=now,
                )
            )
            added += 1
        uow.record(
            "hotline.knowledge.import", "hotline.knowledge", {"file": path.name, "added": added}
        )
        uow.commit()
    return added


def hotspots(ctx: Context, actor: Actor, *, weeks: int = 4, limit: int = 10) -> HotspotReport:
    """Hotspots of the last ``weeks`` weeks (this week included)."""
    authorize(actor, STATS)
    this_week = monday(clock.local_now().date())
    week_list = [this_week - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    start = week_list[0]
    with ctx.db.read() as session:
        regions = dict(session.execute(select(Region.code, Region.name)).all())
        since = clock.now() - timedelta(weeks=weeks, days=1)
        rows = session.execute(
            select(
                Ticket.number, Ticket.title, Ticket.text, Ticket.district_code, Ticket.created_at
            )
            .where(Ticket.created_at >= since)
            .order_by(Ticket.id)
            .limit(5000)
        ).all()
    items = []
    for number, title, body, district, created in rows:
        week = monday(to_local_date(created))
        if week < start:
            continue
        items.append(HotItem(number, f"{title} {body}", regions.get(district, ""), week))
    spots = discover(items, week_list, limit=limit)
    return HotspotReport([w.isoformat() for w in week_list], spots, len(items))


def training_rows(ctx: Context, actor: Actor) -> list[dict[str, Any]]:
    """Labelled examples for the next training, in train.csv's columns (plus ``source``):
    the corrections (退单 then redispatch, or a dispatcher overruling the model) and the
    categories departments confirmed by accepting a ticket."""
    authorize(actor, TRAINING_EXPORT)
    with ctx.db.read() as session:
        out: list[dict[str, Any]] = []
        corrected: set[int] = set()
        for row in session.scalars(
            select(Correction).where(Correction.label.is_not(None)).order_by(Correction.id)
        ):
            corrected.add(row.ticket_id)
            out.append(
                {
                    "id": f"correction-{row.id}",
                    "title": row.title,
                    "text": row.text,
                    "label": row.label,
                    "source": row.source,
                }
            )
        for ticket in session.scalars(
            select(Ticket)
            .where(Ticket.accepted_at.is_not(None), Ticket.category.is_not(None))
            .order_by(Ticket.id)
        ):
            if ticket.id in corrected:
                continue
            out.append(
                {
                    "id": ticket.number,
                    "title": ticket.title,
                    "text": ticket.text,
                    "label": ticket.category,
                    "source": "accepted",
                }
            )
        return out


__all__ = [
    "KnowledgeHit",
    "SimilarTicket",
    "add_entry",
    "hotspots",
    "import_replies_csv",
    "reply_suggestions",
    "search",
    "similar_tickets",
    "training_rows",
]
