"""A realistic demo city: the kernel's 长沙市, then each app's demo content via hooks."""

from __future__ import annotations

from xietong.demo.city import load_city
from xietong.demo.workflow import load_processes
from xietong.kernel.access import operator_actor
from xietong.kernel.context import Context
from xietong.plugins import plugin_manager


def load_demo(ctx: Context) -> str:
    actor = operator_actor("demo")
    counts = load_city(ctx, actor)
    counts["cases"] = load_processes(ctx, actor)
    plugin_manager().hook.demo_data(ctx=ctx)
    parts = ", ".join(f"{key} {value}" for key, value in counts.items() if value)
    return f"demo city 长沙市 ready ({parts or 'already loaded'}); every password is 'demo'"
