"""The sharing gateway's cost: queries/s through the gateway against the provider direct.

    python bench/exchange.py [--json] [--seconds S] [--clients C] [--delay-ms D]
                             [--rows R] [--workers W] [--postgres URL]

A provider service (``demo_provider.asgi_app`` under uvicorn, its own process) answers
every call after ``--delay-ms`` of simulated backend work (5 ms: a department database
behind an API). The platform is set up in a temporary directory — two departments, a
published resource with five items (three of them masked), its REST connector, a
connected system, an unconditional grant — and served by uvicorn in its own
process(es). Then, in one run, at the same concurrency and with the same page size:

1. **direct**: C clients POST the connector's own request to the provider;
2. **gateway**: C clients POST ``/api/v1/exchange/resources/{code}/query`` with the
   system's API key — access check, connector call, schema check, masking, one audit
   leaf and a query-log row committed per query, the answer with its audit index.

Load generator, gateway and provider share the machine's cores, so throughput swings
with whatever else runs; the CPU time the gateway and the provider spend per answered
query (from ``/proc``) is reported too and is steadier. Both run on uvicorn, which uses
uvloop and httptools when installed (``server`` in the output), access log off.
Progress goes to stderr; the result (a table, or one JSON object with ``--json``) to
stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

ITEMS = ["姓名", "公民身份号码", "性别", "出生日期", "手机号码"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def run_provider(port: int, delay_ms: float, rows: int) -> None:
    """The provider process (``--provider``)."""
    import uvicorn

    from xietong.apps.exchange.demo_provider import asgi_app
    from xietong.apps.exchange.fake import people

    app = asgi_app(people(max(rows * 4, 200)), delay_s=delay_ms / 1000)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def setup_platform(data_dir: Path, database_url: str | None, provider_url: str) -> tuple[str, str]:
    """A platform with one granted resource; returns (resource code, API key)."""
    from xietong.apps.exchange import connector_service, grants, service
    from xietong.apps.exchange.connectors.settings import ConnectorInput
    from xietong.apps.exchange.rules import CategoryLevel, ItemInput, ResourceInput
    from xietong.config import Settings
    from xietong.kernel.access import Role, operator_actor
    from xietong.kernel.context import open_context
    from xietong.kernel.keys import ensure_keys
    from xietong.kernel.org import service as org
    from xietong.kernel.org.models import User
    from xietong.kernel.org.scopes import actor_for_user
    from xietong.kernel.org.systems import register_connected_system
    from xietong.migrate import upgrade
    from xietong.plugins import load_models, plugin_manager

    settings = Settings(data_dir=data_dir, database_url=database_url)
    ensure_keys(settings.keys_dir)
    load_models()
    ctx = open_context(settings, hooks=plugin_manager().hook)
    upgrade(ctx.db.engine)
    op = operator_actor("bench")
    org.create_region(ctx, op, "430000", "湖南省", "province")
    org.create_region(ctx, op, "430100", "长沙市", "city", "430000")
    gaj = org.create_department(ctx, op, "430100-ga", "长沙市公安局", "430100")
    wjw = org.create_department(ctx, op, "430100-wjw", "长沙市卫生健康委员会", "430100")
    user = org.add_user(ctx, op, "steward", "数据管理员", "bench-password")
    org.grant_membership(ctx, op, user.id, wjw.id, Role.DATA_STEWARD)
    with ctx.db.read() as session:
        steward = actor_for_user(session, session.get_one(User, user.id))
    types = {"出生日期": "date"}
    entry = ResourceInput(
        name="户籍人口基本信息",
        category=(
            CategoryLevel("1", "基础信息资源"),
            CategoryLevel("01", "人口基础信息"),
            CategoryLevel("001", "户籍人口"),
        ),
        provider_code=gaj.code,
        summary="户籍人口的身份与户籍登记信息。",
        format="database",
        share_type="unconditional",
        update_cycle="realtime",
        items=tuple(ItemInput(n, types.get(n, "string"), "sensitive") for n in ITEMS),
        share_methods=("api",),
    )
    code = service.create_resource(ctx, op, entry).code
    service.publish_resource(ctx, op, code)
    connector_service.configure_connector(
        ctx, op, code, ConnectorInput("rest", {"url": provider_url, "retries": 0}, None, {})
    )
    request = grants.submit_request(
        ctx,
        steward,
        grants.RequestInput(
            code, tuple(ITEMS), "出生一件事", "基准测试", date.today() + timedelta(days=30)
        ),
    )
    assert request.grant_id is not None
    grants.set_rate_limit(ctx, op, request.grant_id, grants.MAX_RATE)
    issued = register_connected_system(ctx, op, "wjw-sys", "卫健业务系统", wjw.id, [])
    ctx.close()
    return code, issued.api_key


async def load(
    url: str, body: dict[str, Any], headers: dict[str, str], clients: int, seconds: float
) -> tuple[int, list[float], int]:
    """C keep-alive connections posting for ``seconds`` after a 1 s warm-up.

    A hand-rolled HTTP/1.1 client on asyncio streams: the request bytes are built once,
    and a response costs a header scan and one read. A full client library costs
    more CPU per request than the 5 ms provider; on a shared 2-core machine it would
    measure itself. Returns (answers 200, latencies in ms, errors).
    """
    parts = httpx.URL(url)
    payload = json.dumps(body).encode("utf-8")
    head = [
        f"POST {parts.raw_path.decode()} HTTP/1.1",
        f"Host: {parts.host}:{parts.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    request = ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + payload
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    warm, stop = start + 1.0, start + 1.0 + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        try:
            while True:
                began = time.perf_counter()
                if began >= stop:
                    return
                writer.write(request)
                header = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in header.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                ended = time.perf_counter()
                if began < warm:
                    continue
                if header.startswith(b"HTTP/1.1 200"):
                    latencies.append((ended - began) * 1000)
                else:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(clients)))
    return len(latencies), latencies, errors


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its children so far (Linux ``/proc``).

    On a shared machine throughput swings with other jobs; CPU time per query does not,
    so the bench reports it for the provider and the gateway (workers included).
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(each) for each in children.read_text().split()]
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def mean_batch(data_dir: Path, database_url: str | None) -> float | None:
    """Queries per group commit: every leaf of a batch carries the batch's one time."""
    from sqlalchemy import create_engine, text

    from xietong.config import Settings

    engine = create_engine(Settings(data_dir=data_dir, database_url=database_url).sqlalchemy_url)
    try:
        with engine.connect() as connection:
            rows, batches = connection.execute(
                text("SELECT count(*), count(DISTINCT created_at) FROM exchange_query_log")
            ).one()
    finally:
        engine.dispose()
    return round(rows / batches, 1) if batches else None


def _accelerators() -> list[str]:
    """What uvicorn runs on (it picks uvloop and httptools by itself when installed)."""
    import importlib.util

    found = [name for name in ("uvloop", "httptools") if importlib.util.find_spec(name)]
    return found or ["asyncio", "h11"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--rows", type=int, default=10, help="rows per page")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL (default SQLite)")
    parser.add_argument("--provider", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.provider:
        run_provider(int(args.provider[0]), float(args.provider[1]), int(args.provider[2]))
        return

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    provider_port, gateway_port = free_port(), free_port()
    provider_url = f"http://127.0.0.1:{provider_port}/"
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="xietong-bench-exchange-") as tmp:
        try:
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--provider",
                        str(provider_port),
                        str(args.delay_ms),
                        str(args.rows),
                    ],
                    env=env,
                )
            )
            wait_for(provider_url + "health")
            log("setting up the platform …")
            code, key = setup_platform(Path(tmp), args.postgres, provider_url)
            gateway_env = {**env, "XIETONG_DATA_DIR": tmp}
            if args.postgres:
                gateway_env["XIETONG_DATABASE_URL"] = args.postgres
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "xietong.app:create_app",
                        "--factory",
                        "--port",
                        str(gateway_port),
                        "--workers",
                        str(args.workers),
                        "--log-level",
                        "warning",
                        "--no-access-log",
                    ],
                    env=gateway_env,
                    cwd=tmp,
                )
            )
            gateway = f"http://127.0.0.1:{gateway_port}"
            wait_for(gateway + "/healthz")
            direct_body = {"fields": ITEMS, "filters": {}, "limit": args.rows + 1, "offset": 0}
            headers = {"X-API-Key": key, "X-Xietong-Client": "wjw/birth-bundle"}
            check = httpx.post(
                f"{gateway}/api/v1/exchange/resources/{code}/query",
                json={"limit": args.rows},
                headers=headers,
            )
            assert check.status_code == 200, check.text
            assert "X-Xietong-Audit-Index" in check.headers
            provider_pid, gateway_pid = processes[0].pid, processes[1].pid
            log(f"direct: {args.clients} clients for {args.seconds:g} s …")
            before = cpu_seconds(provider_pid)
            d_ok, d_lat, d_err = asyncio.run(
                load(provider_url, direct_body, {}, args.clients, args.seconds)
            )
            direct_cpu = cpu_seconds(provider_pid) - before
            log(f"gateway: {args.clients} clients for {args.seconds:g} s …")
            before_p, before_g = cpu_seconds(provider_pid), cpu_seconds(gateway_pid)
            g_ok, g_lat, g_err = asyncio.run(
                load(
                    f"{gateway}/api/v1/exchange/resources/{code}/query",
                    {"limit": args.rows},
                    headers,
                    args.clients,
                    args.seconds,
                )
            )
            gateway_cpu = cpu_seconds(gateway_pid) - before_g
            provider_cpu = cpu_seconds(provider_pid) - before_p
            batch = mean_batch(Path(tmp), args.postgres)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=10)
    direct_rps, gateway_rps = d_ok / args.seconds, g_ok / args.seconds
    result = {
        "clients": args.clients,
        "delay_ms": args.delay_ms,
        "rows_per_page": args.rows,
        "seconds": args.seconds,
        "store": "postgresql" if args.postgres else "sqlite",
        "gateway_workers": args.workers,
        "direct_rps": round(direct_rps, 1),
        "gateway_rps": round(gateway_rps, 1),
        "ratio": round(gateway_rps / direct_rps, 3) if direct_rps else 0.0,
        "direct_p50_ms": round(statistics.median(d_lat), 2) if d_lat else None,
        "direct_p99_ms": round(percentile(d_lat, 0.99), 2),
        "gateway_p50_ms": round(statistics.median(g_lat), 2) if g_lat else None,
        "gateway_p99_ms": round(percentile(g_lat, 0.99), 2),
        "added_p50_ms": round(statistics.median(g_lat) - statistics.median(d_lat), 2)
        if d_lat and g_lat
        else None,
        "added_p99_ms": round(percentile(g_lat, 0.99) - percentile(d_lat, 0.99), 2),
        # CPU time per answered query (the runs include the 1 s warm-up: an upper bound)
        "provider_cpu_ms_per_query": round(1000 * direct_cpu / d_ok, 3) if d_ok else None,
        "gateway_cpu_ms_per_query": round(1000 * gateway_cpu / g_ok, 3) if g_ok else None,
        "provider_cpu_ms_per_gateway_query": round(1000 * provider_cpu / g_ok, 3) if g_ok else None,
        "queries_per_commit": batch,
        "server": "uvicorn " + "+".join(_accelerators()),
        "errors": d_err + g_err,
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>16}  {value}")


if __name__ == "__main__":
    main()
