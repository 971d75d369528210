"""Benchmark the workflow engine: task completions and instances per second, todo at 1M.

    python bench/workflow.py [--json] [--instances N] [--clients C] [--todo-scale T]
                             [--countersign-instances K] [--signers S]

One BPMN file, ``tests/data/workflow/review.bpmn``: start → 受理 → 审核A and 审核B in
parallel → 审批 → end, so an instance is one start and four user-task completions.
Every step of xietong is one transaction that also appends an audit leaf and writes its
CloudEvents to the outbox.

Measured in one run, on this machine:

1. **xietong on SQLite** with the platform's settings (WAL, ``synchronous=FULL``), C
   client threads, through the service functions (``instances.start``,
   ``operations.complete``) that the API calls.
2. **xietong on PostgreSQL** (127.0.0.1:5432; a scratch database is created and dropped),
   the same workload with the same C threads, and how long each step held the audit
   log's tree-size row lock (``AuditLockTimer``), which every step of the platform needs.
3. **SpiffWorkflow 3.x** executing the same BPMN file, as a web application must use it:
   each step reads the instance's JSON from SQLite, deserializes it, runs the task and the
   engine steps, serializes it and writes it back in one transaction, with the same
   SQLite settings (WAL, ``synchronous=FULL``) and the same C threads. Its writers
   queue on an in-process lock, as xietong's do (``xietong/kernel/db.py``).
4. **The SQLite commit ceiling**: single-row INSERT transactions per second on one
   connection, with ``synchronous=FULL`` (the platform's setting) and ``NORMAL``.
5. A second workload, on SQLite, by both engines under the same settings
   (``--countersign-instances K``, ``--signers S``; 0 instances skips it):
   ``tests/data/workflow/countersign.bpmn``, start → 会签 of S signers (all must
   approve) → 审批, reported under its own keys (``*_countersign_*``,
   ``ratio_vs_spiffworkflow_countersign``). SpiffWorkflow's step serialises the
   whole instance, S task children included; this is where that shows.
6. Function calls per start and per completion (cProfile, one thread, a few extra
   instances) for both engines and workloads: a count the machine's load does not move.
7. With ``--todo-scale T`` (T > 0): T open tasks bulk-loaded into PostgreSQL (COPY),
   spread over many users, departments and roles, and the p95 of
   ``xietong.kernel.workflow.queries.todo`` for a sample of users.

The workload runs in waves, the same for both engines: C threads start N instances, then
complete every 受理 task, then every 审核A and 审核B task, then every 审批 task. Between
waves (untimed) the open task ids are read, as a client reads its todo list. A wave's
wall-clock time counts; completions/s = 4N ÷ the time of the completion waves,
instances/s = N ÷ the time of all waves (start included).

Prints a table, or with ``--json`` one JSON object. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, select, text

from xietong.config import Settings
from xietong.kernel import audit
from xietong.kernel.access import Actor, Role, operator_actor
from xietong.kernel.calendar import WorkCalendar
from xietong.kernel.context import Context
from xietong.kernel.db import Database
from xietong.kernel.keys import Keys, ensure_keys
from xietong.kernel.org import service
from xietong.kernel.org.models import User
from xietong.kernel.org.scopes import actor_for_user
from xietong.kernel.workflow import definitions, instances, operations, queries
from xietong.kernel.workflow.store import WfTask
from xietong.migrate import upgrade
from xietong.plugins import plugin_manager

ROOT = Path(__file__).resolve().parents[1]
BPMN = ROOT / "tests" / "data" / "workflow" / "review.bpmn"
PROCESS = "review"
NODES = ("accept", "review_a", "review_b", "approve")
WAVES = (("accept",), ("review_a", "review_b"), ("approve",))
ROLE_OF = {"accept": "clerk", "review_a": "reviewer", "review_b": "reviewer", "approve": "boss"}
PG_ADMIN_URL = os.environ.get(
    "XIETONG_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
COUNTERSIGN_BPMN = ROOT / "tests" / "data" / "workflow" / "countersign.bpmn"
COUNTERSIGN = "countersign"
COUNTERSIGN_SIGNERS = 20
COUNTERSIGN_INSTANCES = 60
TARGET_RATIO = 5.0
TARGET_PG_PER_S = 1000.0
TARGET_TODO_P95_MS = 20.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- running work on C threads ---------------------------------------------------------


def run_parallel(clients: int, calls: Sequence[Callable[[], Any]]) -> tuple[float, list[float]]:
    """Run ``calls`` on ``clients`` threads; (wall seconds, per-call latencies in ms)."""
    work = deque(calls)
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start_line = threading.Barrier(clients + 1)

    def client() -> None:
        mine: list[float] = []
        start_line.wait()
        clock = time.perf_counter
        while True:
            try:
                call = work.popleft()
            except IndexError:
                break
            began = clock()
            try:
                call()
            except BaseException as error:  # a failed step fails the benchmark
                with lock:
                    errors.append(error)
                break
            mine.append((clock() - began) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} calls failed; first: {errors[0]!r}") from errors[0]
    return wall, latencies


class Waves:
    """Timed waves of steps: each wave's wall seconds, every step's latency, CPU seconds."""

    def __init__(self) -> None:
        self.walls: list[float] = []
        self.latencies: list[float] = []
        self.cpu = 0.0

    def run(self, clients: int, calls: Sequence[Callable[[], Any]], label: str) -> None:
        began_cpu = time.process_time()
        wall, latencies = run_parallel(clients, calls)
        self.cpu += time.process_time() - began_cpu
        self.walls.append(wall)
        self.latencies += latencies
        log(f"  {label}: {len(calls)} completions, {len(calls) / wall:,.0f}/s")


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


PROFILED_INSTANCES = 5
"""Instances run once more, on one thread under cProfile, to count function calls."""


def function_calls(calls: Sequence[Callable[[], Any]]) -> int:
    """Python function calls made by running ``calls`` one after the other (cProfile):
    deterministic for given code and data, so unlike time the machine's load does not
    move it; a proxy for CPU per step that compares two versions of the code."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        for call in calls:
            call()
    finally:
        profile.disable()
    return pstats.Stats(profile).total_calls  # type: ignore[attr-defined]


# --- xietong ---------------------------------------------------------------------------


class Bed:
    """A context with the review process deployed and C clerks, reviewers and approvers."""

    def __init__(self, ctx: Context, people: dict[str, list[Actor]]) -> None:
        self.ctx = ctx
        self.people = people


def open_context(url: str, data_dir: Path, *, migrate: bool = True) -> Context:
    settings = Settings(data_dir=data_dir, database_url=url)
    ensure_keys(settings.keys_dir)
    db = Database(url, sqlite_synchronous="FULL")
    if migrate:
        upgrade(db.engine)
    ctx = Context(
        settings=settings, db=db, keys=Keys.load(settings.keys_dir), hooks=plugin_manager().hook
    )
    ctx.calendar = WorkCalendar(db)
    return ctx


def make_bed(ctx: Context, clients: int) -> Bed:
    op = operator_actor("bench")
    service.create_region(ctx, op, "430000", "湖南省", "province")
    service.create_region(ctx, op, "430100", "长沙市", "city", "430000")
    department = service.create_department(ctx, op, "430102-bench", "政务服务中心", "430100").id
    roles = {"clerk": Role.WINDOW_CLERK, "reviewer": Role.REVIEWER, "boss": Role.APPROVER}
    people: dict[str, list[Actor]] = {kind: [] for kind in roles}
    for kind, role in roles.items():
        for n in range(clients):
            user = service.add_user(ctx, op, f"{kind}{n}", f"{kind.upper()}{n}", "bench-secret-1")
            service.grant_membership(ctx, op, user.id, department, role)
            with ctx.db.read() as session:
                people[kind].append(actor_for_user(session, session.get(User, user.id)))
    definitions.deploy(ctx, op, BPMN.read_text(encoding="utf-8"), "bpmn")
    return Bed(ctx, people)


def open_tasks(ctx: Context, instance_ids: list[int], nodes: Sequence[str]) -> list[WfTask]:
    found: list[Any] = []
    with ctx.db.read() as session:
        for start in range(0, len(instance_ids), 500):
            chunk = instance_ids[start : start + 500]
            found += session.execute(
                select(WfTask.id, WfTask.node_id, WfTask.instance_id).where(
                    WfTask.instance_id.in_(chunk),
                    WfTask.status == "open",
                    WfTask.node_id.in_(list(nodes)),
                )
            ).all()
    return sorted(found, key=lambda row: (row.instance_id, row.node_id))


def bench_xietong(bed: Bed, count: int, clients: int, label: str) -> dict[str, Any]:
    ctx = bed.ctx
    started: list[int] = []
    lock = threading.Lock()

    def starter(n: int) -> Callable[[], None]:
        actor = bed.people["clerk"][n % clients]

        def call() -> None:
            view = instances.start(ctx, actor, PROCESS, business_key=f"bench-{label}-{n}")
            with lock:
                started.append(view.id)

        return call

    start_wall, start_lat = run_parallel(clients, [starter(n) for n in range(count)])
    log(f"  {label}: {count} instances started in {start_wall:.2f} s")
    waves = Waves()
    for nodes in WAVES:
        tasks = open_tasks(ctx, started, nodes)
        assert len(tasks) == count * len(nodes), (nodes, len(tasks))

        def completer(n: int, task_id: int, node_id: str) -> Callable[[], None]:
            actor = bed.people[ROLE_OF[node_id]][n % clients]
            return lambda: operations.complete(ctx, actor, task_id, opinion="同意")

        calls = [completer(n, t.id, t.node_id) for n, t in enumerate(tasks)]
        waves.run(clients, calls, f"{label}: {'+'.join(nodes)}")
    return _summary(
        bed, label, count, start_wall, start_lat, waves.walls, waves.latencies, waves.cpu
    )


# --- the second workload: a 会签 of N signers, then 审批 ------------------------------


def bench_countersign_xietong(tmp: Path, count: int, clients: int, signers: int) -> dict[str, Any]:
    """``countersign.bpmn`` on SQLite: N instances, each a 会签 of ``signers`` named
    users (all must approve: ``signers`` tasks of one group) and then one 审批 by the
    approvers' pool. Its own database, so the review workload's figures are untouched.

    Waves as in the review workload: start every instance, then every signer's task
    (ordered signer by signer, so concurrent steps mostly touch different instances),
    then every 审批."""
    log(f"xietong on SQLite, countersign: {count} instances × {signers} signers, {clients} clients")
    ctx = open_context(f"sqlite:///{tmp / 'countersign.db'}", tmp / "countersign-data")
    try:
        op = operator_actor("bench")
        service.create_region(ctx, op, "430000", "湖南省", "province")
        service.create_region(ctx, op, "430100", "长沙市", "city", "430000")
        department = service.create_department(ctx, op, "430102-cs", "政务服务中心", "430100").id
        by_id: dict[int, Actor] = {}
        names: list[str] = []
        bosses: list[Actor] = []
        for kind, role, many in (
            ("signer", Role.REVIEWER, signers),
            ("boss", Role.APPROVER, clients),
        ):
            for n in range(many):
                user = service.add_user(ctx, op, f"{kind}{n}", f"{kind}{n}", "bench-secret-1")
                service.grant_membership(ctx, op, user.id, department, role)
                with ctx.db.read() as session:
                    actor = actor_for_user(session, session.get(User, user.id))
                if kind == "signer":
                    by_id[user.id] = actor
                    names.append(user.username)
                else:
                    bosses.append(actor)
        definitions.deploy(ctx, op, COUNTERSIGN_BPMN.read_text(encoding="utf-8"), "bpmn")
        starter = bosses[0]
        started: list[int] = []
        lock = threading.Lock()

        def start(n: int) -> Callable[[], None]:
            def call() -> None:
                view = instances.start(
                    ctx,
                    starter,
                    COUNTERSIGN,
                    variables={"signers": names},
                    business_key=f"cs-{n}",
                    department_id=department,
                )
                with lock:
                    started.append(view.id)

            return call

        def wave(node: str, after: int = 0) -> list[Callable[[], None]]:
            """The open ``node`` tasks (of instances with ids > ``after``) as completions,
            signer by signer across the instances."""
            with ctx.db.read() as session:
                rows = session.execute(
                    select(WfTask.id, WfTask.assignee_id)
                    .where(
                        WfTask.node_id == node,
                        WfTask.status == "open",
                        WfTask.instance_id > after,
                    )
                    .order_by(WfTask.position, WfTask.instance_id)
                ).all()
            actors = [
                by_id[row.assignee_id] if node == "sign" else bosses[n % clients]
                for n, row in enumerate(rows)
            ]
            return [
                (
                    lambda task_id=row.id, actor=actor: operations.complete(
                        ctx, actor, task_id, opinion="同意"
                    )
                )
                for row, actor in zip(rows, actors, strict=True)
            ]

        start_wall, _ = run_parallel(clients, [start(n) for n in range(count)])
        log(f"  countersign: {count} instances started in {start_wall:.2f} s")
        waves = Waves()
        for node, expected in (("sign", count * signers), ("approve", count)):
            calls = wave(node)
            assert len(calls) == expected, (node, len(calls), expected)
            waves.run(clients, calls, f"countersign: {node}")
        walls, latencies, cpu = waves.walls, waves.latencies, waves.cpu
        with ctx.db.read() as session:
            ended = session.scalar(
                text("SELECT count(*) FROM wf_instance WHERE status = 'completed'")
            )
            last = session.scalar(text("SELECT max(id) FROM wf_instance"))
        assert ended == count, (ended, count)
        # function calls per step (cProfile), one client, a few more instances
        start_calls = function_calls([start(count + n) for n in range(PROFILED_INSTANCES)])
        signing = wave("sign", last)
        step_calls = function_calls(signing)
        approving = wave("approve", last)
        step_calls += function_calls(approving)
        profiled_steps = len(signing) + len(approving)
        assert profiled_steps == PROFILED_INSTANCES * (signers + 1), profiled_steps
        return {
            **rates(count, count * (signers + 1), start_wall, walls, latencies, cpu),
            "function_calls_per_start": start_calls / PROFILED_INSTANCES,
            "function_calls_per_completion": step_calls / profiled_steps,
        }
    finally:
        ctx.close()


class DriverCounter:
    """Statements and round trips as the database driver sends them.

    Counted at the driver, not through SQLAlchemy's cursor events, because the engine
    sends some statements to the driver directly (``db.Batch``, the audit append).
    SQLite: the connection's trace callback sees every statement, BEGIN and COMMIT
    included; nothing is a round trip. PostgreSQL (psycopg): every ``execute``, and
    the COMMIT; a round trip is a statement outside a pipeline, a pipeline, or a
    COMMIT of an open transaction.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.statements = 0
        self.round_trips = 0
        self.on = False

    def __enter__(self) -> DriverCounter:
        if self.engine.dialect.name == "sqlite":

            def trace(_sql: str) -> None:
                if self.on:
                    self.statements += 1

            def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
                dbapi_conn.set_trace_callback(trace)

            self._checkout = checkout
            event.listen(self.engine, "checkout", checkout)
            return self
        import psycopg
        from psycopg.pq import TransactionStatus

        counter = self
        self._saved = (
            psycopg.Cursor.execute,
            psycopg.Connection.pipeline,
            psycopg.Connection.commit,
        )
        execute, pipeline, commit = self._saved

        def counted_execute(cursor: Any, *args: Any, **kwargs: Any) -> Any:
            if counter.on:
                counter.statements += 1
                if cursor.connection._pipeline is None:
                    counter.round_trips += 1
            return execute(cursor, *args, **kwargs)

        def counted_pipeline(connection: Any, *args: Any, **kwargs: Any) -> Any:
            if counter.on and connection._pipeline is None:
                counter.round_trips += 1
            return pipeline(connection, *args, **kwargs)

        def counted_commit(connection: Any) -> None:
            if counter.on and connection.pgconn.transaction_status != TransactionStatus.IDLE:
                counter.statements += 1
                counter.round_trips += 1
            commit(connection)

        psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
        psycopg.Connection.pipeline = counted_pipeline  # type: ignore[method-assign]
        psycopg.Connection.commit = counted_commit  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.engine.dialect.name == "sqlite":
            event.remove(self.engine, "checkout", self._checkout)
            self.engine.dispose()  # pooled connections keep no trace callback
            return
        import psycopg

        (
            psycopg.Cursor.execute,  # type: ignore[method-assign]
            psycopg.Connection.pipeline,  # type: ignore[method-assign]
            psycopg.Connection.commit,  # type: ignore[method-assign]
        ) = self._saved

    def take(self) -> tuple[int, int]:
        counted = (self.statements, self.round_trips)
        self.statements = self.round_trips = 0
        return counted


# --- several client processes (PostgreSQL) ---------------------------------------------


def _starter(
    ctx: Context, actor: Actor, key: str, started: list[int], lock: threading.Lock
) -> Callable[[], None]:
    def call() -> None:
        view = instances.start(ctx, actor, PROCESS, business_key=key)
        with lock:
            started.append(view.id)

    return call


def _client_process(url: str, data_dir: str, inbox: Any, results: Any, barrier: Any) -> None:
    """One client process, as one worker process of a deployment: its own engine and
    connection pool, ``threads`` client threads. Runs the waves the parent sends."""
    ctx = open_context(url, Path(data_dir), migrate=False)
    try:
        while True:
            job = inbox.get()
            if job is None:
                return
            kind, threads, items = job
            started: list[int] = []
            lock = threading.Lock()
            if kind == "start":
                calls = [_starter(ctx, actor, key, started, lock) for actor, key in items]
            else:
                calls = [
                    (lambda a=actor, t=task_id: operations.complete(ctx, a, t, opinion="同意"))
                    for actor, task_id in items
                ]
            barrier.wait()
            began_cpu = time.process_time()
            _wall, latencies = run_parallel(threads, calls)
            results.put((latencies, time.process_time() - began_cpu, started))
    finally:
        ctx.close()


class ClientProcesses:
    """``processes`` client processes with ``threads`` threads each, on one database."""

    def __init__(self, url: str, data_dir: Path, processes: int, threads: int) -> None:
        import multiprocessing

        spawn = multiprocessing.get_context("spawn")  # no engine or thread state forked
        self.threads = threads
        self.barrier = spawn.Barrier(processes + 1)
        self.results = spawn.Queue()
        self.inboxes = [spawn.Queue() for _ in range(processes)]
        self.workers = [
            spawn.Process(
                target=_client_process,
                args=(url, str(data_dir), inbox, self.results, self.barrier),
                daemon=True,
            )
            for inbox in self.inboxes
        ]
        for worker in self.workers:
            worker.start()

    def run(self, kind: str, items: Sequence[Any]) -> tuple[float, list[float], float, list[int]]:
        """Spread ``items`` over the processes; (wall s, latencies, CPU s, started ids)."""
        for n, inbox in enumerate(self.inboxes):
            inbox.put((kind, self.threads, list(items[n :: len(self.inboxes)])))
        self.barrier.wait(timeout=600)
        began = time.perf_counter()
        latencies: list[float] = []
        cpu = 0.0
        started: list[int] = []
        for _ in self.inboxes:
            lat, spent, ids = self.results.get(timeout=600)
            latencies += lat
            cpu += spent
            started += ids
        wall = time.perf_counter() - began
        if len(latencies) != len(items):
            raise RuntimeError(f"{len(items) - len(latencies)} calls failed in a client process")
        return wall, latencies, cpu, started

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for worker in self.workers:
            worker.join(timeout=30)


def bench_xietong_processes(
    bed: Bed, url: str, data_dir: Path, count: int, processes: int, threads: int, label: str
) -> dict[str, Any]:
    """``bench_xietong`` with the clients in ``processes`` processes of ``threads`` each."""
    pool = ClientProcesses(url, data_dir, processes, threads)
    try:
        clients = processes * threads
        starts = [(bed.people["clerk"][n % clients], f"bench-{label}-{n}") for n in range(count)]
        start_wall, start_lat, _cpu, started = pool.run("start", starts)
        log(f"  {label}: {count} instances started in {start_wall:.2f} s")
        walls: list[float] = []
        latencies: list[float] = []
        cpu = 0.0
        for nodes in WAVES:
            tasks = open_tasks(bed.ctx, started, nodes)
            assert len(tasks) == count * len(nodes), (nodes, len(tasks))
            items = [
                (bed.people[ROLE_OF[t.node_id]][n % clients], t.id) for n, t in enumerate(tasks)
            ]
            wall, lat, spent, _ = pool.run("complete", items)
            walls.append(wall)
            latencies += lat
            cpu += spent
            rate = len(tasks) / wall
            log(f"  {label}: {'+'.join(nodes)}: {len(tasks)} completions, {rate:,.0f}/s")
    finally:
        pool.close()
    return _summary(bed, label, count, start_wall, start_lat, walls, latencies, cpu)


def _summary(
    bed: Bed,
    label: str,
    count: int,
    start_wall: float,
    start_lat: list[float],
    walls: list[float],
    latencies: list[float],
    cpu: float,
) -> dict[str, Any]:
    with bed.ctx.db.read() as session:
        ended = session.scalar(
            text(
                "SELECT count(*) FROM wf_instance WHERE status = 'completed' AND business_key "
                "LIKE :prefix"
            ),
            {"prefix": f"bench-{label}-%"},
        )
    assert ended == count, (ended, count)
    return {
        **rates(count, count * len(NODES), start_wall, walls, latencies, cpu),
        "start_ms_p50": statistics.median(start_lat),
    }


def rates(
    count: int,
    completions: int,
    start_wall: float,
    walls: list[float],
    latencies: list[float],
    cpu: float,
) -> dict[str, float]:
    """A xietong workload's rates: ``count`` instances, ``completions`` in the waves."""
    return {
        "task_completions_per_s": completions / sum(walls),
        "instances_per_s": count / (start_wall + sum(walls)),
        "starts_per_s": count / start_wall,
        "step_ms_p50": statistics.median(latencies),
        "step_ms_p95": percentile(latencies, 0.95),
        "cpu_ms_per_completion": cpu / completions * 1000,
    }


def statements_per_step(bed: Bed, count: int = 20) -> dict[str, float]:
    """Statements (and round trips) of a start and a completion, counted at the driver on
    a short extra run, and one client's wall time per completion."""
    clerk = bed.people["clerk"][0]
    engine = bed.ctx.db.engine
    ids: list[int] = []
    spent = {"start": 0, "completion": 0, "completion_round_trips": 0}
    done = 0
    # time the driver's COMMIT (on SQLite: the WAL write and its fsync) within each step
    dialect = engine.dialect
    driver_commit = dialect.do_commit
    committing = [0.0]

    def timed_commit(connection: Any) -> None:
        began = time.perf_counter()
        driver_commit(connection)
        committing[0] += time.perf_counter() - began

    stepping = 0.0
    with DriverCounter(engine) as counter:
        for n in range(count):
            counter.on = True
            ids.append(instances.start(bed.ctx, clerk, PROCESS, business_key=f"count-{n}").id)
            counter.on = False
            spent["start"] += counter.take()[0]
        for nodes in WAVES:
            for task in open_tasks(bed.ctx, ids, nodes):
                actor = bed.people[ROLE_OF[task.node_id]][0]
                counter.on = True
                dialect.do_commit = timed_commit  # type: ignore[method-assign]
                began = time.perf_counter()
                try:
                    operations.complete(bed.ctx, actor, task.id, opinion="同意")
                finally:
                    stepping += time.perf_counter() - began
                    dialect.do_commit = driver_commit  # type: ignore[method-assign]
                    counter.on = False
                statements, round_trips = counter.take()
                spent["completion"] += statements
                spent["completion_round_trips"] += round_trips
                done += 1
    return {
        "start": spent["start"] / count,
        "completion": spent["completion"] / done,
        "completion_round_trips": spent["completion_round_trips"] / done,
        "step_ms_one_client": stepping / done * 1000,
        "commit_ms_one_client": committing[0] / done * 1000,
    }


def xietong_function_calls(bed: Bed) -> dict[str, float]:
    """Function calls (cProfile) per start and per completion, one client, a few more
    instances of the review workload."""
    clerk = bed.people["clerk"][0]
    ids: list[int] = []

    def start(n: int) -> Callable[[], None]:
        key = f"calls-{n}"
        return lambda: ids.append(instances.start(bed.ctx, clerk, PROCESS, business_key=key).id)

    start_calls = function_calls([start(n) for n in range(PROFILED_INSTANCES)])
    total = steps = 0
    for nodes in WAVES:
        calls = [
            (
                lambda t=task.id, a=bed.people[ROLE_OF[task.node_id]][0]: operations.complete(
                    bed.ctx, a, t, opinion="同意"
                )
            )
            for task in open_tasks(bed.ctx, ids, nodes)
        ]
        total += function_calls(calls)
        steps += len(calls)
    return {"start": start_calls / PROFILED_INSTANCES, "completion": total / steps}


def sqlite_pragmas(db: Database) -> dict[str, str]:
    with db.engine.connect() as connection:
        raw = connection.connection.driver_connection
        mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
        sync = raw.execute("PRAGMA synchronous").fetchone()[0]
    return {"journal_mode": str(mode).upper(), "synchronous": {1: "NORMAL", 2: "FULL"}[sync]}


def run_sqlite(tmp: Path, count: int, clients: int) -> dict[str, Any]:
    log(f"xietong on SQLite: {count} instances, {clients} clients")
    ctx = open_context(f"sqlite:///{tmp / 'xietong.db'}", tmp / "xietong-data")
    try:
        bed = make_bed(ctx, clients)
        result = bench_xietong(bed, count, clients, "sqlite")
        result["statements"] = statements_per_step(bed)
        result["function_calls"] = xietong_function_calls(bed)
        result["pragmas"] = sqlite_pragmas(ctx.db)
    finally:
        ctx.close()
    return result


# --- PostgreSQL ------------------------------------------------------------------------


class ScratchPostgres:
    """A database created for this run and dropped after it."""

    def __init__(self) -> None:
        self.name = f"xietong_bench_{uuid.uuid4().hex[:10]}"
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{self.name}"

    def __enter__(self) -> ScratchPostgres:
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        return self

    def __exit__(self, *exc: object) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def postgres_commit_ceiling(db: Database, commits: int) -> dict[str, float]:
    """Single-row INSERT transactions per second on one PostgreSQL connection."""
    raw = db.engine.raw_connection()
    try:
        connection = raw.driver_connection
        connection.autocommit = True
        connection.execute("CREATE TABLE bench_commit (id bigserial PRIMARY KEY, v text)")
        connection.autocommit = False
        payload = "x" * 200
        commit_s = 0.0
        clock = time.perf_counter
        began = clock()
        for _ in range(commits):
            connection.execute("INSERT INTO bench_commit (v) VALUES (%s)", (payload,))
            before = clock()
            connection.commit()
            commit_s += clock() - before
        wall = clock() - began
        connection.autocommit = True
        connection.execute("DROP TABLE bench_commit")
    finally:
        raw.close()
    return {"per_s": commits / wall, "commit_ms": commit_s / commits * 1000}


def postgres_settings(db: Database) -> dict[str, str]:
    with db.engine.connect() as connection:
        return {
            name: connection.exec_driver_sql(f"SHOW {name}").scalar()
            for name in ("server_version", "synchronous_commit", "fsync", "shared_buffers")
        }


class AuditLockTimer:
    """How long each step holds the audit log's tree-size row lock (PostgreSQL).

    The lock is taken by the statement of ``audit._lock_with_frontier`` and held until
    the transaction's COMMIT returns; every step of every instance needs it, so its
    hold time bounds the whole platform's steps/s (1 / hold time). Timed from the
    locking statement's return (a slight underestimate) to COMMIT's return; two
    timestamps per step are all this adds.
    """

    def __init__(self, ctx: Context) -> None:
        self.dialect = ctx.db.engine.dialect
        self.holds: list[float] = []
        self.local = threading.local()

    def __enter__(self) -> AuditLockTimer:
        self.lock, self.commit = audit._lock_with_frontier, self.dialect.do_commit
        local, holds, lock, commit = self.local, self.holds, self.lock, self.commit

        def timed_lock(connection: Any, *args: Any) -> Any:
            locked = lock(connection, *args)
            # from the moment the locking statement returned (its wait for the lock is
            # not holding it) to the end of COMMIT
            local.began = time.perf_counter()
            return locked

        def timed_commit(connection: Any) -> None:
            commit(connection)
            began = getattr(local, "began", None)
            if began is not None:
                holds.append(time.perf_counter() - began)
                local.began = None

        audit._lock_with_frontier = timed_lock  # type: ignore[assignment]
        self.dialect.do_commit = timed_commit  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        audit._lock_with_frontier = self.lock  # type: ignore[assignment]
        self.dialect.do_commit = self.commit  # type: ignore[method-assign]


def run_postgres(
    tmp: Path, count: int, clients: int, processes: int, todo_scale: int, todo_users: int
) -> dict[str, Any]:
    log(f"xietong on PostgreSQL: {count} instances, {clients} clients in one process")
    with ScratchPostgres() as scratch:
        ctx = open_context(scratch.url, tmp / "pg-data")
        try:
            bed = make_bed(ctx, clients)
            with AuditLockTimer(ctx) as lock:
                result = bench_xietong(bed, count, clients, "postgres")
            wall = count / result["instances_per_s"]
            result["audit_lock"] = {
                "p50_ms": statistics.median(lock.holds) * 1000,
                "p95_ms": percentile(lock.holds, 0.95) * 1000,
                "share_of_wall": sum(lock.holds) / wall,
            }
            result["processes"] = None
            if processes > 1:
                threads = max(1, clients // processes)
                log(
                    f"xietong on PostgreSQL: {count} instances, {processes} client processes "
                    f"× {threads} threads"
                )
                result["processes"] = bench_xietong_processes(
                    bed, scratch.url, tmp / "pg-data", count, processes, threads, "pg-processes"
                )
                result["processes"]["processes"] = processes
                result["processes"]["threads"] = threads
            result["statements"] = statements_per_step(bed)
            result["settings"] = postgres_settings(ctx.db)
            result["ceiling"] = postgres_commit_ceiling(ctx.db, 1000)
            result["todo"] = bench_todo(ctx, todo_scale, todo_users) if todo_scale > 0 else None
        finally:
            ctx.close()
    return result


# --- the todo list at scale ------------------------------------------------------------

TODO_DEPARTMENTS = 400
TODO_USERS = 20_000
TODO_ROLES = ("window_clerk", "reviewer", "approver")


def _copy(connection: Any, table: str, columns: Sequence[str], rows: Any) -> None:
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def bulk_load_tasks(ctx: Context, total: int, seed: int = 2026) -> dict[str, Any]:
    """``total`` open tasks of the review process, as the engine would have left them.

    400 departments with 50 users each (20,000 users, each a clerk, reviewer or approver
    in one department). Every task has an instance and a token. Half the tasks are
    assigned to a user (a 受理 or 审核 claimed, a named approver); the other half wait for
    candidates: one in ten for named users (two each), the rest for a (department, role)
    pool. A few hundred delegations (代理) are in force. Created times spread over a year.
    """
    rng = random.Random(seed)
    now = datetime.now(UTC)
    raw = ctx.db.engine.raw_connection()
    try:
        connection = raw.driver_connection
        cursor = connection.cursor()
        cursor.execute("SELECT coalesce(max(id), 0) FROM department")
        dept_base = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(max(id), 0) FROM app_user")
        user_base = cursor.fetchone()[0]
        cursor.execute("SELECT id FROM wf_definition WHERE key = %s", (PROCESS,))
        definition_id = cursor.fetchone()[0]
        departments = [dept_base + 1 + n for n in range(TODO_DEPARTMENTS)]
        _copy(
            connection,
            "department",
            ("id", "code", "name", "region_code", "active", "created_at"),
            ((d, f"430199-{d}", f"部门{d}", "430100", True, now) for d in departments),
        )
        users = [user_base + 1 + n for n in range(TODO_USERS)]
        user_dept = {u: departments[i % TODO_DEPARTMENTS] for i, u in enumerate(users)}
        user_role = {u: TODO_ROLES[(i // TODO_DEPARTMENTS) % 3] for i, u in enumerate(users)}
        _copy(
            connection,
            "app_user",
            ("id", "username", "display_name", "password_hash", "active", "created_at"),
            ((u, f"load{u}", f"用户{u}", "!", True, now) for u in users),
        )
        _copy(
            connection,
            "membership",
            ("user_id", "department_id", "role", "created_at"),
            ((u, user_dept[u], user_role[u], now) for u in users),
        )
        _copy(
            connection,
            "delegation",
            ("from_user_id", "to_user_id", "starts_at", "ends_at", "reason", "created_at"),
            (
                (
                    u,
                    users[(i * 7919) % len(users)],
                    now - timedelta(days=1),
                    now + timedelta(days=30),
                    "出差",
                    now,
                )
                for i, u in enumerate(users[:: len(users) // 200])
            ),
        )
        cursor.execute("SELECT coalesce(max(id), 0) FROM wf_instance")
        instance_base = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(max(id), 0) FROM wf_token")
        token_base = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(max(id), 0) FROM wf_task")
        task_base = cursor.fetchone()[0]
        instance_count = total // 2  # two open tasks per instance on average
        year = 365 * 86400
        created = [now - timedelta(seconds=rng.randrange(year)) for _ in range(instance_count)]
        inst_dept = [departments[rng.randrange(TODO_DEPARTMENTS)] for _ in range(instance_count)]
        _copy(
            connection,
            "wf_instance",
            (
                "id",
                "definition_id",
                "process_key",
                "business_key",
                "status",
                "department_id",
                "started_by",
                "started_at",
                "version",
            ),
            (
                (
                    instance_base + 1 + i,
                    definition_id,
                    PROCESS,
                    f"load-{i}",
                    "running",
                    inst_dept[i],
                    "user:load",
                    created[i],
                    1,
                )
                for i in range(instance_count)
            ),
        )
        tasks: list[tuple[Any, ...]] = []
        candidates: list[tuple[Any, ...]] = []
        by_dept_role: dict[tuple[int, str], list[int]] = {}
        for u in users:
            by_dept_role.setdefault((user_dept[u], user_role[u]), []).append(u)
        for n in range(total):
            i = n // 2
            task_id = task_base + 1 + n
            node = NODES[rng.randrange(4)]
            role = {"accept": "window_clerk", "approve": "approver"}.get(node, "reviewer")
            dept = inst_dept[i]
            pool = by_dept_role[(dept, role)]
            assignee = pool[rng.randrange(len(pool))] if rng.random() < 0.5 else None
            tasks.append(
                (
                    task_id,
                    instance_base + 1 + i,
                    token_base + 1 + n,
                    PROCESS,
                    f"load-{i}",
                    node,
                    node,
                    "open",
                    assignee,
                    dept,
                    None if assignee else role,
                    token_base + 1 + n,
                    created[i] + timedelta(seconds=n % 2),
                    1,
                )
            )
            if assignee is None:
                if rng.random() < 0.1:
                    for u in rng.sample(pool, 2):
                        candidates.append((task_id, u, None, None))
                else:
                    candidates.append((task_id, None, dept, role))
        _copy(
            connection,
            "wf_token",
            ("id", "instance_id", "node_id", "status", "state", "created_at"),
            ((t[11], t[1], t[5], "waiting", f'{{"group": {t[11]}}}', t[12]) for t in tasks),
        )
        _copy(
            connection,
            "wf_task",
            (
                "id",
                "instance_id",
                "token_id",
                "process_key",
                "business_key",
                "node_id",
                "name",
                "status",
                "assignee_id",
                "candidate_department_id",
                "candidate_role",
                "group_id",
                "created_at",
                "version",
                "position",
                "weight",
                "counts",
                "kind",
                "attachments",
            ),
            ((*t, 0, 1.0, True, "normal", "[]") for t in tasks),
        )
        _copy(
            connection,
            "wf_task_candidate",
            ("task_id", "user_id", "department_id", "role"),
            candidates,
        )
        for table in ("department", "app_user", "wf_instance", "wf_token", "wf_task"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        connection.commit()
    finally:
        raw.close()
    with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    return {"users": users, "assigned": sum(1 for t in tasks if t[8] is not None)}


def bench_todo(ctx: Context, total: int, sample: int, repeat: int = 5) -> dict[str, Any]:
    log(f"  todo: bulk-loading {total:,} open tasks (COPY)")
    began = time.perf_counter()
    loaded = bulk_load_tasks(ctx, total)
    load_s = time.perf_counter() - began
    with ctx.db.read() as session:
        open_count = session.scalar(
            text("SELECT count(*) FROM wf_task WHERE status IN ('open', 'delegated')")
        )
        rng = random.Random(7)
        chosen = rng.sample(loaded["users"], sample)
        actors = [actor_for_user(session, session.get(User, u)) for u in chosen]
    log(f"  todo: {open_count:,} open tasks loaded in {load_s:.1f} s; timing {sample} users")
    samples: list[float] = []
    totals: list[int] = []
    for actor in actors:  # warm: the first call compiles the statement
        queries.todo(ctx, actor, limit=20)
    for _ in range(repeat):
        for actor in actors:
            began = time.perf_counter()
            page = queries.todo(ctx, actor, limit=20)
            samples.append((time.perf_counter() - began) * 1000)
            totals.append(page.total)
    return {
        "open_tasks": open_count,
        "load_s": load_s,
        "users_sampled": sample,
        "calls": len(samples),
        "p50_ms": statistics.median(samples),
        "p95_ms": percentile(samples, 0.95),
        "max_ms": max(samples),
        "mean_list_total": statistics.fmean(totals),
    }


# --- SpiffWorkflow ---------------------------------------------------------------------


def spiff_connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


@dataclass(frozen=True)
class SpiffWorkload:
    """What ``bench_spiff`` runs: a BPMN file, its waves (task spec names completed in
    each) and the data the start event's task gets (an application's start variables)."""

    bpmn: Path
    process: str
    waves: tuple[tuple[str, ...], ...]
    wave_sizes: tuple[int, ...]  # user-task completions per instance in each wave
    start_data: dict[str, Any]
    database: str
    interleave: bool = False  # a wave's calls ordered task by task across the instances

    @property
    def per_instance(self) -> int:
        return sum(self.wave_sizes)


REVIEW_SPIFF = SpiffWorkload(
    BPMN, PROCESS, WAVES, tuple(len(nodes) for nodes in WAVES), {}, "spiff.db"
)


def countersign_spiff(signers: int) -> SpiffWorkload:
    # SpiffWorkflow names each instance of a multi-instance task "<id> [child]"
    return SpiffWorkload(
        COUNTERSIGN_BPMN,
        COUNTERSIGN,
        (("sign [child]",), ("approve",)),
        (signers, 1),
        {"signers": [f"signer{n}" for n in range(signers)]},
        "spiff-countersign.db",
        interleave=True,
    )


def bench_spiff(
    tmp: Path, count: int, clients: int, workload: SpiffWorkload = REVIEW_SPIFF
) -> dict[str, Any]:
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.parser import BpmnParser
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.util.task import TaskState

    log(
        f"SpiffWorkflow {version('SpiffWorkflow')}, {workload.process}: {count} instances, "
        f"{clients} clients"
    )
    parser = BpmnParser()
    parser.add_bpmn_file(str(workload.bpmn))
    # parsed once, as a web application would cache it
    spec = parser.get_spec(workload.process)
    path = tmp / workload.database
    setup = spiff_connect(path)
    setup.execute("CREATE TABLE instance (id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
    setup.close()
    local = threading.local()
    # The same in-process writer queue as xietong's Database has for SQLite (see
    # xietong/kernel/db.py): without it SpiffWorkflow's steps meet in SQLite's busy
    # handler, which sleeps, and lose half their throughput at 8 threads.
    writer = threading.Lock()
    written: list[int] = []  # bytes of each state a step wrote

    def connection() -> tuple[sqlite3.Connection, BpmnWorkflowSerializer]:
        if not hasattr(local, "connection"):
            local.connection = spiff_connect(path)
            local.serializer = BpmnWorkflowSerializer()
        return local.connection, local.serializer

    def start() -> None:
        db, serializer = connection()
        workflow = BpmnWorkflow(spec)
        if workload.start_data:
            for task in workflow.get_tasks(state=TaskState.READY):
                task.set_data(**workload.start_data)
        workflow.do_engine_steps()
        state = serializer.serialize_json(workflow)
        with writer:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO instance (state) VALUES (?)", (state,))
            db.execute("COMMIT")

    def step(instance_id: int, task_id: uuid.UUID) -> Callable[[], None]:
        def call() -> None:
            db, serializer = connection()
            with writer:
                db.execute("BEGIN IMMEDIATE")
                try:
                    (state,) = db.execute(
                        "SELECT state FROM instance WHERE id = ?", (instance_id,)
                    ).fetchone()
                    workflow = serializer.deserialize_json(state)
                    task = workflow.get_task_from_id(task_id)
                    if task.state != TaskState.READY:
                        raise RuntimeError("task not ready")
                    task.run()
                    workflow.do_engine_steps()
                    state = serializer.serialize_json(workflow)
                    written.append(len(state))
                    db.execute("UPDATE instance SET state = ? WHERE id = ?", (state, instance_id))
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise

        return call

    start_wall, _ = run_parallel(clients, [start for _ in range(count)])
    log(f"  spiff: {count} instances started in {start_wall:.2f} s")
    reader = spiff_connect(path)
    serializer = BpmnWorkflowSerializer()
    waves = Waves()
    last_read: list[str] = []

    def wave_calls(nodes: tuple[str, ...], after: int = 0) -> list[Callable[[], None]]:
        """The steps of one wave: the ready tasks named ``nodes`` of instances > after."""
        found: list[tuple[int, int, Callable[[], None]]] = []
        for instance_id, state in reader.execute(
            "SELECT id, state FROM instance WHERE id > ? ORDER BY id", (after,)
        ):
            workflow = serializer.deserialize_json(state)
            last_read[:] = [state]
            ready = workflow.get_tasks(state=TaskState.READY, manual=True)
            for position, task in enumerate(t for t in ready if t.task_spec.name in nodes):
                found.append((position, instance_id, step(instance_id, task.id)))
        if workload.interleave:
            # as xietong's countersign wave: signer by signer, across the instances
            found.sort(key=lambda item: (item[0], item[1]))
        return [call for _position, _instance, call in found]

    for wave, nodes in enumerate(workload.waves):
        calls = wave_calls(nodes)
        expected = count * workload.wave_sizes[wave]
        assert len(calls) == expected, (nodes, len(calls), expected)
        waves.run(clients, calls, f"spiff: {'+'.join(nodes)}")
    walls, latencies, cpu = waves.walls, waves.latencies, waves.cpu
    completed = sum(
        serializer.deserialize_json(state).is_completed()
        for (state,) in reader.execute("SELECT state FROM instance")
    )
    assert completed == count, (completed, count)
    # the last instance as read for its last step (re-serialized, as before)
    state_bytes = len(serializer.serialize_json(serializer.deserialize_json(last_read[0])))
    # function calls per step (cProfile; a count the machine's load does not move), on
    # one thread, for a few more instances
    (last,) = reader.execute("SELECT max(id) FROM instance").fetchone()
    start_calls = function_calls([start] * PROFILED_INSTANCES)
    steps = [call for nodes in workload.waves for call in wave_calls(nodes, last)]
    assert len(steps) == PROFILED_INSTANCES * workload.wave_sizes[0], len(steps)
    step_calls = function_calls(steps)
    for nodes in workload.waves[1:]:  # the later waves, now ready
        more = wave_calls(nodes, last)
        step_calls += function_calls(more)
        steps += more
    pragmas = {
        "journal_mode": reader.execute("PRAGMA journal_mode").fetchone()[0].upper(),
        "synchronous": {1: "NORMAL", 2: "FULL"}[
            spiff_connect(path).execute("PRAGMA synchronous").fetchone()[0]
        ],
    }
    reader.close()
    return {
        "task_completions_per_s": count * workload.per_instance / sum(walls),
        "instances_per_s": count / (start_wall + sum(walls)),
        "step_ms_p50": statistics.median(latencies),
        "step_ms_p95": percentile(latencies, 0.95),
        "pragmas": pragmas,
        "state_bytes": state_bytes,
        "state_bytes_mean_written": statistics.fmean(written),
        "state_bytes_max_written": max(written),
        "cpu_ms_per_completion": cpu / (count * workload.per_instance) * 1000,
        "function_calls_per_start": start_calls / PROFILED_INSTANCES,
        "function_calls_per_completion": step_calls / len(steps),
    }


# --- the SQLite commit ceiling ---------------------------------------------------------


def commit_ceiling(tmp: Path, synchronous: str, commits: int) -> dict[str, float]:
    """Single-row INSERT transactions per second on one connection, WAL mode."""
    path = tmp / f"ceiling-{synchronous.lower()}.db"
    db = spiff_connect(path, synchronous)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    payload = "x" * 200
    commit_s = 0.0
    clock = time.perf_counter
    began = clock()
    for _ in range(commits):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (v) VALUES (?)", (payload,))
        before = clock()
        db.execute("COMMIT")
        commit_s += clock() - before
    wall = clock() - began
    db.close()
    return {"per_s": commits / wall, "commit_ms": commit_s / commits * 1000}


# --- the run ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="xietong-bench-wf-") as name:
        tmp = Path(name)
        log("SQLite commit ceiling (WAL; FULL and NORMAL)")
        full = commit_ceiling(tmp, "FULL", args.commits)
        normal = commit_ceiling(tmp, "NORMAL", args.commits)
        log(f"  FULL {full['per_s']:,.0f}/s, NORMAL {normal['per_s']:,.0f}/s")
        spiff = bench_spiff(tmp, args.instances, args.clients)
        sqlite = run_sqlite(tmp, args.instances, args.clients)
        spiff_cs = cs = None
        if args.countersign_instances > 0:
            spiff_cs = bench_spiff(
                tmp,
                args.countersign_instances,
                args.clients,
                countersign_spiff(args.signers),
            )
            cs = bench_countersign_xietong(
                tmp, args.countersign_instances, args.clients, args.signers
            )
        pg = (
            run_postgres(
                tmp,
                args.pg_instances,
                args.clients,
                args.pg_processes,
                args.todo_scale,
                args.todo_users,
            )
            if not args.no_postgres
            else None
        )
    ratio = sqlite["task_completions_per_s"] / spiff["task_completions_per_s"]
    todo = pg["todo"] if pg else None
    # PostgreSQL: the headline stays the one process's threads (as in earlier runs);
    # the run with the clients in several processes (as a deployment runs several
    # worker processes) is reported beside it, and the target counts as met by either
    pg_many = pg["processes"] if pg and pg["processes"] else None
    pg_best = max(pg, pg_many, key=lambda run: run["task_completions_per_s"]) if pg_many else pg
    result: dict[str, Any] = {
        "instances": args.instances,
        "postgres_instances": args.pg_instances if pg else None,
        "clients": args.clients,
        "bpmn": str(BPMN.relative_to(ROOT)),
        "xietong_sqlite_task_completions_per_s": round(sqlite["task_completions_per_s"], 1),
        "xietong_sqlite_instances_per_s": round(sqlite["instances_per_s"], 1),
        "xietong_sqlite_starts_per_s": round(sqlite["starts_per_s"], 1),
        "xietong_sqlite_step_ms_p50": round(sqlite["step_ms_p50"], 2),
        "xietong_sqlite_step_ms_p95": round(sqlite["step_ms_p95"], 2),
        "xietong_sqlite_cpu_ms_per_completion": round(sqlite["cpu_ms_per_completion"], 2),
        "xietong_sqlite_statements_per_start": round(sqlite["statements"]["start"], 1),
        "xietong_sqlite_statements_per_completion": round(sqlite["statements"]["completion"], 1),
        "xietong_sqlite_step_ms_one_client": round(sqlite["statements"]["step_ms_one_client"], 3),
        "xietong_sqlite_commit_ms_one_client": round(
            sqlite["statements"]["commit_ms_one_client"], 3
        ),
        "xietong_sqlite_commit_share": round(
            sqlite["statements"]["commit_ms_one_client"]
            / sqlite["statements"]["step_ms_one_client"],
            3,
        ),
        "xietong_sqlite": sqlite["pragmas"],
        "xietong_postgres_task_completions_per_s": (
            round(pg["task_completions_per_s"], 1) if pg else None
        ),
        "xietong_postgres_processes_task_completions_per_s": (
            round(pg_many["task_completions_per_s"], 1) if pg_many else None
        ),
        "xietong_postgres_client_processes": pg_many["processes"] if pg_many else None,
        "xietong_postgres_threads_per_process": pg_many["threads"] if pg_many else None,
        "xietong_postgres_processes_step_ms_p50": (
            round(pg_many["step_ms_p50"], 2) if pg_many else None
        ),
        "xietong_postgres_processes_step_ms_p95": (
            round(pg_many["step_ms_p95"], 2) if pg_many else None
        ),
        "xietong_postgres_processes_cpu_ms_per_completion": (
            round(pg_many["cpu_ms_per_completion"], 2) if pg_many else None
        ),
        "xietong_postgres_processes_instances_per_s": (
            round(pg_many["instances_per_s"], 1) if pg_many else None
        ),
        "xietong_postgres_instances_per_s": round(pg["instances_per_s"], 1) if pg else None,
        "xietong_postgres_starts_per_s": round(pg["starts_per_s"], 1) if pg else None,
        "xietong_postgres_step_ms_p50": round(pg["step_ms_p50"], 2) if pg else None,
        "xietong_postgres_step_ms_p95": round(pg["step_ms_p95"], 2) if pg else None,
        "xietong_postgres_cpu_ms_per_completion": (
            round(pg["cpu_ms_per_completion"], 2) if pg else None
        ),
        "xietong_postgres_step_ms_one_client": (
            round(pg["statements"]["step_ms_one_client"], 3) if pg else None
        ),
        "xietong_postgres_commit_ms_one_client": (
            round(pg["statements"]["commit_ms_one_client"], 3) if pg else None
        ),
        "xietong_postgres_statements_per_completion": (
            round(pg["statements"]["completion"], 1) if pg else None
        ),
        "xietong_postgres_round_trips_per_completion": (
            round(pg["statements"]["completion_round_trips"], 1) if pg else None
        ),
        "xietong_postgres_audit_lock_ms_p50": (
            round(pg["audit_lock"]["p50_ms"], 2) if pg else None
        ),
        "xietong_postgres_audit_lock_ms_p95": (
            round(pg["audit_lock"]["p95_ms"], 2) if pg else None
        ),
        "xietong_postgres_audit_lock_share_of_wall": (
            round(pg["audit_lock"]["share_of_wall"], 2) if pg else None
        ),
        "postgres": pg["settings"] if pg else None,
        "postgres_commit_ceiling_per_s": round(pg["ceiling"]["per_s"], 1) if pg else None,
        "postgres_commit_ms": round(pg["ceiling"]["commit_ms"], 3) if pg else None,
        "spiffworkflow_version": version("SpiffWorkflow"),
        "spiffworkflow_task_completions_per_s": round(spiff["task_completions_per_s"], 1),
        "spiffworkflow_instances_per_s": round(spiff["instances_per_s"], 1),
        "spiffworkflow_step_ms_p50": round(spiff["step_ms_p50"], 2),
        "spiffworkflow_step_ms_p95": round(spiff["step_ms_p95"], 2),
        "spiffworkflow_cpu_ms_per_completion": round(spiff["cpu_ms_per_completion"], 2),
        "spiffworkflow_state_bytes": spiff["state_bytes"],
        "spiffworkflow_sqlite": spiff["pragmas"],
        "sqlite_commit_ceiling_per_s": round(full["per_s"], 1),
        "sqlite_commit_ms": round(full["commit_ms"], 3),
        "sqlite_commit_ceiling_normal_per_s": round(normal["per_s"], 1),
        "sqlite_commit_normal_ms": round(normal["commit_ms"], 3),
        "ratio_vs_spiffworkflow": round(ratio, 2),
        "xietong_sqlite_function_calls_per_start": round(sqlite["function_calls"]["start"], 1),
        "xietong_sqlite_function_calls_per_completion": round(
            sqlite["function_calls"]["completion"], 1
        ),
        "spiffworkflow_function_calls_per_start": round(spiff["function_calls_per_start"], 1),
        "spiffworkflow_function_calls_per_completion": round(
            spiff["function_calls_per_completion"], 1
        ),
        **countersign_keys(args, cs, spiff_cs),
        "todo_query_p95_ms_1m_open_tasks_postgres": (
            round(todo["p95_ms"], 2) if todo and args.todo_scale >= 1_000_000 else None
        ),
        "todo": (
            {
                key: round(value, 2) if isinstance(value, float) else value
                for key, value in todo.items()
            }
            if todo
            else None
        ),
        "targets": {
            "ratio_vs_spiffworkflow": TARGET_RATIO,
            "xietong_postgres_task_completions_per_s": TARGET_PG_PER_S,
            "todo_query_p95_ms_1m_open_tasks_postgres": TARGET_TODO_P95_MS,
        },
    }
    result["met"] = {
        "ratio_vs_spiffworkflow": ratio >= TARGET_RATIO,
        "xietong_postgres_task_completions_per_s": (
            pg_best["task_completions_per_s"] >= TARGET_PG_PER_S if pg_best else None
        ),
        "todo_query_p95_ms_1m_open_tasks_postgres": (
            todo["p95_ms"] <= TARGET_TODO_P95_MS if todo and args.todo_scale >= 1_000_000 else None
        ),
    }
    result["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": version("sqlalchemy"),
        "psycopg": version("psycopg"),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    return result


def countersign_keys(
    args: argparse.Namespace, cs: dict[str, Any] | None, spiff: dict[str, Any] | None
) -> dict[str, Any]:
    """The second workload's keys (all None when it was skipped)."""
    keys: dict[str, Any] = {
        "countersign_bpmn": str(COUNTERSIGN_BPMN.relative_to(ROOT)),
        "countersign_instances": args.countersign_instances if cs else None,
        "countersign_signers": args.signers if cs else None,
    }
    figures = (
        "task_completions_per_s",
        "instances_per_s",
        "step_ms_p50",
        "step_ms_p95",
        "cpu_ms_per_completion",
        "function_calls_per_start",
        "function_calls_per_completion",
    )
    for prefix, run in (("xietong_sqlite", cs), ("spiffworkflow", spiff)):
        for figure in figures:
            value = run[figure] if run else None
            keys[f"{prefix}_countersign_{figure}"] = (
                round(value, 2 if "ms" in figure else 1) if value is not None else None
            )
    keys["spiffworkflow_countersign_state_bytes_mean_written"] = (
        round(spiff["state_bytes_mean_written"]) if spiff else None
    )
    keys["spiffworkflow_countersign_state_bytes_max_written"] = (
        spiff["state_bytes_max_written"] if spiff else None
    )
    keys["ratio_vs_spiffworkflow_countersign"] = (
        round(cs["task_completions_per_s"] / spiff["task_completions_per_s"], 2)
        if cs and spiff
        else None
    )
    return keys


def table(result: dict[str, Any]) -> str:
    def fmt(value: Any, unit: str = "") -> str:
        if value is None:
            return "-"
        return f"{value:,.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"

    machine = result["machine"]
    met = result["met"]
    lines = [
        f"workflow engine: {result['bpmn']}, {result['instances']:,} instances "
        f"(4 user tasks each), {result['clients']} client threads",
        f"machine: {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}, "
        f"SQLite {machine['sqlite']}, load average {machine['load_average_before'][0]} before, "
        f"{machine['load_average_after'][0]} after",
        "",
        f"{'':<44}{'completions/s':>15}{'instances/s':>13}{'step p50 ms':>13}{'p95 ms':>9}"
        f"{'CPU ms':>9}",
    ]
    many = result["xietong_postgres_client_processes"]
    rows = [
        ("xietong, SQLite (WAL, FULL)", "xietong_sqlite", "xietong_sqlite"),
        ("xietong, PostgreSQL, 1 process", "xietong_postgres", "xietong_postgres"),
    ]
    if many:
        label = f"xietong, PostgreSQL, {many} processes"
        rows.append((label, "xietong_postgres_processes", "xietong_postgres_processes"))
    spiff = f"SpiffWorkflow {result['spiffworkflow_version']}, SQLite (WAL, FULL)"
    rows.append((spiff, "spiffworkflow", "spiffworkflow"))
    for label, rate, prefix in rows:
        lines.append(
            f"{label:<44}{fmt(result[f'{rate}_task_completions_per_s']):>15}"
            f"{fmt(result[f'{prefix}_instances_per_s']):>13}"
            f"{fmt(result[f'{prefix}_step_ms_p50']):>13}{fmt(result[f'{prefix}_step_ms_p95']):>9}"
            f"{fmt(result[f'{prefix}_cpu_ms_per_completion']):>9}"
        )
    lines += [
        "",
        f"SQLite commit ceiling (one connection): FULL {fmt(result['sqlite_commit_ceiling_per_s'])}"
        f"/s ({result['sqlite_commit_ms']} ms per COMMIT), NORMAL "
        f"{fmt(result['sqlite_commit_ceiling_normal_per_s'])}/s",
        f"SQL statements per completion (at the driver): SQLite "
        f"{result['xietong_sqlite_statements_per_completion']}, PostgreSQL "
        f"{fmt(result['xietong_postgres_statements_per_completion'])} in "
        f"{fmt(result['xietong_postgres_round_trips_per_completion'])} round trips",
        f"todo p95 at 1M open tasks (PostgreSQL): "
        f"{fmt(result['todo_query_p95_ms_1m_open_tasks_postgres'], ' ms')}",
        f"audit lock held per step (PostgreSQL): p50 "
        f"{fmt(result['xietong_postgres_audit_lock_ms_p50'], ' ms')}, p95 "
        f"{fmt(result['xietong_postgres_audit_lock_ms_p95'], ' ms')}, "
        f"{fmt(result['xietong_postgres_audit_lock_share_of_wall'])} of the wall time",
        "",
        f"ratio vs SpiffWorkflow: {result['ratio_vs_spiffworkflow']}× "
        f"(target ≥ {TARGET_RATIO}×: {'met' if met['ratio_vs_spiffworkflow'] else 'NOT met'})",
    ]
    if result["countersign_instances"]:
        lines += [
            "",
            f"second workload, {result['countersign_bpmn']}: {result['countersign_instances']} "
            f"instances, a 会签 of {result['countersign_signers']} signers then 审批 (SQLite)",
        ]
        for label, prefix in (
            ("xietong", "xietong_sqlite_countersign"),
            ("SpiffWorkflow", "spiffworkflow_countersign"),
        ):
            lines.append(
                f"  {label:<14} {fmt(result[f'{prefix}_task_completions_per_s'])} completions/s, "
                f"p50 {fmt(result[f'{prefix}_step_ms_p50'])} ms, "
                f"CPU {fmt(result[f'{prefix}_cpu_ms_per_completion'])} ms, "
                f"{fmt(result[f'{prefix}_function_calls_per_completion'])} calls per completion"
            )
        lines.append(
            f"  ratio vs SpiffWorkflow: {result['ratio_vs_spiffworkflow_countersign']}× "
            "(SpiffWorkflow's state: "
            f"{result['spiffworkflow_countersign_state_bytes_mean_written']} bytes per step)"
        )
    for key, label, target in (
        ("xietong_postgres_task_completions_per_s", "PostgreSQL completions/s", "≥ 1,000/s"),
        ("todo_query_p95_ms_1m_open_tasks_postgres", "todo p95 at 1M", "≤ 20 ms"),
    ):
        verdict = {True: "met", False: "NOT met", None: "not measured"}[met[key]]
        lines.append(f"{label} (target {target}): {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--instances", type=int, default=500, help="instances on SQLite")
    parser.add_argument(
        "--pg-instances", type=int, default=None, help="instances on PostgreSQL (default: 2×N)"
    )
    parser.add_argument("--clients", type=int, default=8, help="client threads")
    parser.add_argument("--commits", type=int, default=2000, help="commits for the ceiling")
    parser.add_argument(
        "--todo-scale",
        type=int,
        default=1_000_000,
        help="open tasks to bulk-load for the todo query (0 skips it)",
    )
    parser.add_argument("--todo-users", type=int, default=100, help="users whose todo is timed")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument(
        "--countersign-instances",
        type=int,
        default=COUNTERSIGN_INSTANCES,
        help="instances of the second workload, a 会签 then 审批, on SQLite (0 skips it)",
    )
    parser.add_argument(
        "--signers", type=int, default=COUNTERSIGN_SIGNERS, help="signers of that 会签"
    )
    parser.add_argument(
        "--pg-processes",
        type=int,
        default=4,
        help="PostgreSQL: also run the clients in this many processes (1 skips it)",
    )

    args = parser.parse_args(argv)
    if args.pg_instances is None:
        args.pg_instances = 2 * args.instances
    if args.instances < 1 or args.clients < 1:
        parser.error("need --instances >= 1 and --clients >= 1")
    if args.countersign_instances < 0 or args.signers < 1:
        parser.error("need --countersign-instances >= 0 and --signers >= 1")
    result = run(args)
    print(json.dumps(result, ensure_ascii=False) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
