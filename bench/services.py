"""Benchmark 一件事一次办: complete 出生一件事 applications per second.

    python bench/services.py [--json] [--applications N] [--clients C] [--http-clients H]
        [--parts sqlite,postgresql,http]

A complete application is what the walkthrough does: submit once (the merged form, five
materials already uploaded), then the four clerks of 卫健委, 公安局, 医保局 and 人社局
each approve their sub-case — five transactions, each with its audit leaf and events,
starting four process instances, completing four tasks and issuing five signed
documents. Measured:

1. **service layer on SQLite** (WAL, ``synchronous=FULL``), C client threads, each
   driving whole applications through ``applications.submit`` and ``workbench.approve``;
2. **the same on PostgreSQL** (127.0.0.1:5432; a scratch database is created and dropped);
3. **the HTTP API** (uvicorn, SQLite) under H concurrent clients, each driving whole
   applications over HTTP (submit, four approvals, one read): requests per second,
   applications per second, latency p50 / p95 / p99, and the server's CPU time per
   request (from ``/proc``). The server runs in a process of its own, as it would in
   production, so the clients' CPU is not counted as the server's and the clients do
   not share the server's interpreter lock.

Before the threaded run of (1) and (2), one thread drives up to 20 applications alone
and counts SQL statements, commits and CPU time per application: figures the load of a
shared machine moves far less than throughput.

Prints a table, or with ``--json`` one JSON object. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, event, select, text

from xietong.apps.services import applications, demo, files, workbench
from xietong.config import Settings
from xietong.kernel.access import Actor, Role, operator_actor
from xietong.kernel.calendar import WorkCalendar
from xietong.kernel.context import Context
from xietong.kernel.db import Database
from xietong.kernel.keys import Keys, ensure_keys
from xietong.kernel.org import service
from xietong.kernel.org.models import User
from xietong.kernel.org.scopes import actor_for_user
from xietong.migrate import upgrade
from xietong.plugins import load_models, plugin_manager

PG_ADMIN_URL = os.environ.get(
    "XIETONG_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DEPARTMENTS = [("wjw", "卫健委"), ("ga", "公安局"), ("yb", "医保局"), ("rs", "人社局")]
OUTPUTS = {
    "wjw": {"birth_cert_no": "T1"},
    "ga": {"id_number": "430102202611200011"},
    "yb": {"insurance_no": "YB1"},
    "rs": {"card_no": "SB1"},
}
FORM = {
    "baby_name": "张小宝",
    "baby_gender": "男",
    "birth_date": "2026-11-20",
    "birth_place": "湖南省妇幼保健院",
    "mother_name": "李红",
    "mother_id_number": "430103199207082468",
    "father_name": "张晓明",
    "father_id_number": "430102199003151234",
    "household_address": "长沙市芙蓉区五一大道 1 号",
    "guardian_mobile": "13800000001",
    "mailing_address": "长沙市芙蓉区五一大道 1 号",
}
PASSWORD = "bench-pass"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def open_ctx(url: str, data_dir: Path) -> Context:
    load_models()
    settings = Settings(data_dir=data_dir, database_url=url)
    ensure_keys(settings.keys_dir)
    db = Database(settings.sqlalchemy_url)
    upgrade(db.engine)
    ctx = Context(
        settings=settings, db=db, keys=Keys.load(settings.keys_dir), hooks=plugin_manager().hook
    )
    ctx.calendar = WorkCalendar(db)
    return ctx


def setup(ctx: Context, clients: int) -> dict[str, Any]:
    """Departments with a clerk each, C citizens with their materials uploaded."""
    op = operator_actor("bench")
    service.create_region(ctx, op, "430000", "湖南省", "province")
    service.create_region(ctx, op, "430100", "长沙市", "city", "430000")
    for key, name in DEPARTMENTS:
        dept = service.create_department(ctx, op, f"430100-{key}", name, "430100")
        user = service.add_user(ctx, op, f"{key}.clerk", f"{name}窗口", PASSWORD)
        service.grant_membership(ctx, op, user.id, dept.id, Role.WINDOW_CLERK)
    for key, name in (("scjg", "市场监管局"), ("sw", "税务局")):  # the other demo bundle's
        service.create_department(ctx, op, f"430100-{key}", name, "430100")
    demo.load_catalogue(ctx, op)
    citizens = []
    for index in range(clients):
        service.add_user(ctx, op, f"citizen{index}", f"市民{index}", PASSWORD)
        actor = actor_of(ctx, f"citizen{index}")
        materials = {
            code: files.upload(ctx, actor, f"{code}.pdf", b"%PDF-1.7\n" + code.encode()).sha256
            for code in ("parents_id", "delivery_record", "hukou_book", "baby_photo")
        }
        citizens.append((actor, materials))
    clerks = {key: actor_of(ctx, f"{key}.clerk") for key, _ in DEPARTMENTS}
    return {"citizens": citizens, "clerks": clerks}


def actor_of(ctx: Context, username: str) -> Actor:
    with ctx.db.read() as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None
        return actor_for_user(session, user)


def one_application(ctx: Context, world: dict[str, Any], client: int) -> None:
    actor, materials = world["citizens"][client]
    view = applications.submit(ctx, actor, "birth", FORM, materials, uuid.uuid4().hex)
    subs = {s.matter_code.split("-")[1].lower(): s.id for s in view.sub_cases}
    for key in ("wjw", "ga", "yb", "rs"):  # in dependency order
        workbench.approve(ctx, world["clerks"][key], subs[key], outputs=OUTPUTS[key])


def run_clients(clients: int, per_client: int, work: Callable[[int], None]) -> float:
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        barrier.wait()
        try:
            for _ in range(per_client):
                work(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def service_layer(url: str, data_dir: Path, total: int, clients: int) -> dict[str, Any]:
    ctx = open_ctx(url, data_dir)
    try:
        world = setup(ctx, clients)
        one_application(ctx, world, 0)  # warm caches (process graphs, statements)
        cost = cost_per_application(ctx, world, min(20, total))
        per_client = max(total // clients, 1)
        elapsed = run_clients(clients, per_client, lambda i: one_application(ctx, world, i))
        done = per_client * clients
        return {
            "applications": done,
            "clients": clients,
            "seconds": round(elapsed, 3),
            "applications_per_s": round(done / elapsed, 1),
            "transactions_per_s": round(5 * done / elapsed, 1),
            **cost,
        }
    finally:
        ctx.close()


def cost_per_application(ctx: Context, world: dict[str, Any], count: int) -> dict[str, Any]:
    """One thread, nothing else running in this process: SQL statements, commits and
    CPU per application — figures the machine's load does not move much."""
    counts = {"statements": 0, "commits": 0}

    def statement(*_args: Any) -> None:
        counts["statements"] += 1

    def commit(*_args: Any) -> None:
        counts["commits"] += 1

    event.listen(ctx.db.engine, "before_cursor_execute", statement)
    event.listen(ctx.db.engine, "commit", commit)
    cpu = time.process_time()
    try:
        for _ in range(count):
            one_application(ctx, world, 0)
    finally:
        cpu = time.process_time() - cpu
        event.remove(ctx.db.engine, "before_cursor_execute", statement)
        event.remove(ctx.db.engine, "commit", commit)
    return {
        "statements_per_application": round(counts["statements"] / count, 1),
        "commits_per_application": round(counts["commits"] / count, 1),
        "cpu_ms_per_application": round(1000 * cpu / count, 1),
    }


class Abandon(Exception):
    """A request failed: the client gives up this application (counted, not raised)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(data_dir: Path, port: int) -> None:
    """The server process of the HTTP run (``--serve DATA_DIR PORT``)."""
    import uvicorn

    from xietong.app import create_app

    ctx = open_ctx(f"sqlite:///{data_dir / 'xietong.db'}", data_dir)
    try:
        uvicorn.run(create_app(ctx), host="127.0.0.1", port=port, log_level="warning")
    finally:
        ctx.close()


def http_api(data_dir: Path, total: int, clients: int) -> dict[str, Any]:
    ctx = open_ctx(f"sqlite:///{data_dir / 'xietong.db'}", data_dir)
    world = setup(ctx, clients)
    ctx.close()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(data_dir), str(port)], env=dict(os.environ)
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.1)
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    tokens: dict[str, dict[str, str]] = {}
    with httpx.Client(base_url=base) as setup_client:
        for username in [f"citizen{i}" for i in range(clients)] + [
            f"{k}.clerk" for k, _ in DEPARTMENTS
        ]:
            body = setup_client.post(
                "/api/v1/auth/token", json={"username": username, "password": PASSWORD}
            ).json()
            tokens[username] = {"Authorization": f"Bearer {body['access_token']}"}

    def timed(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            with lock:
                failures.append(f"{method} {url.split('/')[4]}: {type(error).__name__}")
            raise Abandon from None
        spent = time.perf_counter() - started
        with lock:
            latencies.append(spent)
        if response.status_code >= 400:
            with lock:
                failures.append(f"{method} {url.split('/')[4]}: {response.status_code}")
            raise Abandon
        return response

    clients_http = [httpx.Client(base_url=base, timeout=60) for _ in range(clients)]

    def one(index: int) -> None:
        # a failed request is counted in ``failures``; the client goes on with the next one
        with contextlib.suppress(Abandon):
            drive(index)

    def drive(index: int) -> None:
        client = clients_http[index]
        citizen = tokens[f"citizen{index}"]
        _actor, materials = world["citizens"][index]
        app = timed(
            client,
            "POST",
            "/api/v1/services/applications",
            headers={**citizen, "Idempotency-Key": uuid.uuid4().hex},
            json={"bundle": "birth", "form": FORM, "materials": materials},
        ).json()
        subs = {s["matter_code"].split("-")[1].lower(): s["id"] for s in app["sub_cases"]}
        for key in ("wjw", "ga", "yb", "rs"):
            timed(
                client,
                "POST",
                f"/api/v1/services/sub-cases/{subs[key]}/approve",
                headers=tokens[f"{key}.clerk"],
                json={"outputs": OUTPUTS[key]},
            )
        timed(client, "GET", f"/api/v1/services/applications/{app['number']}", headers=citizen)

    try:
        per_client = max(total // clients, 1)
        cpu = _cpu_seconds(server.pid)
        elapsed = run_clients(clients, per_client, one)
        cpu = _cpu_seconds(server.pid) - cpu
    finally:
        for client in clients_http:
            client.close()
        server.terminate()
        server.wait(timeout=30)
    done = per_client * clients
    return {
        "applications": done,
        "clients": clients,
        "requests": len(latencies),
        "failed_requests": len(failures),
        "failures": sorted(set(failures))[:5],
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "applications_per_s": round(done / elapsed, 1),
        "p50_ms": round(1000 * percentile(latencies, 0.50), 1),
        "p95_ms": round(1000 * percentile(latencies, 0.95), 1),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 1),
        "server_cpu_ms_per_request": round(1000 * cpu / max(len(latencies), 1), 2),
        "server_cpu_ms_per_application": round(1000 * cpu / done, 1),
    }


def postgres(total: int, clients: int) -> dict[str, Any] | None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"xietong_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        log(f"PostgreSQL unavailable: {error}")
        return None
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            return service_layer(url, Path(scratch), total, clients)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(Path(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--applications", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--http-clients", type=int, default=50)
    parser.add_argument("--http-applications", type=int, default=200)
    parser.add_argument(
        "--parts", default="sqlite,postgresql,http", help="which runs, comma-separated"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    result["sqlite"] = result["postgresql"] = result["http"] = None
    if "sqlite" in parts:
        with tempfile.TemporaryDirectory() as scratch:
            log("service layer, SQLite …")
            result["sqlite"] = service_layer(
                f"sqlite:///{Path(scratch) / 'xietong.db'}",
                Path(scratch),
                args.applications,
                args.clients,
            )
        log(f"  {result['sqlite']}")
    if "postgresql" in parts:
        log("service layer, PostgreSQL …")
        result["postgresql"] = postgres(args.applications, args.clients)
        log(f"  {result['postgresql']}")
    if "http" in parts:
        with tempfile.TemporaryDirectory() as scratch:
            log(f"HTTP API, {args.http_clients} clients …")
            result["http"] = http_api(Path(scratch), args.http_applications, args.http_clients)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return
    for name in ("sqlite", "postgresql"):
        row = result[name]
        if row:
            print(
                f"service layer {name:<10} {row['applications_per_s']:>8} applications/s "
                f"({row['transactions_per_s']} tx/s, {row['applications']} apps, "
                f"{row['clients']} threads; one thread: {row['statements_per_application']} "
                f"statements, {row['commits_per_application']} commits, "
                f"{row['cpu_ms_per_application']} ms CPU per application)"
            )
    http = result["http"]
    if not http:
        return
    print(
        f"HTTP API ({http['clients']} clients)  {http['requests_per_s']} requests/s, "
        f"{http['applications_per_s']} applications/s, p50 {http['p50_ms']} ms, "
        f"p95 {http['p95_ms']} ms, p99 {http['p99_ms']} ms, "
        f"server CPU {http['server_cpu_ms_per_request']} ms per request, "
        f"{http['failed_requests']} failed requests {http['failures']}"
    )


if __name__ == "__main__":
    main()
