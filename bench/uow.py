"""The fixed cost of an audited command: one ``UnitOfWork``, one audit leaf, a commit.

    python bench/uow.py [--json] [--commands N] [--profiled P] [--backend sqlite|postgresql|both]

Runs N empty audited commands (one audit leaf, nothing else) and N commands that also
emit three CloudEvents, on a fresh SQLite file (WAL, ``synchronous=FULL``) and on a
fresh PostgreSQL database created on 127.0.0.1:5432 (dropped at the end; skipped when
PostgreSQL is not reachable). For each it reports CPU per command (``time.process_time``
over N commands, so load from other processes does not move it), its system share (the
kernel's: mostly the fsync of each COMMIT), wall time per command and Python function
calls per command (cProfile over P more commands). Progress goes to stderr; ``--json``
prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from xietong.config import Settings
from xietong.kernel.access import WORKER
from xietong.kernel.context import Context
from xietong.kernel.db import Database
from xietong.kernel.events import Event, event_type
from xietong.kernel.keys import Keys, ensure_keys
from xietong.kernel.uow import UnitOfWork
from xietong.migrate import upgrade

PG_ADMIN_URL = os.environ.get(
    "XIETONG_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@event_type("bench.uow.pinged", "A benchmark event (bench/uow.py).")
@dataclass(frozen=True)
class Pinged(Event):
    case_id: int
    note: str

    @property
    def subject(self) -> str:
        return f"case:{self.case_id}"


def _empty(ctx: Context, n: int) -> None:
    with UnitOfWork(ctx, WORKER) as uow:
        uow.record("bench.noop", f"case:{n}", {"n": n, "note": "空命令"})
        uow.commit()


def _three_events(ctx: Context, n: int) -> None:
    with UnitOfWork(ctx, WORKER) as uow:
        uow.record("bench.ping", f"case:{n}", {"n": n, "note": "三个事件"})
        for k in range(3):
            uow.emit(Pinged(case_id=n, note=f"事件 {k}"), module="bench")
        uow.commit()


def _measure(ctx: Context, command: Callable[[Context, int], None], n: int, profiled: int) -> dict:
    start = 1_000_000
    for i in range(200):  # warm caches, the pool and the statement cache
        command(ctx, start + i)
    start += 200
    cpu0, wall0, times0 = time.process_time(), time.perf_counter(), os.times()
    for i in range(n):
        command(ctx, start + i)
    cpu, wall, times = time.process_time() - cpu0, time.perf_counter() - wall0, os.times()
    start += n
    profile = cProfile.Profile()
    profile.enable()
    for i in range(profiled):
        command(ctx, start + i)
    profile.disable()
    calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    return {
        "cpu_ms_per_command": round(cpu / n * 1000, 4),
        # the kernel's share: mostly the fsync of each COMMIT (synchronous=FULL)
        "system_cpu_ms_per_command": round((times.system - times0.system) / n * 1000, 4),
        "wall_ms_per_command": round(wall / n * 1000, 4),
        "calls_per_command": round(calls / profiled, 1),
    }


def _context(url: str, data_dir: Path) -> Context:
    settings = Settings(data_dir=data_dir, database_url=url)
    ensure_keys(settings.keys_dir)
    db = Database(url)
    upgrade(db.engine)
    return Context(settings=settings, db=db, keys=Keys.load(settings.keys_dir))


def _run_backend(url: str, data_dir: Path, n: int, profiled: int) -> dict[str, Any]:
    ctx = _context(url, data_dir)
    try:
        result = {
            "empty": _measure(ctx, _empty, n, profiled),
            "three_events": _measure(ctx, _three_events, n, profiled),
        }
        with ctx.db.read() as session:
            size = session.execute(text("SELECT size FROM audit_state")).scalar_one()
        result["audit_leaves"] = size
        return result
    finally:
        ctx.close()


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "commands": args.commands,
        "profiled": args.profiled,
        "loadavg": os.getloadavg()[0],
        "python": sys.version.split()[0],
    }
    with tempfile.TemporaryDirectory(prefix="xietong-bench-uow-") as tmp:
        if args.backend in ("sqlite", "both"):
            print("sqlite …", file=sys.stderr)
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            out["sqlite"] = _run_backend(
                url, Path(tmp) / "data-sqlite", args.commands, args.profiled
            )
        if args.backend in ("postgresql", "both") and _postgres_reachable():
            print("postgresql …", file=sys.stderr)
            name = f"xietong_bench_uow_{uuid.uuid4().hex[:10]}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
                out["postgresql"] = _run_backend(
                    url, Path(tmp) / "data-pg", args.commands, args.profiled
                )
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--commands", type=int, default=2000, help="timed commands per kind")
    parser.add_argument("--profiled", type=int, default=200, help="commands under cProfile")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"load average {result['loadavg']:.2f}, {args.commands} commands per kind")
    print(f"{'backend':<12}{'command':<14}{'CPU ms':>9}{'sys ms':>9}{'wall ms':>9}{'calls':>8}")
    for backend in ("sqlite", "postgresql"):
        for kind in ("empty", "three_events"):
            row = result.get(backend, {}).get(kind)
            if row:
                print(
                    f"{backend:<12}{kind:<14}{row['cpu_ms_per_command']:>9.3f}"
                    f"{row['system_cpu_ms_per_command']:>9.3f}"
                    f"{row['wall_ms_per_command']:>9.3f}{row['calls_per_command']:>8.0f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
