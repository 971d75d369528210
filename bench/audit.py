"""Benchmark the audit log: appends per second and proof latency at 1M leaves.

    python bench/audit.py [--json] [--leaves N] [--proofs K] [--batch B] [--seed S]

On a fresh SQLite database in a temporary directory (WAL, synchronous=FULL: the
platform's defaults), append N leaves through ``audit.append`` in transactions of B
leaves, then time K inclusion proofs at random indexes and K consistency proofs at the
full size. The baseline runs in the same process on the same machine: pymerkle's
``SqliteTree`` (its SQLite file in the same temporary directory) gets the very same leaf
bytes in the same batches through ``append_entries`` (one transaction per call, its best
showing; ``append_entry`` commits each leaf) and proves inclusion and consistency for the
same indexes. Both trees are RFC 9162 trees, so their roots and inclusion paths must be
equal; the benchmark checks that.

Only the appends and proofs are timed: building the entries (ours) and reading the leaf
bytes back for pymerkle are not. The first proof of each side is reported apart
("cold"): pymerkle computes and caches large subtree hashes on first use, and ours
compiles its query once.

Prints a table, or with ``--json`` exactly one JSON object (the figures, the targets
``appends_per_s >= 50,000`` and ``inclusion_proof_ms < 1.0`` at N leaves, and whether
they were met). Ratios read "how many times better xietong is": ``append_ratio`` is
xietong/pymerkle appends per second, ``proof_ratio`` pymerkle/xietong mean inclusion
proof time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import inspect

from xietong.kernel import audit, merkle
from xietong.kernel.db import Base, Database
from xietong.kernel.keys import Keys

TARGET_APPENDS_PER_S = 50_000
TARGET_INCLUSION_MS = 1.0
ACTIONS = ("case.submit", "case.review", "case.approve", "exchange.send", "exchange.receive")
DEPARTMENTS = ("430102-民政局", "430103-卫健委", "430104-人社局", "430105-市场监管局")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- setup -----------------------------------------------------------------------------


def open_database(path: Path) -> tuple[Database, str]:
    """A fresh SQLite database with the platform's schema: migrations, else the models."""
    db = Database(f"sqlite:///{path}")
    source = "alembic"
    try:
        from xietong.migrate import upgrade

        upgrade(db.engine)
    except Exception as error:  # no or broken migrations: the models are the schema
        log(f"migrations unavailable ({type(error).__name__}: {error}); using create_all")
    if not inspect(db.engine).has_table("audit_leaf"):
        from xietong.plugins import load_models

        load_models()
        Base.metadata.create_all(db.engine)
        source = "create_all"
    return db, source


def sqlite_pragmas(connection: Any) -> dict[str, str]:
    names = {"journal_mode": None, "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}}
    result = {}
    for name, labels in names.items():
        row = connection.execute(f"PRAGMA {name}").fetchone()
        value = row[0] if isinstance(row, tuple | list) else row
        result[name] = labels.get(value, str(value)) if labels else str(value).upper()
    return result


def entries(start: int, count: int) -> list[audit.Entry]:
    """Leaves that look like the platform's: an actor, an action, a case, a small payload."""
    return [
        audit.Entry(
            actor=f"user:clerk{n % 97}",
            action=ACTIONS[n % len(ACTIONS)],
            subject=f"case:{n // 3}",
            payload={
                "case_id": n // 3,
                "department": DEPARTMENTS[n % len(DEPARTMENTS)],
                "opinion": "同意",
                "seq": n,
            },
        )
        for n in range(start, start + count)
    ]


# --- measuring -------------------------------------------------------------------------


def timings_ms(call: Callable[[int], object], arguments: Sequence[int]) -> list[float]:
    result = []
    clock = time.perf_counter_ns
    for argument in arguments:
        began = clock()
        call(argument)
        result.append((clock() - began) / 1e6)
    return result


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "mean": statistics.fmean(ordered),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "max": ordered[-1],
    }


def bench_xietong(
    db: Database, leaves: int, batch: int, indexes: list[int], firsts: list[int], verify: bool
) -> dict[str, Any]:
    moment = datetime.now(UTC)
    spent = cpu = 0.0
    next_report = leaves // 10
    for start in range(0, leaves, batch):
        todo = entries(start, min(batch, leaves - start))
        began, began_cpu = time.perf_counter(), time.process_time()
        session = db.write_session()
        with session.begin():
            audit.append(session, todo, now=moment)
        session.close()
        spent += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
        if start + len(todo) >= next_report:
            log(f"  xietong: {start + len(todo):>10,} leaves, {(start + len(todo)) / spent:,.0f}/s")
            next_report += leaves // 10

    with db.read() as session:
        assert audit.tree_size(session) == leaves
        cold = timings_ms(lambda i: audit.inclusion_proof(session, i, leaves), [0])[0]
        inclusion = timings_ms(lambda i: audit.inclusion_proof(session, i, leaves), indexes)
        consistency = timings_ms(lambda m: audit.consistency_proof(session, m, leaves), firsts)
        root = audit.root_hash(session, leaves)
        # Every timed answer was a real proof: check a sample of them.
        sample = indexes[:200]
        proofs = {i: audit.inclusion_proof(session, i, leaves) for i in sample}
        for i, proof in proofs.items():
            leaf = audit.get_leaf(session, i).leaf
            merkle.verify_inclusion(merkle.leaf_hash(leaf), i, leaves, proof, root)
        for m in firsts[:200]:
            merkle.verify_consistency(
                m,
                leaves,
                audit.root_hash(session, m),
                root,
                audit.consistency_proof(session, m, leaves),
            )
    verify_seconds = None
    if verify:
        log("  xietong: verify_log over the whole log, with a head signed at full size")
        keys = Keys(signing=Ed25519PrivateKey.generate(), encryption=b"", session=b"")
        session = db.write_session()
        with session.begin():
            audit.sign_head(session, keys, "bench.xietong.local/audit")
        session.close()
        with db.read() as session:
            began = time.perf_counter()
            report = audit.verify_log(session, keys.public_key_raw)
            verify_seconds = time.perf_counter() - began
        assert report.ok and report.heads_checked == 1, report
    return {
        "appends_per_s": leaves / spent,
        "appends_per_cpu_s": leaves / cpu,
        "append_seconds": spent,
        "inclusion": summary(inclusion),
        "inclusion_cold_ms": cold,
        "consistency": summary(consistency),
        "root": root,
        "sample_proofs": proofs,
        "verify_seconds": verify_seconds,
    }


def stored_leaves(path: Path, leaves: int, batch: int) -> Iterator[list[bytes]]:
    """Our leaf bytes in index order, one batch at a time (bounded memory)."""
    connection = sqlite3.connect(path)
    try:
        for start in range(0, leaves, batch):
            rows = connection.execute(
                "SELECT leaf FROM audit_leaf WHERE idx >= ? AND idx < ? ORDER BY idx",
                (start, start + batch),
            )
            yield [bytes(row[0]) for row in rows]
    finally:
        connection.close()


def bench_pymerkle(
    ours: Path, path: Path, leaves: int, batch: int, indexes: list[int], firsts: list[int]
) -> dict[str, Any]:
    from pymerkle import SqliteTree

    tree = SqliteTree(str(path))
    spent = cpu = 0.0
    done = 0
    next_report = leaves // 10
    for chunk in stored_leaves(ours, leaves, batch):
        began, began_cpu = time.perf_counter(), time.process_time()
        tree.append_entries(chunk)
        spent += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
        done += len(chunk)
        if done >= next_report:
            log(f"  pymerkle: {done:>10,} leaves, {done / spent:,.0f}/s")
            next_report += leaves // 10
    assert tree.get_size() == leaves
    pragmas = sqlite_pragmas(tree.con)

    # pymerkle counts leaves from one.
    cold = timings_ms(lambda i: tree.prove_inclusion(i + 1, leaves), [0])[0]
    inclusion = timings_ms(lambda i: tree.prove_inclusion(i + 1, leaves), indexes)
    consistency = timings_ms(lambda m: tree.prove_consistency(m, leaves), firsts)
    root = tree.get_root(leaves)
    paths = {i: list(tree.prove_inclusion(i + 1, leaves).path[1:]) for i in indexes[:200]}
    tree.close()
    return {
        "appends_per_s": leaves / spent,
        "appends_per_cpu_s": leaves / cpu,
        "append_seconds": spent,
        "inclusion": summary(inclusion),
        "inclusion_cold_ms": cold,
        "consistency": summary(consistency),
        "root": root,
        "sample_proofs": paths,
        "pragmas": pragmas,
    }


def file_mb(path: Path) -> float:
    size = sum(
        candidate.stat().st_size
        for candidate in path.parent.glob(path.name + "*")  # the -wal and -shm files too
    )
    return size / 1e6


def run(leaves: int, proofs: int, batch: int, seed: int, verify: bool) -> dict[str, Any]:
    load_before = os.getloadavg()
    rng = random.Random(seed)
    indexes = [rng.randrange(leaves) for _ in range(proofs)]
    firsts = [rng.randrange(1, leaves) if leaves > 1 else 1 for _ in range(proofs)]
    with tempfile.TemporaryDirectory(prefix="xietong-bench-") as tmp:
        ours_path = Path(tmp) / "xietong.db"
        db, schema = open_database(ours_path)
        with db.engine.connect() as connection:
            ours_pragmas = sqlite_pragmas(connection.connection.driver_connection)
        log(f"xietong: appending {leaves:,} leaves in batches of {batch:,} ({schema} schema)")
        xt = bench_xietong(db, leaves, batch, indexes, firsts, verify)
        db.dispose()
        ours_mb = file_mb(ours_path)

        log(f"pymerkle {version('pymerkle')}: appending the same leaf bytes")
        pm_path = Path(tmp) / "pymerkle.db"
        pm = bench_pymerkle(ours_path, pm_path, leaves, batch, indexes, firsts)
        pm_mb = file_mb(pm_path)

    xt_mean = xt["inclusion"]["mean"]
    return {
        "leaves": leaves,
        "batch": batch,
        "proofs": proofs,
        "seed": seed,
        "xietong_appends_per_s": round(xt["appends_per_s"]),
        "xietong_appends_per_cpu_s": round(xt["appends_per_cpu_s"]),
        "xietong_append_seconds": round(xt["append_seconds"], 2),
        "xietong_inclusion_proof_ms_mean": round(xt_mean, 4),
        "xietong_inclusion_proof_ms_p50": round(xt["inclusion"]["p50"], 4),
        "xietong_inclusion_proof_ms_p95": round(xt["inclusion"]["p95"], 4),
        "xietong_inclusion_proof_ms_max": round(xt["inclusion"]["max"], 4),
        "xietong_inclusion_proof_ms_cold": round(xt["inclusion_cold_ms"], 4),
        "xietong_consistency_proof_ms_mean": round(xt["consistency"]["mean"], 4),
        "xietong_consistency_proof_ms_p95": round(xt["consistency"]["p95"], 4),
        "xietong_db_mb": round(ours_mb, 1),
        "xietong_verify_log_s": (
            round(xt["verify_seconds"], 1) if xt["verify_seconds"] is not None else None
        ),
        "xietong_sqlite": ours_pragmas,
        "pymerkle_version": version("pymerkle"),
        "pymerkle_appends_per_s": round(pm["appends_per_s"]),
        "pymerkle_appends_per_cpu_s": round(pm["appends_per_cpu_s"]),
        "pymerkle_append_seconds": round(pm["append_seconds"], 2),
        "pymerkle_inclusion_proof_ms_mean": round(pm["inclusion"]["mean"], 4),
        "pymerkle_inclusion_proof_ms_p50": round(pm["inclusion"]["p50"], 4),
        "pymerkle_inclusion_proof_ms_p95": round(pm["inclusion"]["p95"], 4),
        "pymerkle_inclusion_proof_ms_max": round(pm["inclusion"]["max"], 4),
        "pymerkle_inclusion_proof_ms_cold": round(pm["inclusion_cold_ms"], 4),
        "pymerkle_consistency_proof_ms_mean": round(pm["consistency"]["mean"], 4),
        "pymerkle_consistency_proof_ms_p95": round(pm["consistency"]["p95"], 4),
        "pymerkle_db_mb": round(pm_mb, 1),
        "pymerkle_sqlite": pm["pragmas"],
        "append_ratio": round(xt["appends_per_s"] / pm["appends_per_s"], 2),
        "proof_ratio": round(pm["inclusion"]["mean"] / xt_mean, 2),
        "roots_match": xt["root"] == pm["root"],
        "proofs_match": all(
            xt["sample_proofs"][i] == pm["sample_proofs"][i] for i in xt["sample_proofs"]
        ),
        "targets": {
            "appends_per_s": TARGET_APPENDS_PER_S,
            "inclusion_proof_ms": TARGET_INCLUSION_MS,
        },
        "met": {
            "appends_per_s": xt["appends_per_s"] >= TARGET_APPENDS_PER_S,
            "inclusion_proof_ms": xt_mean < TARGET_INCLUSION_MS,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "sqlalchemy": version("sqlalchemy"),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
    }


def table(result: dict[str, Any]) -> str:
    def row(label: str, ours: str, theirs: str, ratio: str = "") -> str:
        return f"{label:<30}{ours:>16}{theirs:>20}{ratio:>10}"

    def ms(key: str) -> tuple[str, str]:
        return (
            f"{result[f'xietong_{key}']:.3f}",
            f"{result[f'pymerkle_{key}']:.3f}",
        )

    def ratio_ms(key: str) -> str:
        return f"{result[f'pymerkle_{key}'] / result[f'xietong_{key}']:.1f}×"

    ours, theirs = result["xietong_sqlite"], result["pymerkle_sqlite"]
    met = result["met"]
    lines = [
        f"audit log: {result['leaves']:,} leaves in batches of {result['batch']:,}, "
        f"{result['proofs']:,} proofs at random indexes (seed {result['seed']})",
        f"machine: {result['machine']['cpus']} CPUs, {result['machine']['platform']}, "
        f"Python {result['machine']['python']}, SQLite {result['machine']['sqlite']}, "
        f"load average {result['machine']['load_average_before'][0]} before, "
        f"{result['machine']['load_average_after'][0]} after",
        "",
        row("", "xietong", f"pymerkle {result['pymerkle_version']}", "ratio"),
        row(
            "appends/s",
            f"{result['xietong_appends_per_s']:,}",
            f"{result['pymerkle_appends_per_s']:,}",
            f"{result['append_ratio']:.2f}×",
        ),
        row(
            "appends per CPU second",
            f"{result['xietong_appends_per_cpu_s']:,}",
            f"{result['pymerkle_appends_per_cpu_s']:,}",
        ),
    ]
    for label, key in (
        ("inclusion proof, mean (ms)", "inclusion_proof_ms_mean"),
        ("inclusion proof, p50 (ms)", "inclusion_proof_ms_p50"),
        ("inclusion proof, p95 (ms)", "inclusion_proof_ms_p95"),
        ("inclusion proof, max (ms)", "inclusion_proof_ms_max"),
        ("first (cold) proof (ms)", "inclusion_proof_ms_cold"),
        ("consistency proof, mean (ms)", "consistency_proof_ms_mean"),
        ("consistency proof, p95 (ms)", "consistency_proof_ms_p95"),
    ):
        lines.append(row(label, *ms(key), ratio_ms(key)))
    if result["xietong_verify_log_s"] is not None:
        lines.append(row("verify_log, whole log (s)", f"{result['xietong_verify_log_s']}", "-"))
    lines += [
        row("database files (MB)", f"{result['xietong_db_mb']}", f"{result['pymerkle_db_mb']}"),
        row(
            "SQLite journal / synchronous",
            f"{ours['journal_mode']} / {ours['synchronous']}",
            f"{theirs['journal_mode']} / {theirs['synchronous']}",
        ),
        "",
        f"roots equal: {result['roots_match']}; inclusion paths equal: {result['proofs_match']}",
        f"target ≥ {TARGET_APPENDS_PER_S:,} appends/s: "
        f"{'met' if met['appends_per_s'] else 'NOT met'}; "
        f"target < {TARGET_INCLUSION_MS} ms per inclusion proof: "
        f"{'met' if met['inclusion_proof_ms'] else 'NOT met'}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--leaves", type=int, default=1_000_000, help="leaves to append")
    parser.add_argument("--proofs", type=int, default=2_000, help="proofs of each kind")
    parser.add_argument("--batch", type=int, default=10_000, help="leaves per transaction")
    parser.add_argument("--seed", type=int, default=2026, help="random seed of the indexes")
    parser.add_argument(
        "--verify", action="store_true", help="also time verify_log over the whole log"
    )
    args = parser.parse_args(argv)
    if args.leaves < 2 or args.proofs < 1 or args.batch < 1:
        parser.error("need --leaves >= 2, --proofs >= 1 and --batch >= 1")
    result = run(args.leaves, args.proofs, args.batch, args.seed, args.verify)
    print(json.dumps(result, ensure_ascii=False) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
