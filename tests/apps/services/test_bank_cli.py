"""``xietong services bank-simulator``: bad input and a missing setup end with a message
and a non-zero exit, never a traceback; a taken port is reported too."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xietong.cli import app
from xietong.config import get_settings

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data = tmp_path / "var"
    monkeypatch.setenv("XIETONG_DATA_DIR", str(data))
    monkeypatch.delenv("XIETONG_DATABASE_URL", raising=False)
    monkeypatch.setenv("XIETONG_CONFIG", str(tmp_path / "absent.toml"))
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


def test_bank_simulator_refuses_bad_input(data_dir: Path) -> None:
    bad = runner.invoke(app, ["services", "bank-simulator", "--listen", "nonsense"])
    assert bad.exit_code == 2 and "host:port" in bad.output
    uninitialised = runner.invoke(app, ["services", "bank-simulator"])
    assert uninitialised.exit_code == 2 and "xietong demo" in uninitialised.output
    assert runner.invoke(app, ["init"]).exit_code == 0
    no_key = runner.invoke(app, ["services", "bank-simulator"])
    assert no_key.exit_code == 2 and "services-demo-bank.json" in no_key.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = runner.invoke(
            app,
            ["services", "bank-simulator", "--listen", f"127.0.0.1:{port}", "--api-key", "xt_x"],
        )
    assert busy.exit_code == 1 and "无法监听" in busy.output
