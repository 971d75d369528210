"""A small provider service speaking the REST connector's contract, for demos and benches.

It stands in for a department's own system behind an API: ``POST /`` with
``{"fields", "filters", "limit", "offset"}`` answers ``{"rows": [...]}`` from a list of
rows held in memory, after ``delay_s`` of simulated backend work (a real department
database behind an API answers in milliseconds, not microseconds). ``GET /health``
answers ``ok``. A threaded ``http.server``: no dependency, good enough for 32 clients.

Several data sets can be served at once, one per path (``datasets={"/hukou": rows}``):
the demo city's provider service answers for the 公安局 and the 卫健委 that way.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Rows = list[dict[str, Any]]

# a query is a few filters and a page: anything bigger is no query
MAX_BODY = 64 * 1024


class ProviderServer:
    def __init__(
        self,
        rows: Rows,
        *,
        delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        transform: Callable[[Rows], Rows] | None = None,
        datasets: dict[str, Rows] | None = None,
        token: str | None = None,
    ) -> None:
        self.rows = rows
        self.token = token  # when set, every POST must carry "Authorization: Bearer <token>"
        self.datasets = {"/": rows, **(datasets or {})}
        self.delay_s = delay_s
        self.transform = transform
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without TCP_NODELAY, Nagle's
                # algorithm meets the client's delayed ACK and adds ~40 ms per answer.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(200, b"ok", "text/plain")

            def _refuse(self, status: int, body: bytes) -> None:
                # the unread body would be taken for the next request: end the connection
                self.close_connection = True
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                # the token before the body: an unauthenticated caller gets no read of
                # whatever length it announces
                if outer.token and self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self._refuse(401, b'{"error": "unauthorised"}')
                    return
                raw = self.headers.get("Content-Length") or "0"
                if not (raw.isascii() and raw.isdigit()):
                    self._refuse(400, b'{"error": "bad content-length"}')
                    return
                if int(raw) > MAX_BODY:
                    self._refuse(413, b'{"error": "too large"}')
                    return
                body = self.rfile.read(int(raw))
                rows = outer.datasets.get(self.path.split("?", 1)[0].rstrip("/") or "/")
                if rows is None:
                    self._send(404, b'{"error": "no such data set"}')
                    return
                try:
                    query = json.loads(body or b"{}")
                except ValueError:
                    self._send(400, b'{"error": "bad json"}')
                    return
                outer.calls += 1
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                answer = json.dumps({"rows": outer.answer(query, rows)}, ensure_ascii=False)
                self._send(200, answer.encode("utf-8"))

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # 32+ clients connect at once; the default is 5
            daemon_threads = True

        self.server = Server((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, query: dict[str, Any], rows: Rows | None = None) -> Rows:
        fields = query.get("fields") or []
        filters = query.get("filters") or {}
        limit, offset = int(query.get("limit", 100)), int(query.get("offset", 0))
        source = self.rows if rows is None else rows
        matched = [row for row in source if all(row.get(k) == v for k, v in filters.items())]
        after = query.get("after")
        if isinstance(after, dict):
            field, value = after.get("field"), after.get("value")
            matched = sorted(
                (row for row in matched if row.get(field) is not None and row[field] > value),
                key=lambda row: row[field],
            )
        page = [{f: row.get(f) for f in fields} if fields else dict(row) for row in matched]
        page = page[offset : offset + limit]
        return self.transform(page) if self.transform else page

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> ProviderServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def asgi_app(rows: Rows, delay_s: float = 0.0) -> Callable[..., Any]:
    """The same contract as an ASGI app (served by uvicorn: one event loop, no thread
    per connection), for loads where a thread per client would measure the GIL."""
    import asyncio

    helper = ProviderServer.__new__(ProviderServer)
    helper.rows, helper.transform = rows, None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST":
            if delay_s:
                await asyncio.sleep(delay_s)
            answer = json.dumps({"rows": helper.answer(json.loads(body or b"{}"))}).encode()
            kind = b"application/json"
        else:
            answer, kind = b"ok", b"text/plain"
        headers = [(b"content-type", kind), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app
