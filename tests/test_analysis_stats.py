"""engine.analysis.stats against values worked out by hand from the formulas (arithmetic in the
comments, z = 1.959964 for 95 %)."""

from __future__ import annotations

import math

import msgspec
import pytest

from agora.engine.analysis.stats import (
    ClusterLogit,
    cluster_logit,
    cohen_kappa,
    compare_proportions,
    critical_t,
    critical_z,
    normal_cdf,
    student_t_two_sided_p,
    two_sided_p,
    wilson_interval,
)


def test_normal_distribution():
    assert critical_z(0.95) == pytest.approx(1.959963984540054, abs=1e-12)
    assert critical_z(0.99) == pytest.approx(2.5758293035489, abs=1e-12)
    assert normal_cdf(0.0) == 0.5
    assert two_sided_p(1.959963984540054) == pytest.approx(0.05, abs=1e-12)
    # Far in the tail erfc keeps digits that 1 − Φ(z) would lose.
    assert two_sided_p(10.0) == pytest.approx(1.523971e-23, rel=1e-5)


def test_student_t():
    # Closed forms (Abramowitz & Stegun 26.7.3-4): ν = 1, P(|T| ≥ t) = 1 − (2/π)·atan t;
    # ν = 2, 1 − t/sqrt(2 + t²); tabled: t(0.975; 5) = 2.570582, t(0.975; 1) = 12.706205.
    assert student_t_two_sided_p(1.0, 1) == pytest.approx(0.5, abs=1e-12)
    assert student_t_two_sided_p(2.0, 2) == pytest.approx(1 - 2 / math.sqrt(6), abs=1e-12)
    assert student_t_two_sided_p(2.570582, 5) == pytest.approx(0.05, abs=1e-6)
    assert critical_t(0.95, 5) == pytest.approx(2.570582, abs=1e-6)
    assert critical_t(0.95, 1) == pytest.approx(12.706205, abs=1e-5)
    # Many degrees of freedom: the normal.
    assert student_t_two_sided_p(1.959964, 1e7) == pytest.approx(0.05, abs=1e-5)


def test_wilson_interval_three_in_a_hundred():
    # p = 0.03, n = 100, z² = 3.841459, z²/n = 0.03841459
    # centre = (0.03 + 0.01920729) / 1.03841459 = 0.0473869
    # half   = 1.959964 / 1.03841459 · sqrt(0.03·0.97/100 + 3.841459/40000)
    #        = 1.887457 · sqrt(0.000291 + 0.0000960365) = 1.887457 · 0.0196732 = 0.0371324
    # bounds = 0.0102545, 0.0845193
    result = wilson_interval(3, 100)
    assert result.estimate == 0.03
    assert round(result.low, 4) == 0.0103
    assert round(result.high, 4) == 0.0845
    assert result.low == pytest.approx(0.0102545, abs=1e-6)
    assert result.high == pytest.approx(0.0845193, abs=1e-6)


def test_wilson_interval_edges():
    # 0/n: the lower bound is exactly 0; upper = z²/n / (1 + z²/n) = 0.0384146/1.0384146 = 0.036994
    zero = wilson_interval(0, 100)
    assert zero.low == 0.0
    assert zero.high == pytest.approx(0.036994, abs=1e-6)
    full = wilson_interval(100, 100)
    assert full.high == 1.0
    assert full.low == pytest.approx(1 - 0.036994, abs=1e-6)
    empty = wilson_interval(0, 0)
    assert empty.estimate is None and (empty.low, empty.high) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson_interval(5, 4)


def test_two_proportions_three_in_100_against_27_in_1000():
    # Wilson for 27/1000: centre = (0.027 + 0.00192073)/1.00384146 = 0.0288101,
    #   half = 1.952464 · sqrt(0.027·0.973/1000 + 3.841459/4e6) = 0.0101887 → [0.0186214, 0.0389988]
    # Newcombe: d = 0.003
    #   L = d − sqrt((0.03 − 0.0102545)² + (0.0389988 − 0.027)²) = 0.003 − 0.0231052 = −0.0201052
    #   U = d + sqrt((0.0845193 − 0.03)² + (0.027 − 0.0186214)²) = 0.003 + 0.0551594 = 0.0581594
    # z-test: pooled = 30/1100 = 0.0272727; se = sqrt(0.0272727·0.9727273·(1/100 + 1/1000))
    #   = sqrt(0.000291818) = 0.0170827; z = 0.003/0.0170827 = 0.175616; p = erfc(z/√2) = 0.8606
    result = compare_proportions(3, 100, 27, 1000)
    assert result.difference == pytest.approx(0.003, abs=1e-12)
    assert result.second.low == pytest.approx(0.0186214, abs=1e-6)
    assert result.second.high == pytest.approx(0.0389988, abs=1e-6)
    assert result.low == pytest.approx(-0.0201052, abs=1e-6)
    assert result.high == pytest.approx(0.0581594, abs=1e-6)
    assert result.z == pytest.approx(0.175616, abs=1e-5)
    assert round(result.p_value, 4) == 0.8606


def test_two_proportions_a_clear_difference():
    # 27/1000 vs 3/1000: pooled 30/2000 = 0.015; se = sqrt(0.015·0.985·0.002) = 0.00543599
    # z = 0.024/0.00543599 = 4.41502; p = erfc(4.41502/√2) ≈ 1.01e-5
    result = compare_proportions(27, 1000, 3, 1000)
    assert result.z == pytest.approx(4.41502, abs=1e-4)
    assert result.p_value == pytest.approx(1.01e-5, rel=0.02)
    assert result.low > 0


def test_two_proportions_with_zero_counts():
    both_zero = compare_proportions(0, 50, 0, 80)
    assert both_zero.difference == 0.0 and both_zero.p_value == 1.0 and both_zero.z == 0.0
    assert both_zero.low < 0 < both_zero.high
    both_full = compare_proportions(50, 50, 80, 80)
    assert both_full.p_value == 1.0
    one_zero = compare_proportions(0, 100, 5, 100)
    assert one_zero.p_value is not None and 0 < one_zero.p_value < 0.05
    no_trials = compare_proportions(0, 0, 3, 10)
    assert no_trials.difference is None and no_trials.p_value is None
    assert (no_trials.low, no_trials.high) == (-1.0, 1.0)


def test_logistic_log_odds_ratio_is_the_sample_odds_ratio():
    # One binary covariate: the MLE reproduces each condition's rate, so the slope is
    # log((a·d)/(b·c)) with a, b = successes, failures under condition 1 and c, d under 0:
    # a = 3, b = 97 (3/100), c = 27, d = 973 (27/1000): log(3·973 / (97·27)) = log(2919/2619).
    # Each condition is split over two clusters (the split does not move the MLE), and the
    # model-based SE is Woolf's sqrt(1/a + 1/b + 1/c + 1/d).
    result = cluster_logit(
        successes=[1, 2, 13, 14],
        trials=[50, 50, 500, 500],
        condition=[1, 1, 0, 0],
    )
    assert result.estimable
    assert result.log_odds_ratio == pytest.approx(math.log(2919 / 2619), abs=1e-10)
    assert result.intercept == pytest.approx(math.log(27 / 973), abs=1e-10)
    assert result.naive_se == pytest.approx(math.sqrt(1 / 3 + 1 / 97 + 1 / 27 + 1 / 973), abs=1e-10)
    assert result.trials == 1100 and result.successes == 30 and result.clusters == 4


def test_cluster_robust_se_on_a_tiny_case():
    # Clusters A, B under condition 0 with 1/4 and 3/4; C, D under condition 1 with 3/4, 4/4.
    # Fit: p0 = 4/8 = 1/2, p1 = 7/8 → intercept 0, slope log 7.
    # Scores u_g = (1, x_g)·(y_g − n_g p_g): A (−1, 0), B (1, 0), C (−½, −½), D (½, ½)
    #   meat = Σ u uᵀ = [[2.5, 0.5], [0.5, 0.5]]
    # Weights n p (1 − p): A, B 1; C, D 4·7/64 = 7/16
    #   information = [[23/8, 7/8], [7/8, 7/8]], det = 7/4, bread = [[1/2, −1/2], [−1/2, 23/14]]
    # (bread·meat·bread)[1,1] = b·M·b with b = (−1/2, 23/14)
    #   = 2.5/4 − 2·0.5·(1/2)(23/14) + 0.5·(23/14)² = 245/392 − 322/392 + 529/392 = 113/98
    # CR1 = G/(G−1)·(N−1)/(N−k) = 4/3 · 15/14 = 10/7 → variance 1130/686 = 565/343
    # naive variance = bread[1,1] = 23/14 = 1/4 + 1/4 + 1/7 + 1/1 (Woolf)
    result = cluster_logit([1, 3, 3, 4], [4, 4, 4, 4], [0, 0, 1, 1], clusters=["A", "B", "C", "D"])
    assert result.estimable
    assert result.log_odds_ratio == pytest.approx(math.log(7), abs=1e-10)
    assert result.intercept == pytest.approx(0.0, abs=1e-10)
    assert result.se == pytest.approx(math.sqrt(565 / 343), abs=1e-10)
    assert result.naive_se == pytest.approx(math.sqrt(23 / 14), abs=1e-10)
    # Wald: z = log 7 / sqrt(565/343) = 1.945910/1.283445 = 1.516162; p = erfc(z/√2) = 0.12948
    assert result.z == pytest.approx(1.516162, abs=1e-5)
    assert result.p_value == pytest.approx(0.12948, abs=1e-5)
    assert result.low == pytest.approx(math.log(7) - 1.959964 * math.sqrt(565 / 343), abs=1e-5)
    # Against t with G − 1 = 3 df (A&S 26.7.4, ν = 3): P(|T| < t) = (2/π)(θ + sin θ cos θ) with
    # θ = atan(t/√3): t/√3 = 0.875357, θ = 0.719032, sin θ cos θ = 0.875357/1.766249 = 0.495602
    # → 1 − 0.636620·1.214634 = 0.226740
    assert result.df == 3
    theta = math.atan(result.z / math.sqrt(3))
    exact = 1 - 2 / math.pi * (theta + math.sin(theta) * math.cos(theta))
    assert result.p_value_t == pytest.approx(exact, abs=1e-12)
    assert result.p_value_t == pytest.approx(0.226740, abs=1e-6)
    # t(0.975; 3) = 3.182446
    assert result.high_t == pytest.approx(math.log(7) + 3.182446 * math.sqrt(565 / 343), abs=1e-5)


def test_cluster_labels_merge_rows_of_one_cluster():
    # Two rows of one run count as one cluster: the per-cluster score is the rows' sum, so
    # splitting A into halves (each 0.5/2 is not a count, so split as 0/2 and 1/2) keeps the
    # fit and the clusters' scores, hence the SE.
    split = cluster_logit(
        [0, 1, 3, 3, 4], [2, 2, 4, 4, 4], [0, 0, 0, 1, 1], clusters=["A", "A", "B", "C", "D"]
    )
    whole = cluster_logit([1, 3, 3, 4], [4, 4, 4, 4], [0, 0, 1, 1], clusters=["A", "B", "C", "D"])
    assert split.clusters == 4
    assert split.se == pytest.approx(whole.se, abs=1e-10)


def test_cluster_logit_agrees_with_an_independent_loop():
    # The sandwich written out decision by decision with plain Python, on uneven clusters.
    rows = [
        ("s1", 0, 2, 40),
        ("s2", 0, 5, 60),
        ("s3", 0, 1, 35),
        ("s4", 1, 9, 50),
        ("s5", 1, 4, 45),
    ]
    result = cluster_logit([r[2] for r in rows], [r[3] for r in rows], [r[1] for r in rows])
    a = sum(r[2] for r in rows if r[1]) / sum(r[3] for r in rows if r[1])
    c = sum(r[2] for r in rows if not r[1]) / sum(r[3] for r in rows if not r[1])
    b0, b1 = math.log(c / (1 - c)), math.log(a / (1 - a)) - math.log(c / (1 - c))
    info = [[0.0, 0.0], [0.0, 0.0]]
    scores = []
    for _, x, y, n in rows:
        p = 1 / (1 + math.exp(-(b0 + b1 * x)))
        u = [0.0, 0.0]
        for outcome in [1] * y + [0] * (n - y):
            for i, xi in enumerate((1, x)):
                u[i] += xi * (outcome - p)
                for j, xj in enumerate((1, x)):
                    info[i][j] += xi * xj * p * (1 - p)
        scores.append(u)
    det = info[0][0] * info[1][1] - info[0][1] * info[1][0]
    bread = [[info[1][1] / det, -info[0][1] / det], [-info[1][0] / det, info[0][0] / det]]
    row = bread[1]
    meat_term = sum((row[0] * u[0] + row[1] * u[1]) ** 2 for u in scores)
    total = sum(r[3] for r in rows)
    variance = 5 / 4 * (total - 1) / (total - 2) * meat_term
    assert result.log_odds_ratio == pytest.approx(b1, abs=1e-9)
    assert result.se == pytest.approx(math.sqrt(variance), rel=1e-9)


@pytest.mark.parametrize(
    ("successes", "trials", "condition", "clusters", "reason"),
    [
        ([0, 0, 0, 0], [10, 10, 10, 10], [0, 0, 1, 1], None, "no successes"),
        ([10, 10, 10, 10], [10, 10, 10, 10], [0, 0, 1, 1], None, "only successes"),
        ([0, 0, 3, 4], [10, 10, 10, 10], [0, 0, 1, 1], None, "perfect separation"),
        ([1, 2, 3, 4], [10, 10, 10, 10], [1, 1, 1, 1], None, "condition does not vary"),
        ([1, 2, 3, 4], [10, 10, 10, 10], [0, 0, 1, 1], ["a", "a", "a", "a"], "one cluster"),
        ([1, 2, 3], [10, 10, 10], [0, 0, 1], None, "condition 1 has 1 cluster"),
        ([0, 0], [0, 0], [0, 1], None, "no trials"),
    ],
)
def test_degenerate_tables_are_flagged(successes, trials, condition, clusters, reason):
    result = cluster_logit(successes, trials, condition, clusters)
    assert not result.estimable
    assert reason in (result.reason or "")
    assert result.log_odds_ratio is None and result.se is None and result.p_value is None


def test_cluster_logit_rejects_a_non_binary_condition():
    with pytest.raises(ValueError, match="binary"):
        cluster_logit([1, 2], [5, 5], [0, 2])


def test_results_serialise():
    result = cluster_logit([1, 3, 3, 4], [4, 4, 4, 4], [0, 0, 1, 1])
    back = msgspec.json.decode(msgspec.json.encode(result), type=ClusterLogit)
    assert back == result
    assert msgspec.json.decode(msgspec.json.encode(compare_proportions(0, 0, 1, 2)))


def test_kappa_from_a_two_by_two_table():
    # Coder 1 × coder 2 over 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15.
    # po = 35/50 = 0.7; coder 1 says yes 25/50 = 0.5, coder 2 30/50 = 0.6
    # pe = 0.5·0.6 + 0.5·0.4 = 0.5; kappa = (0.7 − 0.5)/(1 − 0.5) = 0.4
    # se = sqrt(0.7·0.3 / (50·0.5²)) = sqrt(0.0168) = 0.129615
    first = [True] * 25 + [False] * 25
    second = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    result = cohen_kappa(first, second)
    assert result.items == 50
    assert result.observed == pytest.approx(0.7)
    assert result.expected == pytest.approx(0.5)
    assert result.kappa == pytest.approx(0.4, abs=1e-12)
    assert result.se == pytest.approx(0.129615, abs=1e-6)


def test_kappa_over_three_categories():
    # Rows coder 1, columns coder 2, labels a, b, c over 10 items:
    #   a: (a 3, b 1, c 0); b: (a 0, b 2, c 1); c: (a 0, b 0, c 3)
    # po = (3 + 2 + 3)/10 = 0.8; marginals coder 1 (4, 3, 3), coder 2 (3, 3, 4)
    # pe = (4·3 + 3·3 + 3·4)/100 = 0.33; kappa = (0.8 − 0.33)/0.67 = 0.701493
    pairs = [("a", "a")] * 3 + [("a", "b")] + [("b", "b")] * 2 + [("b", "c")] + [("c", "c")] * 3
    result = cohen_kappa([p[0] for p in pairs], [p[1] for p in pairs])
    assert result.expected == pytest.approx(0.33)
    assert result.kappa == pytest.approx(0.47 / 0.67, abs=1e-12)


def test_kappa_degenerate():
    same = cohen_kappa([False] * 10, [False] * 10)
    assert same.kappa is None and same.observed == 1.0 and "one label" in (same.reason or "")
    assert cohen_kappa([], []).kappa is None
    # Perfect agreement with variation: kappa 1, se 0.
    perfect = cohen_kappa([True, False, True], [True, False, True])
    assert perfect.kappa == 1.0 and perfect.se == 0.0
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa([True], [True, False])
