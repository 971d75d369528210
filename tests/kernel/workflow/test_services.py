"""Service tasks: connectors and webhooks called by a worker, retries, incidents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from xietong.kernel import clock
from xietong.kernel.bus import run_due_jobs
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden
from xietong.kernel.workflow import services
from xietong.kernel.workflow.model import ServiceCall
from xietong.kernel.workflow.store import WfIncident

from .conftest import Flowbed, line, node, task


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    moment = clock.FrozenClock(datetime(2025, 3, 3, 2, 0, tzinfo=UTC))
    previous = clock.use_clock(moment)
    yield moment
    clock.use_clock(previous)


def _service(key: str, call: ServiceCall) -> object:
    return line(key, node("svc", "service_task", service=call), task("after", "rev1"))


def test_a_connector_result_becomes_variables(bed: Flowbed, frozen: clock.FrozenClock) -> None:
    seen: list[dict[str, Any]] = []

    def score(_ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        return {"score": 90, "ignored": True}

    services.register_connector("test.score", score)
    bed.deploy(_service("svc1", ServiceCall(connector="test.score", outputs=("score",))))
    started = bed.start("svc1", variables={"applicant_age": 30}, business_key="B-7")
    assert bed.waiting_nodes(started.id) == ["svc"]
    run_due_jobs(bed.ctx, "w", 10)
    assert bed.waiting_nodes(started.id) == ["after"]
    variables = bed.instance(started.id).variables
    assert variables["score"] == 90 and "ignored" not in variables
    assert seen[0]["business_key"] == "B-7"
    assert seen[0]["variables"]["applicant_age"] == 30


def test_failures_are_retried_then_open_an_incident(
    bed: Flowbed, frozen: clock.FrozenClock
) -> None:
    state = {"fail": True, "calls": 0}

    def flaky(_ctx: Context, _request: dict[str, Any]) -> dict[str, Any]:
        state["calls"] += 1
        if state["fail"]:
            raise ConnectionError("registry down")
        return {"ok": True}

    services.register_connector("test.flaky", flaky)
    bed.deploy(_service("svc2", ServiceCall(connector="test.flaky", retries=2)))
    started = bed.start("svc2")
    for _ in range(3):
        run_due_jobs(bed.ctx, "w", 10)
        frozen.advance(timedelta(hours=1))
    assert state["calls"] == 3
    detail = bed.instance(started.id)
    assert [i.error for i in detail.incidents] == ["ConnectionError: registry down"]
    assert detail.incidents[0].attempts == 3
    run_due_jobs(bed.ctx, "w", 10)
    assert state["calls"] == 3  # no more attempts until an operator acts
    incident_id = detail.incidents[0].id
    with pytest.raises(Forbidden):
        services.retry_incident(bed.ctx, bed.actor("head"), incident_id)
    state["fail"] = False
    services.retry_incident(bed.ctx, bed.actor("admin"), incident_id)
    with pytest.raises(Conflict):
        services.retry_incident(bed.ctx, bed.actor("admin"), incident_id)
    run_due_jobs(bed.ctx, "w", 10)
    assert bed.waiting_nodes(started.id) == ["after"]
    with bed.ctx.db.read() as session:
        assert session.get(WfIncident, incident_id).resolved_at is not None


def test_a_webhook_is_posted_and_its_json_kept(bed: Flowbed, frozen: clock.FrozenClock) -> None:
    received: list[dict[str, Any]] = []
    secret = services.webhook_secret(bed.ctx, "http://127.0.0.1:9/other-path")

    def handler(request: httpx.Request) -> httpx.Response:
        # signed per Standard Webhooks with the receiver's (origin's) secret
        Webhook(secret).verify(request.content, dict(request.headers))
        received.append(json.loads(request.content))
        return httpx.Response(200, json={"verdict": "pass"})

    previous = services.use_http_client(
        lambda: httpx.Client(transport=httpx.MockTransport(handler))
    )
    try:
        bed.deploy(_service("svc3", ServiceCall(url="http://127.0.0.1:9/check")))
        started = bed.start("svc3")
        run_due_jobs(bed.ctx, "w", 10)
    finally:
        services.use_http_client(previous)
    assert received[0]["instance_id"] == started.id
    assert bed.instance(started.id).variables["verdict"] == "pass"
    assert bed.waiting_nodes(started.id) == ["after"]
    assert secret.startswith("whsec_")
    assert secret != services.webhook_secret(bed.ctx, "http://127.0.0.1:10/check")


def test_a_webhook_with_a_wrong_signature_would_be_refused(
    bed: Flowbed, frozen: clock.FrozenClock
) -> None:
    """The receiver checks the signature: one made with another origin's secret fails,
    the call counts as failed and is retried with the same webhook-id."""
    wrong = services.webhook_secret(bed.ctx, "https://elsewhere.example")
    ids: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ids.append(request.headers["webhook-id"])
        try:
            Webhook(wrong).verify(request.content, dict(request.headers))
        except WebhookVerificationError:
            return httpx.Response(401)
        return httpx.Response(200, json={})

    previous = services.use_http_client(
        lambda: httpx.Client(transport=httpx.MockTransport(handler))
    )
    try:
        bed.deploy(_service("svc4", ServiceCall(url="http://127.0.0.1:9/check", retries=1)))
        started = bed.start("svc4")
        run_due_jobs(bed.ctx, "w", 10)
        frozen.advance(timedelta(minutes=10))
        run_due_jobs(bed.ctx, "w", 10)
    finally:
        services.use_http_client(previous)
    assert len(ids) == 2 and len(set(ids)) == 1
    assert bed.waiting_nodes(started.id) == ["svc"]
