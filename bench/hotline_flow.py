"""Benchmark the hotline app's own costs (not the classifier's quality; see hotline.py).

    python bench/hotline_flow.py [--n 200] [--json]

A fresh SQLite data dir with the demo city and its routing table, a model trained on the
project's own demo messages, then N messages (``hot-issues.csv`` of the shared data when
it is beside the repo, else the demo messages repeated) through ``submit_ticket`` — the
model, the duplicate check, the dispatch decision and the commit with its audit leaf —
followed by the dispatcher queue (50 with suggestions), the centre's overview, and the
hotspots of the last four weeks.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

from xietong.apps.hotline import _model, intake, knowledge, queries
from xietong.apps.hotline.classifier import models_dir, read_messages, train_model
from xietong.apps.hotline.classifier.demo import DEMO_MESSAGES, shared_messages_dir
from xietong.apps.hotline.demo import _district_department, _routes
from xietong.config import Settings
from xietong.demo.city import load_city
from xietong.kernel.access import operator_actor
from xietong.kernel.calendar import WorkCalendar
from xietong.kernel.context import Context
from xietong.kernel.db import Database
from xietong.kernel.keys import Keys, ensure_keys
from xietong.migrate import upgrade
from xietong.plugins import plugin_manager


def _messages(n: int) -> list[tuple[str, str]]:
    shared = shared_messages_dir()
    if shared is not None and (shared / "hot-issues.csv").is_file():
        with (shared / "hot-issues.csv").open(encoding="utf-8-sig", newline="") as handle:
            rows = [(r.get("title") or "", r["text"]) for r in csv.DictReader(handle)]
    else:
        rows = [
            (r.get("title") or "", r["text"]) for r in read_messages(DEMO_MESSAGES, labelled=True)
        ]
    return [rows[i % len(rows)] for i in range(n)]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def run(n: int) -> dict[str, object]:
    data = Path(tempfile.mkdtemp(prefix="xietong-hotline-bench-"))
    settings = Settings(data_dir=data, database_url=f"sqlite:///{data / 'xietong.db'}")
    ensure_keys(settings.keys_dir)
    db = Database(settings.sqlalchemy_url)
    upgrade(db.engine)
    ctx = Context(
        settings=settings, db=db, keys=Keys.load(settings.keys_dir), hooks=plugin_manager().hook
    )
    ctx.calendar = WorkCalendar(db)
    admin = operator_actor("bench")
    load_city(ctx, admin)
    _district_department(ctx, admin)
    _routes(ctx, admin)
    train_model(read_messages(DEMO_MESSAGES, labelled=True)).save(models_dir(settings))
    _model.reset()
    _model.predict(settings, [{"title": "", "text": "预热"}])  # load the model and jieba
    intake_times, model_times, statuses = [], [], []
    for index, (title, text) in enumerate(_messages(n)):
        started = time.perf_counter()
        _model.predict(settings, [{"title": title[:200], "text": text[:5000]}])
        model_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = intake.submit_ticket(
            ctx,
            admin,
            intake.TicketInput(
                text=text[:5000],
                title=title[:200],
                contact_phone=f"139{index:08d}",
                channel="web",
            ),
        )
        intake_times.append(time.perf_counter() - started)
        statuses.append(result.status)
    timings = {}
    for name, call in [
        ("queue_50_ms", lambda: queries.dispatcher_queue(ctx, admin, limit=50)),
        ("overview_ms", lambda: queries.overview(ctx, admin)),
        ("hotspots_4_weeks_ms", lambda: knowledge.hotspots(ctx, admin, weeks=4)),
    ]:
        call()  # warm
        started = time.perf_counter()
        call()
        timings[name] = _ms(time.perf_counter() - started)
    ctx.close()
    ordered = sorted(intake_times)
    return {
        "tickets": n,
        "intake_median_ms": _ms(statistics.median(intake_times)),
        "intake_p95_ms": _ms(ordered[max(0, int(len(ordered) * 0.95) - 1)]),
        "model_median_ms": _ms(statistics.median(model_times)),
        "dispatched_automatically": statuses.count("dispatched"),
        "merged": statuses.count("merged"),
        **timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.n)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
