"""A policy that shares nothing between agents runs on an independent world, and reads it."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from agora.engine.seeding import Seeds
from tests.helpers import REPO, of_kind, records, run_cli

ROUNDS = REPO / "runs" / "rounds_game.toml"


class NudgeConfig(msgspec.Struct, forbid_unknown_fields=True):
    kind: str = ""
    text: str = "Most people give a little."


class Nudge:
    """A text intervention: every agent is shown the same line, and nothing flows back."""

    def __init__(self, name: str, config: NudgeConfig, world: Any) -> None:
        self.name = name
        self.config = config
        self.players = len(world.agent_ids())  # read from the world it was built on
        self.shown = 0

    def view(self, agent_id, tick):
        self.shown += 1
        return self.config.text

    def render(self, view):
        return f"Note ({self.players} players): {view}"

    def answer_fields(self):
        return ()

    def absorb(self, tick, agent_id, fields, view):
        return [], []

    def end_tick(self, tick):
        return [], {"players": self.players}

    def offline_fields(self, agent_id, view, stance, rng):
        return {}

    def offline_signals(self, view):
        return {}

    def digest(self):
        return str(self.players)


class NudgePlugin:
    name = "nudge"
    config_type = NudgeConfig
    shares_state = False

    def build(self, config: NudgeConfig, seeds: Seeds, name: str, world: Any) -> Nudge:
        return Nudge(name, config, world)


PLUGIN = NudgePlugin()


class OldPlugin:
    name = "old"
    config_type = NudgeConfig

    def build(self, config, seeds, name, world):
        return Nudge(name, config, world)


OLD = OldPlugin()


def _config(tmp_path, kind: str):
    config = tmp_path / "rounds.toml"
    config.write_text(ROUNDS.read_text() + f'\n[policies.nudge]\nkind = "{kind}"\n')
    return config


@pytest.mark.slow
def test_a_private_policy_runs_free_on_an_independent_world_and_replays(tmp_path):
    out = tmp_path / "run"
    config = _config(tmp_path, "tests.test_private_policy:PLUGIN")
    result = run_cli("run", str(config), "-q", "--out", str(out), "--ticks", "3", "--agents", "6")
    assert result.returncode == 0, result.stderr
    log = records(out / "log.jsonl")
    assert log[0]["scheduler"] == "free-running"
    assert [t["policies"]["nudge"] for t in of_kind(log, "tick")] == [{"players": 6}] * 3
    replayed = run_cli("replay", str(out))
    assert replayed.returncode == 0, replayed.stderr


def test_a_policy_plugin_that_does_not_say_whether_it_shares_state_gets_a_fix(tmp_path):
    result = run_cli("check", str(_config(tmp_path, "tests.test_private_policy:OLD")))
    assert result.returncode == 2
    assert "policies.nudge.kind: the policy plugin does not say whether it shares state" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
