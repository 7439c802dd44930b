"""The conformance kit (``agora.testing``) run against the worlds agora ships, and the kit's
own faults checked: a kit that passed every world would prove nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from agora.testing import (
    FAULTY_BACKEND,
    LOCKSTEP,
    ConformanceError,
    ConformanceKit,
    WorldConformance,
    check_records,
)
from tests.helpers import CONFIG, REPO, of_kind, records

# 16 residents in 9 districts of 4 cells, 3 ticks, the board on (the config's own).
SMALL_CITY = {"world.agents": 16, "world.cells_per_district": 4, "run.ticks": 3}


class TestSchellingCity(WorldConformance):
    config = CONFIG
    overrides: Mapping[str, Any] = SMALL_CITY
    valid_metric = "acted"


class TestRoundsGame(WorldConformance):
    config = REPO / "runs" / "rounds_game.toml"
    overrides: Mapping[str, Any] = {"world.agents": 8, "run.ticks": 4}
    valid_metric = "played"
    missed_metric = "missed"

    def valid_turns(self, world: Any) -> Mapping[int, int]:
        return {agent: sum(g is not None for g in given) for agent, given in enumerate(world.given)}


def test_the_faults_fall_on_the_same_requests_in_every_run(tmp_path):
    kit = ConformanceKit(CONFIG, tmp_path, overrides=SMALL_CITY)
    first = of_kind(records(kit.faulty(LOCKSTEP).path / "log.jsonl"), "decision")
    again = ConformanceKit(CONFIG, tmp_path / "again", overrides=SMALL_CITY)
    second = of_kind(records(again.faulty(LOCKSTEP).path / "log.jsonl"), "decision")

    def outcome(decisions):
        return sorted((d["tick"], d["agent"], d["raw"], d["error"]) for d in decisions)

    assert outcome(first) == outcome(second)
    assert any(d["error"] for d in first) and any(d["invalid_attempts"] for d in first)
    header = records(kit.faulty(LOCKSTEP).path / "log.jsonl")[0]
    assert header["config"]["inference"]["backend"] == FAULTY_BACKEND


def test_a_world_that_miscounts_its_turns_is_caught(tmp_path):
    # The city's "moves" is not its count of valid decisions: named as one, the kit objects.
    kit = ConformanceKit(CONFIG, tmp_path, overrides=SMALL_CITY, valid_metric="moves")
    with pytest.raises(ConformanceError, match=r"reports moves = \d+, but the log holds \d+"):
        kit.check_faults(LOCKSTEP)


def test_a_record_load_run_reads_differently_is_caught(tmp_path):
    kit = ConformanceKit(CONFIG, tmp_path, overrides=SMALL_CITY)
    log = kit.clean().path / "log.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if line.startswith('{"kind":"tick"'))
    edited = tmp_path / "edited"
    edited.mkdir()
    lines.insert(number, lines[number].replace('"kind":"tick"', '"kind":"mystery"', 1))
    (edited / "log.jsonl").write_text("".join(lines))
    # Read back as nothing (no frame), or refused by name: never dropped without a word.
    with pytest.raises(ConformanceError, match="kind 'mystery'"):
        check_records(edited)


def test_a_world_whose_rounds_drift_after_a_missed_turn_is_caught(tmp_path):
    # The counter world ignores `missed`: an agent's history shifts by each turn it missed, so
    # a tick's digest depends on how far the others had run; the two schedulers part.
    kit = ConformanceKit(
        {"world": {"kind": "tests.independent_world:PLUGIN", "agents": 6}},
        tmp_path,
        overrides={"run.ticks": 4, "run.seed": 1, "agents.memory": 0},
    )
    assert kit.independent
    kit.check_replay()
    with pytest.raises(ConformanceError, match="part at tick"):
        kit.check_schedulers()


def test_a_world_whose_state_is_not_its_seed_alone_is_caught(tmp_path, monkeypatch):
    import itertools

    from tests import independent_world

    calls = itertools.count()
    digest = independent_world.CounterWorld.digest
    monkeypatch.setattr(
        independent_world.CounterWorld,
        "digest",
        lambda self, tick: digest(self, tick) + str(next(calls)),
    )
    kit = ConformanceKit(
        {"world": {"kind": "tests.independent_world:PLUGIN", "agents": 3}, "run": {"ticks": 2}},
        tmp_path,
    )
    with pytest.raises(ConformanceError, match="two runs with seed 0 differ at line"):
        kit.check_reproducible()
