"""Service tasks: connectors and webhooks called by a worker, retries, incidents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

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

    def handler(request: httpx.Request) -> httpx.Response:
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
