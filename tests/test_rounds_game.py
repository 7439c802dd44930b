"""The synthetic independent-agents game: barrier-free by default, lockstep when asked."""

from __future__ import annotations

import pytest

from tests.helpers import REPO, of_kind, records, run_cli, without_timing

ROUNDS = REPO / "runs" / "rounds_game.toml"


def run(tmp_path, name, *args):
    out = tmp_path / name
    result = run_cli("run", str(ROUNDS), "-q", "--out", str(out), "--ticks", "6", *args)
    assert result.returncode == 0, result.stderr
    return records(out / "log.jsonl")


@pytest.mark.slow
def test_free_running_and_lockstep_make_the_same_decisions(tmp_path):
    free = run(tmp_path, "free", "--agents", "20")
    lockstep = run(tmp_path, "lockstep", "--agents", "20", "--set", "run.scheduler=lockstep")
    assert free[0]["scheduler"] == "free-running" and lockstep[0]["scheduler"] == "lockstep"

    def decisions(log):
        rows = [without_timing(d) for d in of_kind(log, "decision")]
        return sorted(rows, key=lambda d: (d["tick"], d["agent"]))

    assert len(decisions(free)) == 120
    assert decisions(free) == decisions(lockstep)
    assert all(0 <= d["action"]["amount"] <= 10 for d in decisions(free))
    ticks = of_kind(free, "tick")
    assert [t["metrics"]["played"] for t in ticks] == [20] * 6
    assert [t["digest"] for t in ticks] == [t["digest"] for t in of_kind(lockstep, "tick")]


def test_an_out_of_range_gift_is_invalid_and_says_why():
    from agora.worlds.rounds_game import RoundsConfig, RoundsGame, RoundsPrompts, RoundView

    prompts = RoundsPrompts(RoundsGame(RoundsConfig(agents=1)))
    view = RoundView(round=1, endowment=10, given_so_far=0)
    assert prompts.decode_action({"give": 4}, view).amount == 4
    with pytest.raises(ValueError, match="between 0 and 10"):
        prompts.decode_action({"give": 11}, view)
    with pytest.raises(ValueError, match="whole number"):
        prompts.decode_action({"give": "four"}, view)
    with pytest.raises(ValueError, match="whole number"):
        prompts.decode_action({"give": True}, view)


def test_a_shared_policy_on_an_independent_world_is_refused_before_anything_runs(tmp_path):
    config = tmp_path / "rounds.toml"
    config.write_text(ROUNDS.read_text() + '\n[policies.board]\nkind = "message_board"\n')
    result = run_cli("check", str(config))
    assert result.returncode == 2
    assert "policies.board: rounds_game runs its agents independently" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["auto", "lockstep"])
def test_missed_turns_keep_every_round_in_its_tick(tmp_path, scheduler):
    # Half the answers are unusable and none is re-asked: the world is told who missed a turn,
    # so each tick's metrics count that tick's valid decisions, and round t stays tick t.
    log = run(
        tmp_path,
        scheduler,
        "--agents",
        "20",
        "--set",
        f"run.scheduler={scheduler}",
        "--set",
        "inference.offline.invalid_rate=0.5",
        "--set",
        "inference.max_reasks=0",
    )
    ticks = of_kind(log, "tick")
    assert sum(t["invalid"] for t in ticks) > 10
    for tick in ticks:
        assert tick["metrics"]["played"] == tick["valid"]
        assert tick["metrics"]["missed"] == tick["invalid"] + tick["errors"]
    replayed = run_cli("replay", str(tmp_path / scheduler))
    assert replayed.returncode == 0, replayed.stderr


def test_the_round_an_agent_sees_is_its_tick_after_a_missed_turn():
    import numpy as np

    from agora.worlds.rounds_game import Give, RoundsConfig, RoundsGame

    game = RoundsGame(RoundsConfig(agents=2))
    rng = np.random.default_rng(0)
    game.apply(0, {0: Give(3)}, rng, {1: "invalid"})
    game.apply(1, {1: Give(5)}, rng, {0: "error"})
    assert game.observe(0, 2).round == 3 and game.observe(0, 2).given_so_far == 3
    assert game.observe(1, 2).round == 3 and game.observe(1, 2).given_so_far == 5
    assert game.metrics(0) == {"mean_given": 3.0, "played": 1, "missed": 1}
    assert game.metrics(1) == {"mean_given": 5.0, "played": 1, "missed": 1}
