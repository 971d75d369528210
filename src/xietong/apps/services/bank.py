"""A bank's account-opening system, simulated, so 企业开办一件事 runs end to end.

The real thing sits outside the platform: the 企业开办 process posts the enterprise's
data to it as a signed webhook (Standard Webhooks, the secret of the bank's origin —
``xietong process webhook-secret URL``), the bank accepts at once (202 with its
ticket) and opens the account later, then answers through the platform's API
(``POST /api/v1/services/external-answers`` with the X-API-Key of its connected
system). This module is that bank, small enough to read as an integrator's example:

- ``BankSimulator.receive`` checks the signature (a forged or unsigned request gets
  401 and is not queued), deduplicates on ``webhook-id`` (the platform retries with the
  same id) and queues the answer;
- ``BankSimulator.answer_due`` posts the answers whose delay has passed;
- ``serve`` runs both behind a small HTTP server (``xietong services bank-simulator``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

ANSWER_PATH = "/api/v1/services/external-answers"
MAX_BODY = 1_000_000


@dataclass
class Pending:
    due: float  # time.monotonic() when the bank answers
    reference: str
    account_no: str


@dataclass
class BankSimulator:
    secret: str
    delay_s: float = 3.0
    answers: bool = True  # False: accept every request and never answer
    now: Callable[[], float] = time.monotonic
    pending: list[Pending] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """One webhook from the platform: (HTTP status, JSON answer)."""
        try:
            payload = Webhook(self.secret).verify(body, dict(headers))
        except (WebhookVerificationError, ValueError) as error:
            return 401, {"error": f"signature rejected: {error}"}
        variables = payload.get("variables") if isinstance(payload, dict) else None
        form = (variables or {}).get("form") or {}
        number, matter = (
            (variables or {}).get("application_number"),
            (variables or {}).get("matter_code"),
        )
        if not (number and matter and form.get("uscc") and form.get("company_name")):
            return 422, {"error": "application_number, matter_code, form.uscc required"}
        reference = f"{number}/{matter}"
        account = account_number(reference)
        message_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        with self._lock:
            if message_id not in self.seen:
                self.seen.add(message_id)
                if self.answers:
                    self.pending.append(Pending(self.now() + self.delay_s, reference, account))
        return 202, {"bank_ticket": f"KH{account[-8:]}"}

    def take_due(self) -> list[Pending]:
        now = self.now()
        with self._lock:
            due = [p for p in self.pending if p.due <= now]
            self.pending = [p for p in self.pending if p.due > now]
        return due

    def answer_due(self, client: httpx.Client, api_key: str) -> list[httpx.Response]:
        """Post every answer whose time has come; a failed post is tried again later."""
        responses = []
        for item in self.take_due():
            try:
                response = post_answer(client, api_key, item.reference, item.account_no)
            except httpx.HTTPError:
                response = None
            if response is None or response.status_code >= 500:
                with self._lock:
                    self.pending.append(replace(item, due=self.now() + self.delay_s))
                continue
            responses.append(response)
        return responses


def account_number(reference: str) -> str:
    """A stable 19-digit account number for a reference (the same on every retry)."""
    digits = str(int(hashlib.sha256(reference.encode()).hexdigest(), 16))
    return "6217" + digits[:15]


def post_answer(
    client: httpx.Client, api_key: str, reference: str, account_no: str
) -> httpx.Response:
    return client.post(
        ANSWER_PATH,
        headers={"X-API-Key": api_key},
        json={"reference": reference, "outputs": {"bank_account_no": account_no}},
    )


def serve(
    bank: BankSimulator,
    host: str,
    port: int,
    base_url: str,
    api_key: str,
    echo: Callable[[str], Any] = print,
    stop: threading.Event | None = None,
) -> None:
    """Listen for webhooks on ``host:port`` and answer to ``base_url`` until stopped."""
    stop = stop or threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.headers.get("content-length") or "0"
            # digits only: a negative length would read until the client hangs up
            if not (raw.isascii() and raw.isdigit()):
                status, answer = 400, {"error": "bad content-length"}
            elif int(raw) > MAX_BODY:
                status, answer = 413, {"error": "too large"}
            else:
                body = self.rfile.read(int(raw))
                status, answer = bank.receive(dict(self.headers.items()), body)
                echo(f"银行收到开户申请 / webhook → {status} {answer}")
            data = json.dumps(answer, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    listener = threading.Thread(target=server.serve_forever, daemon=True)
    listener.start()
    echo(f"模拟开户银行监听 / bank simulator listening on http://{host}:{server.server_port}")
    try:
        with httpx.Client(base_url=base_url.rstrip("/"), timeout=30) as client:
            while not stop.wait(0.5):
                for response in bank.answer_due(client, api_key):
                    echo(f"银行回执 / answered → {response.status_code} {response.text[:300]}")
    finally:
        server.shutdown()
        server.server_close()
