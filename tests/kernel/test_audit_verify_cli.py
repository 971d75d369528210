"""`xietong audit verify` on SQLite and PostgreSQL: exit codes, messages, the JSON report.

The command recomputes the tree from the stored leaves and checks every stored signed
head; it exits 0 on an intact log and 1 naming the first bad index otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner, Result

import xietong.cli
from xietong.kernel import audit
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.uow import UnitOfWork

runner = CliRunner()


@pytest.fixture
def cli(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    """The CLI pointed at the test's database and keys."""
    monkeypatch.setattr(xietong.cli, "get_settings", lambda: ctx.settings)
    yield ctx


def verify(*options: str) -> Result:
    return runner.invoke(xietong.cli.app, ["audit", "verify", *options])


def fill(ctx: Context, commands: int, per_command: int = 3) -> None:
    actor = Actor(kind="user", id=1, name="alice")
    for command in range(commands):
        with UnitOfWork(ctx, actor) as uow:
            for n in range(per_command):
                uow.record("case.review", f"case:{command}", {"n": n, "意见": "同意"})
            uow.commit()
        session = ctx.db.write_session()
        with session.begin():
            audit.sign_head(session, ctx.keys, ctx.settings.audit_origin)
        session.close()


def sql(ctx: Context, statement: str, **params: Any) -> None:
    with ctx.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_empty_log_verifies(cli: Context) -> None:
    result = verify()
    assert result.exit_code == 0, result.output
    assert "audit log intact: 0 entries" in result.output


def test_intact_log_exits_zero(cli: Context) -> None:
    fill(cli, 4)
    result = verify()
    assert result.exit_code == 0, result.output
    assert "audit log intact: 12 entries, 4 signed heads" in result.output

    report = json.loads(verify("--json").output)
    assert report == {
        "ok": True,
        "tree_size": 12,
        "heads_checked": 4,
        "bad_index": None,
        "problem": None,
    }


@pytest.mark.parametrize(
    ("tamper", "bad_index"),
    [
        ("UPDATE audit_leaf SET leaf = :junk WHERE idx = 7", 7),
        ("UPDATE audit_leaf SET payload = '{}' WHERE idx = 4", 4),
        ("DELETE FROM audit_leaf WHERE idx = 5", 5),
        ("DELETE FROM audit_leaf WHERE idx = 11", 11),
    ],
    ids=["altered-leaf", "altered-payload", "removed-leaf", "removed-last-leaf"],
)
def test_tampered_log_exits_one_naming_the_index(cli: Context, tamper: str, bad_index: int) -> None:
    fill(cli, 4)
    params = {"junk": b'{"forged":true}'} if ":junk" in tamper else {}
    sql(cli, tamper, **params)

    result = verify()
    assert result.exit_code == 1
    assert f"index {bad_index}:" in result.output
    assert f"第 {bad_index} 条" in result.output

    as_json = verify("--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert report["bad_index"] == bad_index
    assert report["problem"]


def test_reordered_leaves_exit_one(cli: Context) -> None:
    fill(cli, 2)
    with cli.db.engine.connect() as conn:
        rows = dict(
            conn.execute(text("SELECT idx, leaf FROM audit_leaf WHERE idx IN (2, 3)")).all()
        )
    sql(cli, "UPDATE audit_leaf SET leaf = :l WHERE idx = 2", l=bytes(rows[3]))
    sql(cli, "UPDATE audit_leaf SET leaf = :l WHERE idx = 3", l=bytes(rows[2]))
    report = json.loads(verify("--json").stdout)
    assert (report["ok"], report["bad_index"]) == (False, 2)


def test_forged_head_signature_exits_one(cli: Context) -> None:
    fill(cli, 2)
    sql(cli, "UPDATE audit_tree_head SET signature = :s WHERE tree_size = 3", s=bytes(64))
    result = verify()
    assert result.exit_code == 1
    assert "tree head 3" in result.output
