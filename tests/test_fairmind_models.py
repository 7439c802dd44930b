"""FairMindSim's choice models: each likelihood against a plain-loop version written here, BREM
by hand for three rounds, the simulator against the likelihood, and bad trials tables."""

from __future__ import annotations

import math
import statistics

import numpy as np
import polars as pl
import pytest

from agora.worlds.fairmind.brem import earnings_z_series, round_pay
from agora.worlds.fairmind.fitting import fit
from agora.worlds.fairmind.models import (
    BREM,
    BREM_NO_PREF,
    BREM_NO_UPDATE,
    INEQUALITY_AVERSION,
    MODELS,
    RATIONAL,
    RRM,
    Trials,
    TrialsError,
    brem_beliefs,
    model_named,
)
from agora.worlds.fairmind.recovery import ScheduleArrays, simulate, spec_schedule

# ---- plain loops: one agent, one trial at a time, no numpy ----------------------------------


def sigma(x):
    return 1.0 / (1.0 + math.exp(-x))


def z_before(history):
    """z(R_{j−1}) from H = [R_1 … R_{j−1}]: population SD, 0 while |H| < 2, SD 1 when 0."""
    if len(history) < 2:
        return 0.0
    sd = statistics.pstdev(history)
    return (history[-1] - statistics.fmean(history)) / (sd if sd > 0 else 1.0)


def loop_probabilities(name, theta, rounds):
    """P(punish) per round for one agent; ``rounds`` = [(p1, p2, cost, y), ...]."""
    out = []
    belief, earnings, history = 1.0, 0.0, []
    q_punish = q_accept = 0.0
    for p1, p2, cost, y in rounds:
        violation = (p1 - p2) / 30
        z = z_before(history)
        if name == "BREM":
            b1, b2, c, eta = theta
            p = sigma(b1 * belief * violation + b2 * z - c)
            belief = belief + eta * (y - p)
        elif name == "BREM-NoUpdate":
            b1, b2, c = theta
            p = sigma(b1 * violation + b2 * z - c)
        elif name == "BREM-NoPref":
            b2, c, _eta = theta
            p = sigma(b2 * z - c)
        elif name == "Rational":
            p = theta[0]
        elif name == "IA":
            alpha, lam = theta
            p = sigma(lam * (alpha * max(p1 - p2, 0) - cost))
        elif name == "RRM":
            rate, tau, bias = theta
            p = sigma(bias + tau * (q_punish - q_accept))
            reward = (10 - cost * y) - 10
            if y == 1:
                q_punish += rate * (reward - q_punish)
            else:
                q_accept += rate * (reward - q_accept)
        else:
            raise AssertionError(name)
        out.append(p)
        earnings += 10 - cost * y
        history.append(earnings)
    return out


def loop_loglik(name, theta, rounds):
    ps = loop_probabilities(name, theta, rounds)
    return sum(
        math.log(p) if y == 1 else math.log(1 - p)
        for p, (_, _, _, y) in zip(ps, rounds, strict=True)
    )


# A fixed small table: three agents with 7, 5 and 6 rounds, rows out of order.
TABLE = {
    "a": [(30, 0, 2, 1), (20, 10, 4, 0), (24, 6, 1, 1), (15, 15, 3, 0), (28, 2, 9, 1),
          (22, 8, 5, 0), (26, 4, 7, 1)],
    7: [(15, 15, 1, 1), (30, 0, 9, 0), (18, 12, 2, 1), (24, 6, 6, 1), (20, 10, 3, 0)],
    "z9": [(26, 4, 8, 0), (26, 4, 8, 0), (30, 0, 1, 1), (22, 8, 2, 1), (15, 15, 5, 0),
           (28, 2, 3, 0)],
}  # fmt: skip
THETAS = {
    "BREM": [[2.0, 1.0, 1.0, 0.5], [5.0, -0.7, 2.5, 1.3], [0.3, 2.0, -1.0, 0.0]],
    "BREM-NoUpdate": [[2.0, 1.0, 1.0], [5.0, -0.7, 2.5], [0.3, 2.0, -1.0]],
    "BREM-NoPref": [[1.0, 1.0, 0.5], [-0.7, 2.5, 0.0], [2.0, -1.0, 1.9]],
    "Rational": [[0.2], [0.5], [1e-3]],
    "IA": [[0.3, 1.2], [0.1, 0.4], [0.9, 0.8]],
    "RRM": [[0.5, 1.0, 0.3], [1.0, 0.2, -1.0], [0.05, 4.0, 2.0]],
}


def table_trials():
    rows = [
        (agent, j + 1, *round_)
        for agent, rounds in TABLE.items()
        for j, round_ in enumerate(rounds)
    ]
    order = np.random.default_rng(0).permutation(len(rows))
    cols = list(zip(*[rows[i] for i in order], strict=True))
    return Trials.from_columns(*cols)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_each_likelihood_matches_a_plain_loop(model):
    trials = table_trials()
    assert trials.agents == ("a", 7, "z9")
    assert list(trials.n_trials) == [7, 5, 6]
    theta = np.asarray(THETAS[model.name])
    loglik = model.loglik(theta, trials)
    probs = model.probabilities(theta, trials)
    for a, rounds in enumerate(TABLE.values()):
        expected = loop_probabilities(model.name, theta[a], rounds)
        assert np.allclose(probs[a, : len(rounds)], expected, rtol=0, atol=1e-12)
        assert loglik[a] == pytest.approx(loop_loglik(model.name, theta[a], rounds), abs=1e-9)
        # One agent's trials broadcast against many parameter rows: the same numbers.
        one = trials.agent(a)
        many = model.loglik(theta, one)
        for r in range(len(theta)):
            assert many[r] == pytest.approx(loop_loglik(model.name, theta[r], rounds), abs=1e-9)
    assert np.allclose(model.nll(theta, trials), -loglik)


def test_brem_by_hand_for_three_rounds():
    # β1 = 2, β2 = 1, C = 1, η = 0.5, bel_0 = 1.
    # Round 1: 30:0, cost 2, PUNISH. E = 30/30 = 1, H = [] so z = 0.
    #   φ1 = 2·1·1 + 1·0 − 1 = 1, P1 = σ(1) = 0.7310585786,
    #   bel1 = 1 + 0.5·(1 − 0.7310585786) = 1.1344707107; R1 = 10 − 2 = 8.
    # Round 2: 20:10, cost 4, ACCEPT. E = 10/30 = 1/3, H = [8] (|H| < 2) so z = 0.
    #   φ2 = 2·1.1344707107/3 − 1 = −0.2436861929, P2 = σ(φ2) = 0.4393781474,
    #   bel2 = 1.1344707107 + 0.5·(0 − 0.4393781474) = 0.9147816370; R2 = 8 + 10 = 18.
    # Round 3: 24:6, cost 1, PUNISH. E = 18/30 = 0.6, H = [8, 18]: mean 13, population SD 5,
    #   z = (18 − 13)/5 = 1.  φ3 = 2·0.9147816370·0.6 + 1·1 − 1 = 1.0977379644,
    #   P3 = σ(φ3) = 0.7498360284, bel3 = 0.9147816370 + 0.5·(1 − 0.7498360284) = 1.0398636228.
    # ln L = ln 0.7310585786 + ln(1 − 0.4393781474) + ln 0.7498360284 = −1.1798710730.
    trials = Trials.from_schedule([30, 20, 24], [0, 10, 6], [2, 4, 1], [[1, 0, 1]])
    theta = [[2.0, 1.0, 1.0, 0.5]]
    assert np.allclose(trials.earnings_z[0], [0.0, 0.0, 1.0])
    assert np.allclose(BREM.logits(theta, trials)[0], [1.0, -0.2436861929, 1.0977379644])
    assert np.allclose(
        BREM.probabilities(theta, trials)[0], [0.7310585786, 0.4393781474, 0.7498360284]
    )
    assert np.allclose(
        brem_beliefs(theta, trials)[0], [1.0, 1.1344707107, 0.9147816370, 1.0398636228]
    )
    assert BREM.loglik(theta, trials)[0] == pytest.approx(-1.1798710730, abs=1e-9)
    # No-Update is the same with bel ≡ 1: φ3 = 2·0.6 + 1 − 1 = 1.2.
    assert np.allclose(BREM_NO_UPDATE.logits([[2.0, 1.0, 1.0]], trials)[0], [1.0, -1 / 3, 1.2])


def test_other_models_by_hand():
    trials = Trials.from_schedule([30, 20, 24], [0, 10, 6], [2, 4, 1], [[1, 0, 1]])
    # IA, α = 0.25, λ = 2: D = 30, 10, 18; ΔU = 0.25·D − Y = 5.5, −1.5, 3.5; φ = 2·ΔU.
    assert np.allclose(INEQUALITY_AVERSION.logits([[0.25, 2.0]], trials)[0], [11.0, -3.0, 7.0])
    # RRM, rate 0.5, τ 2, bias 0.1: Q_P before rounds: 0, 0.5·(−2) = −1, −1 (accept in 2).
    assert np.allclose(RRM.logits([[0.5, 2.0, 0.1]], trials)[0], [0.1, -1.9, -1.9])
    # Rational: P = ε throughout; No-Pref: φ = β2·z − C = −1, −1, 0.5·1 − 1.
    assert np.allclose(RATIONAL.probabilities([[0.3]], trials)[0], [0.3, 0.3, 0.3])
    assert np.allclose(BREM_NO_PREF.logits([[0.5, 1.0, 0.7]], trials)[0], [-1.0, -1.0, -0.5])


def test_no_pref_eta_does_not_enter_and_is_reported_nan():
    trials = table_trials()
    a = BREM_NO_PREF.loglik([[1.0, 1.0, 0.0]], trials.agent(0))
    b = BREM_NO_PREF.loglik([[1.0, 1.0, 1.7]], trials.agent(0))
    assert a == pytest.approx(b, abs=0)
    fits = fit(trials, [BREM_NO_PREF], rng=np.random.default_rng(0), restarts=1, candidates=4)
    assert all(math.isnan(f.params["eta"]) for f in fits) and all(f.k == 3 for f in fits)


def test_vectorised_earnings_z_is_the_spec_convention():
    trials = table_trials()
    for a, rounds in enumerate(TABLE.values()):
        earnings, history, expected = 0.0, [], []
        for _, _, cost, y in rounds:
            expected.append(z_before(history))
            earnings += 10 - cost * y
            history.append(earnings)
        assert np.allclose(trials.earnings_z[a, : len(rounds)], expected, atol=1e-12)
    pay = round_pay(trials.choice, trials.cost)
    assert np.allclose(earnings_z_series(pay), trials.earnings_z)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_the_simulator_draws_from_the_likelihood(model):
    schedule = spec_schedule(np.random.default_rng(5))
    rng = np.random.default_rng(6)
    theta = np.array([[(lo + hi) / 2 for lo, hi in model.start_box]] * 4)
    uniforms = rng.random((4, schedule.rounds))
    data = simulate(model, theta, schedule, rng, uniforms=uniforms)
    p = model.probabilities(theta, data)
    assert np.array_equal(data.choice, (uniforms < p).astype(float))
    assert np.array_equal(data.p1[0], schedule.p1) and np.array_equal(data.cost[3], schedule.cost)


def test_logits_are_causal():
    trials = table_trials().agent(0)
    for model in MODELS:
        theta = [THETAS[model.name][0]]
        base = model.logits(theta, trials)[0]
        flipped = trials.choice.copy()
        flipped[0, 4] = 1 - flipped[0, 4]
        other = model.logits(theta, trials.with_choices(flipped))[0]
        assert np.array_equal(base[:5], other[:5]), model.name


def test_accuracy_predicts_punish_above_one_half():
    trials = Trials.from_schedule([30, 20, 24, 15], [0, 10, 6, 15], [2, 4, 1, 1], [[1, 0, 1, 1]])
    # φ = 11, −3, 7, −2 (IA as above, D = 0 in the fair round): predictions 1, 0, 1, 0.
    assert INEQUALITY_AVERSION.accuracy([[0.25, 2.0]], trials)[0] == pytest.approx(0.75)
    # Rational with ε ≤ 0.5 always predicts ACCEPT.
    assert RATIONAL.accuracy([[0.5]], trials)[0] == pytest.approx(0.25)


def test_models_by_name_and_parameter_names():
    assert model_named("brem_noupdate") is BREM_NO_UPDATE
    assert BREM.params == ("beta1", "beta2", "c", "eta") and BREM.k == 4
    assert [m.k for m in MODELS] == [1, 2, 3, 4, 3, 3]
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        model_named("nope")


def test_schedule_arrays_tile_and_read_split_records():
    schedule = spec_schedule(np.random.default_rng(1))
    assert schedule.rounds == 60
    assert int(np.sum(schedule.p1 == schedule.p2)) == 6
    unfair = schedule.p1 > 15
    assert sorted(zip(schedule.p2[unfair], schedule.cost[unfair], strict=True)) == [
        (float(p2), float(c)) for p2 in (0, 2, 4, 6, 8, 10) for c in range(1, 10)
    ]
    longer = schedule.tiled(300)
    assert longer.rounds == 300 and np.array_equal(longer.cost[60:120], schedule.cost)

    class Split:
        def __init__(self, p1, p2, cost):
            self.p1_share, self.p2_share, self.cost = p1, p2, cost

    arrays = ScheduleArrays.from_rounds([Split(30, 0, 2), Split(15, 15, 4)])
    assert list(arrays.p2) == [0.0, 15.0] and list(arrays.cost) == [2.0, 4.0]


# ---- bad input ------------------------------------------------------------------------------


def frame(**changes):
    base = {
        "agent": [1, 1, 1, 2, 2, 2],
        "round": [1, 2, 3, 1, 2, 3],
        "p1_share": [30, 20, 15, 30, 24, 15],
        "p2_share": [0, 10, 15, 0, 6, 15],
        "cost": [2, 4, 1, 2, 3, 5],
        "choice": [1, 0, 0, 1, 1, 0],
    }
    base.update(changes)
    return pl.DataFrame({k: v for k, v in base.items() if v is not None})


def one_line_error(make):
    with pytest.raises(TrialsError) as info:
        make()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_polars_frame_reads_and_orders_rounds():
    trials = Trials.from_frame(frame(round=[3, 1, 2, 1, 2, 3]))
    assert trials.agents == (1, 2)
    assert list(trials.rounds[0]) == [1, 2, 3]
    assert list(trials.p2[0]) == [10.0, 15.0, 0.0]  # row order was 3, 1, 2
    words = Trials.from_frame(frame(choice=["PUNISH", "accept", "Accept", "punish", "1", "0"]))
    assert list(words.choice.ravel()) == [1, 0, 0, 1, 1, 0]
    back = Trials.from_columns(**words.to_columns())
    assert np.array_equal(back.choice, words.choice)


def test_a_missing_column_is_named():
    message = one_line_error(lambda: Trials.from_frame(frame(cost=None)))
    assert "missing column 'cost'" in message and "agent, round, p1_share" in message


def test_a_non_binary_choice_names_its_row():
    message = one_line_error(lambda: Trials.from_frame(frame(choice=[1, 0, 2, 1, 1, 0])))
    assert message.startswith("trials row 3:") and "choice is 2" in message
    assert "1 (PUNISH) or 0 (ACCEPT)" in message
    message = one_line_error(
        lambda: Trials.from_frame(frame(choice=["1", "0", "0", "maybe", "1", "0"]))
    )
    assert "row 4" in message and "'maybe'" in message


def test_a_duplicate_agent_round_names_both_rows():
    message = one_line_error(lambda: Trials.from_frame(frame(round=[1, 2, 3, 1, 2, 2])))
    assert "trials row 6 (agent 2, round 2): duplicates row 5" in message
    assert "one row per (agent, round)" in message


def test_other_bad_values_name_row_and_column():
    message = one_line_error(lambda: Trials.from_frame(frame(cost=[2, 4, None, 2, 3, 5])))
    assert "row 3" in message and "cost is empty" in message
    message = one_line_error(lambda: Trials.from_frame(frame(cost=["2", "4", "x", "2", "3", "5"])))
    assert "row 3" in message and "'cost' must hold numbers" in message
    message = one_line_error(lambda: Trials.from_frame(frame(p2_share=[0, 10, 15, 0, 31, 15])))
    assert "row 5" in message and "p2_share is 31" in message
    message = one_line_error(lambda: Trials.from_frame(frame(round=[1.0, 2.0, 2.5, 1.0, 2.0, 3.0])))
    assert "row 3" in message and "whole numbers" in message
    message = one_line_error(lambda: Trials.from_frame(frame(cost=[2, 4, 1, -1, 3, 5])))
    assert "row 4" in message and "≥ 0" in message


def test_too_few_rounds_for_a_model_names_agent_and_model():
    trials = Trials.from_frame(frame())  # 3 rounds each
    message = one_line_error(lambda: fit(trials, [BREM], rng=np.random.default_rng(0)))
    assert "agent 1 has 3 rounds; model BREM needs at least 5" in message
    fits = fit(trials, [RATIONAL], rng=np.random.default_rng(0), restarts=1, candidates=2)
    assert len(fits) == 2
