"""The plugin manager: the kernel's defaults and every app, registered through hooks."""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

import pluggy

from xietong.kernel import hooks

# Kernel features register through the same hooks as apps do.
KERNEL_PLUGINS = ("xietong.kernel.plugin",)


def _app_plugins() -> list[str]:
    import xietong.apps

    return [
        f"xietong.apps.{info.name}.plugin"
        for info in pkgutil.iter_modules(xietong.apps.__path__)
        if info.ispkg
    ]


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hooks.PROJECT)
    manager.add_hookspecs(hooks)
    for name in (*KERNEL_PLUGINS, *_app_plugins()):
        manager.register(importlib.import_module(name), name=name)
    manager.load_setuptools_entrypoints(hooks.PROJECT)
    manager.hook.register_actions()
    return manager


def load_models() -> None:
    """Import every module that defines tables, so ``Base.metadata`` is complete."""
    for modules in plugin_manager().hook.model_modules():
        for module in modules:
            importlib.import_module(module)
