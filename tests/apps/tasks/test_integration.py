"""``task.*`` events reach office systems through the kernel's signed webhooks: a
subscription to the event types is all an office system needs for its todo pushes."""

from __future__ import annotations

import json

import httpx
from standardwebhooks import Webhook

from tests.apps.tasks.conftest import ADMIN, City, task_input
from tests.test_cli import data_dir  # noqa: F401 (the CLI tests' fixture)
from xietong.apps.tasks import service
from xietong.kernel.bus import delivery, webhooks
from xietong.kernel.bus.relay import InProcessBus, relay_once
from xietong.kernel.events import registered_types


def test_task_events_are_registered() -> None:
    import xietong.apps.tasks.events  # noqa: F401

    types = registered_types()
    for name in (
        "task.created",
        "task.progress.reported",
        "task.closed",
        "task.warning.fired",
        "task.supervision.issued",
        "task.supervision.escalated",
    ):
        assert name in types


def test_todo_push_to_an_office_system(city: City) -> None:
    created = webhooks.create_subscription(
        city.ctx,
        ADMIN,
        name="市政府OA待办",
        url="https://oa.example.gov.cn/hooks/todo",
        event_types=["task.created", "task.supervision.*"],
    )
    service.create_task(city.ctx, city.scjg_head, task_input("门店排查", "scjg"))
    while relay_once(city.ctx, InProcessBus(city.ctx)):
        pass
    received: list[httpx.Request] = []

    def office(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    with httpx.Client(transport=httpx.MockTransport(office)) as client:
        assert delivery.deliver_due(city.ctx, client) == 1
    [request] = received
    body = request.content.decode()
    event = json.loads(body)
    assert event["type"] == "task.created" and event["data"]["title"] == "门店排查"
    # the receiver checks the Standard Webhooks signature with the secret it was given
    Webhook(created.secret).verify(body, dict(request.headers))


def test_cli(data_dir: object) -> None:  # noqa: F811
    from typer.testing import CliRunner

    from xietong import cli

    runner = CliRunner()
    assert runner.invoke(cli.app, ["init"]).exit_code == 0
    listed = runner.invoke(cli.app, ["tasks", "templates"])
    assert listed.exit_code == 0 and "joint_supervision" in listed.output
    ran = runner.invoke(cli.app, ["tasks", "warnings", "--on", "2026-03-02"])
    assert ran.exit_code == 0 and "0 项变化" in ran.output
    bad = runner.invoke(cli.app, ["tasks", "warnings", "--on", "02/03/2026"])
    assert bad.exit_code == 2
