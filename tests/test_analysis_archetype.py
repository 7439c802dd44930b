"""The Schelling city's archetype verdict on hand-made tables, one per verdict."""

from __future__ import annotations

import math

import msgspec
import polars as pl
import pytest

from agora.engine.frames import RunFrames
from agora.worlds.schelling_city.archetype import (
    OPTIMIZER_MIN_ACTS,
    OPTIMIZER_MIN_POA,
    ArchetypeVerdict,
    RunActs,
    Thresholds,
    archetype_verdict,
    archetype_verdicts,
    run_acts,
)


def runs(model, board, rows, poa, gini=0.0):
    """rows: (seed, altruistic, decisions) per run."""
    return [RunActs(model, board, seed, a, n, poa, gini) for seed, a, n in rows]


# Three seeds per condition, 20 ticks × 225 agents = 4,500 decisions per run.
OPTIMIZER = runs("opt", False, [(1, 60, 4500), (2, 55, 4500), (3, 65, 4500)], poa=0.99) + runs(
    "opt", True, [(1, 70, 4500), (2, 62, 4500), (3, 66, 4500)], poa=1.0
)
# The study's egoist: about 0.3 % of decisions altruistic without the board, 2.7 % with it.
EGOIST = runs("ego", False, [(1, 12, 4500), (2, 15, 4500), (3, 14, 4500)], poa=0.86, gini=0.25) + (
    runs("ego", True, [(1, 120, 4500), (2, 125, 4500), (3, 118, 4500)], poa=0.88, gini=0.22)
)
# Short of the optimum, and the board changes nothing.
FLAT = runs("flat", False, [(1, 14, 4500), (2, 13, 4500), (3, 15, 4500)], poa=0.80) + runs(
    "flat", True, [(1, 15, 4500), (2, 12, 4500), (3, 16, 4500)], poa=0.81
)


def test_altruistic_optimizer():
    verdict = archetype_verdict("opt", OPTIMIZER)
    # Without the board: 180 acts over 3 runs = 60 per run ≥ 1 (1.333 % of decisions);
    # mean PoA 0.99 and 1.0, both ≥ 0.95.
    assert verdict.verdict == "Altruistic Optimizer", verdict.reason
    assert verdict.without_board.altruistic == 180 and verdict.without_board.decisions == 13500
    assert verdict.without_board.rate.estimate == pytest.approx(180 / 13500)
    assert verdict.with_board.poa == 1.0 and verdict.without_board.poa == pytest.approx(0.99)
    assert "60.0 altruistic acts per run" in verdict.reason and "1.33 %" in verdict.reason


def test_adaptive_egoist():
    verdict = archetype_verdict("ego", EGOIST)
    # 41/13,500 = 0.30 % → 363/13,500 = 2.69 %; the runs agree, so the cluster test is decisive.
    assert verdict.verdict == "Adaptive Egoist", verdict.reason
    assert verdict.decided_by == "cluster"
    assert verdict.cluster_test.estimable and verdict.cluster_test.clusters == 3
    # The pooled odds ratio: (363·13,137) / (13,459·41)... the slope is the sample log odds ratio.
    expected = math.log((363 / (13500 - 363)) / (41 / (13500 - 41)))
    assert verdict.cluster_test.log_odds_ratio == pytest.approx(expected, abs=1e-9)
    # Three seed clusters: t with 2 df, far less sure than the z-test's naive 1e-50-odd.
    assert verdict.cluster_test.df == 2 and verdict.p_value < 0.01
    assert verdict.difference.p_value < 1e-6
    assert verdict.difference.difference == pytest.approx((363 - 41) / 13500)
    assert verdict.difference.low > 0
    assert "0.30 % → 2.69 %" in verdict.reason
    assert verdict.without_board.gini == pytest.approx(0.25)


def test_undetermined_when_the_board_changes_nothing():
    verdict = archetype_verdict("flat", FLAT)
    assert verdict.verdict == "undetermined"
    assert "does not raise altruistic acts significantly" in verdict.reason
    assert verdict.p_value > 0.5


def test_verdicts_for_several_models_in_name_order():
    verdicts = archetype_verdicts(FLAT + EGOIST + OPTIMIZER)
    assert [(v.model, v.verdict) for v in verdicts] == [
        ("ego", "Adaptive Egoist"),
        ("flat", "undetermined"),
        ("opt", "Altruistic Optimizer"),
    ]
    # Each verdict serialises for the report.
    data = msgspec.json.encode(verdicts)
    assert msgspec.json.decode(data, type=tuple[ArchetypeVerdict, ...]) == verdicts


def test_optimum_without_altruism_is_undetermined():
    # The city sits at the optimum but without the board nobody acted altruistically: it was
    # found there, not reached (one act in three runs: 0.33 per run < 1).
    still = runs("still", False, [(1, 0, 4500), (2, 1, 4500), (3, 0, 4500)], poa=1.0) + runs(
        "still", True, [(1, 4, 4500), (2, 2, 4500), (3, 3, 4500)], poa=1.0
    )
    verdict = archetype_verdict("still", still)
    assert verdict.verdict == "undetermined"
    assert "not reached by altruism" in verdict.reason


def test_a_missing_condition_is_undetermined():
    verdict = archetype_verdict("opt", [r for r in OPTIMIZER if r.board])
    assert verdict.verdict == "undetermined"
    assert "without the board" in verdict.reason
    assert verdict.without_board is None and verdict.difference is None


def test_the_two_proportion_test_decides_when_the_cluster_test_cannot():
    # One run per condition: no cluster-robust variance, so the z-test decides (and says why).
    single = runs("one", False, [(1, 12, 4500)], poa=0.86) + runs(
        "one", True, [(1, 120, 4500)], poa=0.87
    )
    verdict = archetype_verdict("one", single)
    assert verdict.verdict == "Adaptive Egoist"
    assert verdict.decided_by == "two-proportion"
    assert not verdict.cluster_test.estimable
    assert "cluster test is not estimable" in verdict.reason
    # Zero altruistic acts without the board: separation, still decided by the z-test.
    zero = runs("zero", False, [(1, 0, 4500), (2, 0, 4500)], poa=0.86) + runs(
        "zero", True, [(1, 20, 4500), (2, 25, 4500)], poa=0.9
    )
    verdict = archetype_verdict("zero", zero)
    assert verdict.verdict == "Adaptive Egoist"
    assert "perfect separation" in (verdict.cluster_test.reason or "")


def test_thresholds_are_stated_and_can_be_changed():
    assert (OPTIMIZER_MIN_POA, OPTIMIZER_MIN_ACTS) == (0.95, 1.0)
    strict = Thresholds(optimizer_min_acts=100)
    assert archetype_verdict("opt", OPTIMIZER, strict).verdict == "undetermined"
    assert archetype_verdict("opt", OPTIMIZER).thresholds == Thresholds()


def test_run_acts_reads_a_log():
    decisions = pl.DataFrame(
        {
            "tick": [0, 0, 0, 1, 1, 1],
            "valid": [True, True, False, True, True, True],
            "info": [
                {"act": "altruistic"},
                {"act": "egoistic"},
                None,
                {"act": "other"},
                {"act": "altruistic"},
                {"act": "egoistic"},
            ],
        }
    )
    ticks = pl.DataFrame(
        {
            "tick": [0, 1, 2],
            "metrics": [
                {"poa": 0.5, "gini": 0.4},
                {"poa": 0.8, "gini": 0.2},
                {"poa": 0.9, "gini": 0.1},
            ],
        }
    )
    header = {
        "run_id": "r1",
        "seed": 4,
        "model": "m",
        "config": {"policies": {"board": {"kind": "message_board", "enabled": False}}},
    }
    frames = RunFrames(header, decisions, ticks, {}, None)
    acts = run_acts(frames, last_ticks=2)
    # Five valid decisions, two altruistic; PoA (0.8 + 0.9)/2, Gini (0.2 + 0.1)/2.
    assert (acts.altruistic, acts.decisions) == (2, 5)
    assert acts.poa == pytest.approx(0.85) and acts.gini == pytest.approx(0.15)
    assert (acts.model, acts.board, acts.seed, acts.run_id) == ("m", False, 4, "r1")
    on = {**header, "config": {"policies": {"board": {"kind": "message_board", "enabled": True}}}}
    assert run_acts(RunFrames(on, decisions, ticks, {}, None)).board
