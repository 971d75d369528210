"""``xietong demo walkthrough --base-url URL`` against a live server with the demo city:
出生一件事 through the public REST API, exit 0 when the citizen holds every result."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from xietong.cli import app

runner = CliRunner()


def test_demo_walkthrough_against_a_live_server(live_server: str) -> None:
    result = runner.invoke(app, ["demo", "walkthrough", "--base-url", live_server])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("1. citizen.zhang 登录")
    assert sum(line.startswith("10. 结果") for line in lines) == 4
    assert any("签名有效" in line for line in lines)
    assert lines[-1].startswith("完成：430100-")
    # the old spelling still works and applies again (a new Idempotency-Key each run)
    again = runner.invoke(app, ["services", "walkthrough", "--base-url", live_server])
    assert again.exit_code == 0, again.output
    assert again.output.splitlines()[-1] != lines[-1]


def test_demo_walkthrough_fails_clearly(live_server: str) -> None:
    wrong = runner.invoke(
        app, ["demo", "walkthrough", "--base-url", live_server, "--password", "wrong"]
    )
    assert wrong.exit_code == 1
    assert "失败 / failed" in wrong.output and "401" in wrong.output
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = runner.invoke(app, ["demo", "walkthrough", "--base-url", f"http://127.0.0.1:{port}"])
    assert down.exit_code == 1 and "失败 / failed" in down.output
