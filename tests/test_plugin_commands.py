"""Commands a plug-in adds to the CLI (``agora.commands``): found by name, loaded only when run,
their config errors one line with exit code 2."""

from __future__ import annotations

import argparse

import pytest

from agora.engine import cli
from agora.engine.config import ConfigError


class Hello:
    name = "hello"
    help = "say hello to a run"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("who")
        parser.add_argument("--times", type=int, default=1)

    def run(self, args: argparse.Namespace) -> int:
        if args.who == "nobody":
            raise ConfigError("who: nobody is there; name someone")
        print(" ".join(["hello", args.who] * args.times))
        return 0


@pytest.fixture
def plugged(monkeypatch):
    loaded: list[str] = []

    def load() -> Hello:
        loaded.append("hello")
        return Hello()

    monkeypatch.setattr(cli, "installed_commands", lambda: {"hello": load, "run": load})
    return loaded


def test_a_plugged_command_runs_with_its_own_arguments(plugged, capsys):
    assert cli.main(["hello", "world", "--times", "2"]) == 0
    assert capsys.readouterr().out == "hello world hello world\n"
    assert plugged == ["hello"]


def test_its_config_error_is_one_line_and_exit_code_2(plugged, capsys):
    assert cli.main(["hello", "nobody"]) == 2
    assert capsys.readouterr().err == "agora hello: who: nobody is there; name someone\n"


def test_it_is_listed_without_being_loaded_and_cannot_shadow_a_built_in(plugged, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "hello" in capsys.readouterr().out
    assert plugged == []
    # "run" stays the engine's own, whatever a plug-in calls its command.
    assert cli.main(["run", "no-such-config.toml"]) == 2
    assert plugged == []
