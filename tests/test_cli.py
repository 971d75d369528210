"""The CLI as an operator uses it: init, demo, user add, org import, audit verify."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import text
from typer.testing import CliRunner

from xietong.cli import app
from xietong.config import get_settings
from xietong.kernel.db import Database

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


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def test_init_creates_private_keys_and_schema(data_dir: Path) -> None:
    result = invoke("init")
    assert result.exit_code == 0, result.output
    for name in ("signing.pem", "encryption.key", "session.key"):
        mode = stat.S_IMODE((data_dir / "keys" / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    again = invoke("init")
    assert again.exit_code == 0
    assert "key created" not in again.output


def test_commands_without_init_fail_clearly(data_dir: Path) -> None:
    result = invoke("audit", "verify")
    assert result.exit_code != 0
    assert "xietong init" in result.output


def test_audit_verify_detects_an_altered_leaf(data_dir: Path) -> None:
    assert invoke("init").exit_code == 0
    for name in ("alice", "bob", "carol"):
        added = invoke("user", "add", name, "--name", name.title(), "--password", "secret1")
        assert added.exit_code == 0, added.output
    intact = invoke("audit", "verify", "--json")
    assert intact.exit_code == 0, intact.output
    report = json.loads(intact.output)
    assert report["ok"] and report["tree_size"] == 3

    db = Database(f"sqlite:///{data_dir / 'xietong.db'}")
    with db.engine.begin() as conn:
        leaf = conn.execute(text("SELECT leaf FROM audit_leaf WHERE idx = 1")).scalar_one()
        forged = leaf.replace(b"user.create", b"user.delete")
        assert forged != leaf
        conn.execute(text("UPDATE audit_leaf SET leaf = :l WHERE idx = 1"), {"l": forged})
    db.dispose()
    broken = invoke("audit", "verify")
    assert broken.exit_code == 1
    assert "1" in broken.output and "失败" in broken.output


def test_user_add_rejects_bad_input(data_dir: Path) -> None:
    assert invoke("init").exit_code == 0
    assert invoke("user", "add", "dora", "--password", "secret1").exit_code == 0
    duplicate = invoke("user", "add", "dora", "--password", "secret1")
    assert duplicate.exit_code == 2
    assert "dora" in duplicate.output
    bad_role = invoke(
        "user", "add", "erin", "--password", "secret1", "--department", "nope", "--role", "x"
    )
    assert bad_role.exit_code != 0


def test_org_import_reports_each_bad_row(data_dir: Path, tmp_path: Path) -> None:
    assert invoke("init").exit_code == 0
    book = Workbook()
    sheet = book.active
    sheet.title = "部门"
    sheet.append(["部门编码", "部门名称", "简称", "行政区划代码", "上级部门编码"])
    sheet.append(["d1", "一局", "一局", "12", None])
    sheet.append(["d2", "二局", "二局", "430100", "missing"])
    book.create_sheet("用户").append(["用户名", "姓名", "初始密码", "手机号"])
    book.create_sheet("成员").append(["用户名", "部门编码", "角色"])
    buffer = io.BytesIO()
    book.save(buffer)
    path = tmp_path / "bad.xlsx"
    path.write_bytes(buffer.getvalue())
    result = invoke("org", "import", str(path))
    assert result.exit_code == 2
    assert "部门 第 2 行" in result.output and "部门 第 3 行" in result.output
    missing = invoke("org", "import", str(tmp_path / "nope.xlsx"))
    assert missing.exit_code == 2
    template = tmp_path / "template.xlsx"
    assert invoke("org", "template", str(template)).exit_code == 0
    assert template.stat().st_size > 0


def test_demo_loads_twice_and_calendar_answers(data_dir: Path) -> None:
    first = invoke("demo")
    assert first.exit_code == 0, first.output
    second = invoke("demo")
    assert second.exit_code == 0, second.output
    accounts = json.loads((data_dir / "demo-accounts.json").read_text(encoding="utf-8"))
    assert any(a["username"] == "admin" for group in accounts for a in group["accounts"])
    answer = invoke("calendar", "deadline", "2026-09-30", "1")
    assert answer.exit_code == 0
    assert answer.output.strip() == "2026-10-08"
    assert invoke("calendar", "deadline", "2026-13-01", "1").exit_code == 2
    assert invoke("audit", "verify").exit_code == 0


def test_bad_configuration_is_a_message_not_a_traceback(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XIETONG_SQLITE_SYNCHRONOUS", "SOMETIMES")
    get_settings.cache_clear()
    result = invoke("init")
    assert result.exit_code == 2
    assert "配置错误" in result.output
