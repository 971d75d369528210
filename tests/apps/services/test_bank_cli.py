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


def _raw_post(port: int, length: str, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(
            f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode() + body
        )
        return conn.recv(4096)


def test_the_bank_refuses_a_negative_or_bad_content_length() -> None:
    import re
    import threading

    from xietong.apps.services import bank

    sim = bank.BankSimulator(secret="whsec_" + "A" * 32)
    stop, said = threading.Event(), []
    listener = threading.Thread(
        target=bank.serve,
        args=(sim, "127.0.0.1", 0, "http://127.0.0.1:9", "xt_x"),
        kwargs={"echo": said.append, "stop": stop},
        daemon=True,
    )
    listener.start()
    try:
        for _ in range(100):
            if said:
                break
            threading.Event().wait(0.05)
        found = re.search(r":(\d+)$", said[0])
        assert found is not None
        port = int(found.group(1))
        # before: a negative length read until the client hung up (here: recv timed out)
        assert _raw_post(port, "-1").startswith(b"HTTP/1.0 400")
        assert _raw_post(port, "12abc").startswith(b"HTTP/1.0 400")
        assert _raw_post(port, str(10**9)).startswith(b"HTTP/1.0 413")
        assert sim.pending == []
    finally:
        stop.set()
        listener.join(5)
