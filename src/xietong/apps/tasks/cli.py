"""``xietong tasks …``: run the warning job now, list the scenario templates."""

from __future__ import annotations

from datetime import date

import typer

from xietong.config import get_settings
from xietong.kernel.context import open_context
from xietong.kernel.errors import XietongError

app = typer.Typer(help="任务协同 / 督查督办 (tasks)", no_args_is_help=True)


@app.command("warnings")
def run_warnings(
    on: str = typer.Option("", help="the business day to compute for, YYYY-MM-DD (default today)"),
) -> None:
    """立即计算预警 / run the warning job now (what the worker does every 5 minutes)."""
    from xietong.apps.tasks import monitor
    from xietong.plugins import plugin_manager

    try:
        day = date.fromisoformat(on) if on else None
    except ValueError:
        typer.echo(f"日期格式应为 YYYY-MM-DD / use YYYY-MM-DD: {on}", err=True)
        raise typer.Exit(2) from None
    ctx = open_context(get_settings(), hooks=plugin_manager().hook)
    try:
        changes = monitor.check_warnings(ctx, on=day)
    except XietongError as error:
        typer.echo(f"{error.message_zh} / {error.message_en}", err=True)
        raise typer.Exit(1) from None
    finally:
        ctx.close()
    typer.echo(f"{changes} 项变化 / changes")


@app.command("templates")
def list_templates() -> None:
    """列出场景模板 / list the scenario templates and their department slots."""
    from xietong.apps.tasks.scenarios import TEMPLATES

    for template in TEMPLATES.values():
        typer.echo(f"{template.key}: {template.name}（{template.duration} 个工作日）")
        for slot, (label, example) in template.slots.items():
            typer.echo(f"  {slot}: {label}（例 {example}）")
