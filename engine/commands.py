"""Commands a plug-in adds to the CLI: the ``agora.commands`` entry-point group.

A world's own analyses (a model fit over its trials, a figure only it draws) are commands of
its own, ``agora <name> ...``, without the engine knowing the world: the CLI lists the names
it finds and loads a command's module only when that command is run, so no plug-in's imports
slow every other command.

A command plug-in is an object with ``name``, ``help`` (one line), ``add_arguments(parser)``
and ``run(args) -> int`` (the exit code). A ``ConfigError`` it raises is printed as one line
and exits with 2, as the engine's own commands do.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

GROUP = "agora.commands"


@runtime_checkable
class CommandPlugin(Protocol):
    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def installed_commands() -> Mapping[str, Callable[[], Any]]:
    """Each installed command's name and how to load it (nothing is imported yet)."""
    return {entry.name: entry.load for entry in entry_points(group=GROUP)}


def load_command(name: str, load: Callable[[], Any]) -> CommandPlugin:
    command = load()
    if not isinstance(command, CommandPlugin):
        raise TypeError(
            f"the {GROUP} entry point {name!r} is no command (it needs name, help, "
            "add_arguments and run)"
        )
    return command
