"""Docs that cannot drift: settings, CLI commands, hooks and actions are all documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import typer

from xietong import cli
from xietong.config import Settings
from xietong.kernel import hooks
from xietong.kernel.access import registered_actions
from xietong.plugins import plugin_manager

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    text = _read("configuration.md")
    missing = [
        f"XIETONG_{name.upper()}"
        for name in Settings.model_fields
        if f"`XIETONG_{name.upper()}`" not in text
    ]
    assert missing == []


def _commands(app: typer.Typer, prefix: str = "xietong") -> list[str]:
    found = []
    for command in app.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")
        found.append(f"{prefix} {name}")
    for group in app.registered_groups:
        found.extend(_commands(group.typer_instance, f"{prefix} {group.name}"))
    return found


def test_every_cli_command_is_documented() -> None:
    text = _read("cli.md")
    missing = [command for command in _commands(cli.app) if f"`{command}" not in text]
    assert missing == []


def test_every_hook_is_documented() -> None:
    text = _read("hooks.md")
    specs = [
        name
        for name, value in inspect.getmembers(hooks, inspect.isfunction)
        if hasattr(value, "xietong_spec")
    ]
    assert specs, "no hook specs found"
    assert [name for name in specs if f"`{name}(" not in text] == []


def test_every_action_is_documented() -> None:
    plugin_manager()
    documented = _read("access.md") + "".join(
        path.read_text(encoding="utf-8") for path in DOCS.glob("apps/*.md")
    )
    # Test modules declare throwaway actions under "test."; everything else is real.
    real = [name for name in registered_actions() if not name.startswith("test.")]
    missing = [name for name in real if f"`{name}`" not in documented]
    assert missing == []
