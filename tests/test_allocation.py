"""The allocation games (issue 16): minimal pairs that differ in one sentence, the offline
stance effects, the texts' errors, the analyses against hand-computed values, and the
mechanism study's report from runs laid out as the study lays them out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np
import pytest

import agora
from agora.testing import WorldConformance
from agora.worlds.allocation import analysis
from agora.worlds.allocation.mechanism import Recorder
from tests.helpers import REPO, one_line_exit_2, run_cli

CONFIG = REPO / "runs" / "dictator.toml"


class TestAllocation(WorldConformance):
    config = CONFIG
    overrides: Mapping[str, Any] = {"world.samples": 2, "run.ticks": 3}
    valid_metric = "answered"
    missed_metric = "missed"

    def valid_turns(self, world: Any) -> Mapping[int, int]:
        return {a: sum(v is not None for v in rows) for a, rows in enumerate(world.answers)}


def recorded(tmp_path: Any, **overrides: Any) -> dict[int, list[dict[str, str]]]:
    recorder = Recorder()
    settings = {"world.samples": 1, **overrides}
    asyncio.run(agora.arun(CONFIG, out=tmp_path / "rec", overrides=settings, client=recorder))
    return {r.agent_id: [msgspec.structs.asdict(m) for m in r.messages] for r in recorder.requests}


GAMES = ["dictator", "ultimatum", "trust", "trust_return", "public_goods", "third_party_punishment"]


@pytest.mark.parametrize("game", GAMES)
def test_two_stances_prompts_differ_only_in_the_stance_sentence(tmp_path, game):
    from agora.worlds.allocation.texts import load_texts

    stances = load_texts(None, None).stances
    messages = recorded(tmp_path, **{"world.game": game})
    generous, selfish, neutral = messages[0], messages[1], messages[2]
    assert [m["role"] for m in generous] == [m["role"] for m in selfish]
    for a, b in zip(generous, selfish, strict=True):
        assert a["content"].replace(stances["generous"], stances["selfish"]) == b["content"]
    assert stances["generous"] in generous[-1]["content"]
    assert generous[0] == selfish[0] == neutral[0]  # the system text, word for word


def test_the_trustees_maximum_is_what_it_received(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "run", str(CONFIG), "--out", str(out), "--set", "world.game=trust_return",
        "--set", "world.samples=3", "--set", "world.sent=20",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames = agora.load_run(out)
    assert frames.header["world_info"]["maximum"] == 60  # 20 sent × 3
    assert frames.of("allocation")["amount"].max() <= 60


def test_the_observer_punishes_a_dictators_split_from_a_budget_of_its_own(tmp_path):
    messages = recorded(tmp_path, **{"world.game": "third_party_punishment"})
    text = messages[0][0]["content"] + messages[0][-1]["content"]
    # Fehr & Fischbacher's numbers by default: 10 of 100 given, 50 to spend, 1 point takes 3.
    assert "gave Player 2 10 of them, keeping 90" in text
    assert "50 points of your own" in text and "takes 3 points" in text
    out = tmp_path / "run"
    result = run_cli(
        "run", str(CONFIG), "--out", str(out), "--set", "world.game=third_party_punishment",
        "--set", "world.sent=30", "--set", "world.budget=20",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames = agora.load_run(out)
    assert frames.header["world_info"]["maximum"] == 20
    assert frames.header["world_info"]["setting"]["sent"] == 30
    assert frames.of("allocation")["amount"].max() <= 20


def test_offline_stances_give_in_their_order_and_the_report_says_offline(tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", str(CONFIG), "--out", str(out), "--set", "run.ticks=2")
    assert result.returncode == 0, result.stderr
    allocations = agora.load_run(out).of("allocation")
    assert len(allocations) == 2 * 90
    means = {
        s: allocations.filter(allocations["stance"] == s)["amount"].mean()
        for s in ("generous", "neutral", "selfish")
    }
    assert means["generous"] > means["neutral"] > means["selfish"]
    assert run_cli("report", str(out)).returncode == 0
    report = (out / "report" / "report.md").read_text()
    assert "offline allocators" in report and "Shift, generous − selfish" in report
    assert (out / "report" / "allocations.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (("world.game=bargain",), "world.game"),
        (("world.stances=['kind']",), "world.stances"),
        (("world.stances=['generous','generous']",), "listed twice"),
        (("world.sent=101",), "world.sent"),
        (("world.game=trust_return", "world.sent=0"), "nothing to decide"),
    ],
)
def test_a_world_setting_that_cannot_be_played_is_one_line(tmp_path, sets, needle):
    args = [a for s in sets for a in ("--set", s)]
    one_line_exit_2(run_cli("run", str(CONFIG), "--out", str(tmp_path / "r"), *args), needle)


def test_a_bad_games_file_is_one_line_naming_it(tmp_path):
    games = tmp_path / "games.toml"
    games.write_text(
        '[[game]]\nkey = "dictator"\ntitle = "D"\ntext = "You have {points}."\nquestion = "How many?"\n'
    )
    result = run_cli(
        "run", str(CONFIG), "--out", str(tmp_path / "r"), "--set", f"world.games={games}"
    )
    one_line_exit_2(result, "world.games", str(games), "game 1", "{points}")
    games.write_text("[[game]\n")
    result = run_cli(
        "run", str(CONFIG), "--out", str(tmp_path / "r"), "--set", f"world.games={games}"
    )
    one_line_exit_2(result, "not a readable TOML file")


def test_an_answer_out_of_range_is_invalid_with_its_reason():
    from agora.worlds.allocation.world import AllocationPrompts, DecisionView

    view = DecisionView("dictator", "neutral", 100)
    decode = AllocationPrompts.decode_action
    assert decode(None, {"amount": 40.0}, view).amount == 40  # type: ignore[arg-type]
    for bad in (101, -1, True, "40", 40.5, None):
        with pytest.raises(ValueError, match="not a whole number from 0 to 100"):
            decode(None, {"amount": bad}, view)  # type: ignore[arg-type]


def test_the_shift_and_spearman_match_hand_computed_values():
    a, b = [10.0, 20.0, 30.0], [0.0, 10.0]
    shift = analysis.shift(a, b)
    # Means 20 and 5; variances 100/3 and 50/2; Welch df = (58.33)^2 / (33.33^2/2 + 25^2/1).
    assert shift.difference == pytest.approx(15.0)
    se2 = 100 / 3 + 50 / 2
    assert shift.df == pytest.approx(se2**2 / ((100 / 3) ** 2 / 2 + 25.0**2 / 1))
    rho, _ = analysis.spearman([1, 2, 3, 4], [10, 30, 20, 40])
    # Ranks (1, 2, 3, 4) and (1, 3, 2, 4): 1 − 6·Σd² / (n(n² − 1)) = 1 − 6·2/60 = 0.8.
    assert rho == pytest.approx(0.8)
    assert np.isnan(analysis.spearman([1, 1, 1], [1, 2, 3])[0])
    summary = analysis.summarise("x", [1.0, 2.0, 3.0], 4)
    assert summary.valid_rate == 0.75 and summary.mean == 2.0 and summary.median == 2.0


def test_the_mechanism_report_reads_the_study_layout(tmp_path):
    """Offline runs in the study's layout: the report's tables come from them (its Spearman
    is the one of the logged answers against the strengths)."""
    from agora.worlds.allocation.mechanism_report import write_report

    runs = tmp_path / "runs"

    def offline(name: str, **sets: Any) -> list[float]:
        out = runs / name
        settings = {"world.samples": 4, "world.stances": ["neutral"], **sets}
        agora.run(CONFIG, out=out, overrides=settings)
        return agora.load_run(out).of("allocation")["amount"].cast(float).to_list()

    offline("stances", **{"world.stances": ["generous", "selfish", "neutral"]})
    answers = {0.0: offline("dictator/strength0", **{"run.seed": 1})}
    for strength, seed in ((-2.0, 2), (2.0, 3)):
        answers[strength] = offline(f"dictator/L1/strength{strength:+g}", **{"run.seed": seed})
    for game in ("ultimatum", "trust"):
        for strength in (-2.0, 0.0, 2.0):
            offline(f"transfer/{game}/strength{strength:+g}", **{"world.game": game})
    facts = {
        "model": "tiny", "model_name": "tiny", "sha256": "0" * 64, "model_layers": 2,
        "hidden_size": 8, "layers": [1], "transfer_layer": 1, "strengths": [-2.0, 0.0, 2.0],
        "transfer_strength": 2.0, "transfer_games": ["ultimatum", "trust"], "samples": 4, "temperature": 1.0, "pairs": 8,
        "direction_norms": {"1": 1.5},
        "patching": [{"layer": 1, "positions": 5, "selfish": 10.0, "generous": 30.0,
                      "patched": 15.0, "restored": 0.25}],
        "load_s": 0.0, "wall_s": 1.0,
    }  # fmt: skip
    (tmp_path / "study.json").write_text(json.dumps(facts))
    report = write_report(tmp_path).read_text()
    xs = [s for s in (-2.0, 0.0, 2.0) for _ in answers[s]]
    rho, p = analysis.spearman(xs, [v for s in (-2.0, 0.0, 2.0) for v in answers[s]])
    assert f"{rho:.3f} ({p:.4f})" in report
    assert "| 1 | 10.00 | 15.00 | 30.00 | 0.25 |" in report
    assert "| trust |" in report and "| ultimatum |" in report
    assert "not the paper's" in report and "minimal pairs" in report
    assert "(1.00)" in report  # offline answers are all valid
    assert (tmp_path / "curves.png").exists() and (tmp_path / "distributions.png").exists()


def test_the_mechanism_report_names_a_given_direction_and_free_text_answers(tmp_path):
    from agora.worlds.allocation.mechanism_report import write_report

    runs = tmp_path / "runs"
    for name in ("stances", "dictator/strength0", "dictator/L3/strength+2"):
        agora.run(CONFIG, out=runs / name, overrides={"world.samples": 2})
    facts = {
        "model": "tiny", "model_name": "tiny", "sha256": "0" * 64, "model_layers": 4,
        "hidden_size": 8, "layers": [3], "transfer_layer": 3, "strengths": [0.0, 2.0],
        "transfer_strength": 2.0, "transfer_games": [], "samples": 2, "temperature": 1.0,
        "pairs": 8, "answer": "generate",
        "direction": {"given": True, "file": "feature.npz", "method": "sae_feature", "source": "sae/",
                      "feature": 7, "sha256": "1" * 64, "model_sha256": ""},
        "direction_norms": {"3": 1.0}, "patching": [], "load_s": 0.0, "wall_s": 1.0,
    }  # fmt: skip
    (tmp_path / "study.json").write_text(json.dumps(facts))
    report = write_report(tmp_path).read_text()
    assert "`feature.npz` (sae_feature of `sae/`, feature 7), given to the study" in report
    assert "does not say which weights" in report and "direction: `feature.npz`." in report
    assert "--answer generate" in report and "no answer can be invalid" not in report


def test_a_given_directions_default_layers_are_a_quarter_half_and_three_quarters_in():
    from agora.worlds.allocation.mechanism import default_layers

    assert default_layers([5]) == (5,) and default_layers([1, 4, 2]) == (1, 2, 4)
    assert default_layers(range(30)) == (7, 14, 22)
    assert default_layers([3, 9, 12, 20, 25]) == (9, 12, 20)


def test_a_given_direction_without_the_asked_layer_is_refused_before_any_model_loads(tmp_path):
    from agora.engine.inference.local import directions
    from agora.worlds.allocation.mechanism import check_direction

    path = tmp_path / "d.npz"
    directions.save(
        path, directions.Direction("sae_feature", [3], 2), {3: np.ones(2, dtype=np.float32)}
    )
    assert sorted(check_direction(path, (3,))[1]) == [3]
    with pytest.raises(ValueError, match=r"--layers \[4\]: .* has vectors for layers \[3\]"):
        check_direction(path, (3, 4))
