"""Find worlds, agents, policies and inference backends by name.

By installed entry point, or as ``module:attribute``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from agora.engine.config import ConfigError

GROUPS = {
    "world": "agora.worlds",
    "agents": "agora.agents",
    "policy": "agora.policies",
    "backend": "agora.backends",
}


def available(kind: str) -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUPS[kind]))


def load_plugin(kind: str, name: str, field: str) -> Any:
    for entry in entry_points(group=GROUPS[kind]):
        if entry.name == name:
            return _checked(entry.load(), name, field)
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            loaded = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{field}: cannot load {name!r} ({exc})") from None
        return _checked(loaded, name, field)
    choices = ", ".join(available(kind)) or "none installed"
    raise ConfigError(f"{field}: unknown {kind} {name!r}; available: {choices}")


def _checked(plugin: Any, name: str, field: str) -> Any:
    missing = [a for a in ("name", "config_type", "build") if not hasattr(plugin, a)]
    if missing:
        raise ConfigError(
            f"{field}: {name!r} is not an agora plugin (it has no {', '.join(missing)})"
        )
    return plugin
