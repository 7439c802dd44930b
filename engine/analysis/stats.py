"""Statistics for comparing conditions of an experiment: proportions, a cluster-robust logistic
test, and agreement between coders. numpy only; every result is a frozen ``msgspec.Struct`` so
it goes into a report as it is.

Conventions: confidence levels are two-sided; p-values are two-sided; a quantity that cannot be
computed from the data is ``None`` (never a made-up number), with the reason alongside where
there is one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import msgspec
import numpy as np
import numpy.typing as npt

# ---- the normal distribution ----------------------------------------------------------------


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def two_sided_p(z: float) -> float:
    """P(|Z| ≥ |z|) for a standard normal Z; erfc keeps precision far in the tail."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def normal_quantile(p: float) -> float:
    """The z with ``normal_cdf(z) == p``, by bisection: exact to double precision, and it is
    called a handful of times per report, so speed does not matter."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs 0 < p < 1, got {p}")
    low, high = -40.0, 40.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if normal_cdf(middle) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-15:
            break
    return 0.5 * (low + high)


def critical_z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return normal_quantile(1.0 - (1.0 - confidence) / 2.0)


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), by the continued fraction of Numerical Recipes (modified Lentz)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    # The fraction converges fast on the side of the mode it is evaluated on.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    return regularized_beta(df / (df + t * t), df / 2.0, 0.5)


def critical_t(confidence: float, df: float) -> float:
    """The t with P(|T| ≥ t) = 1 − confidence, by bisection."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    target = 1.0 - confidence
    low, high = 0.0, 1.0
    while student_t_two_sided_p(high, df) > target:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if student_t_two_sided_p(middle, df) > target:
            low = middle
        else:
            high = middle
        if high - low < 1e-13 * high:
            break
    return 0.5 * (low + high)


# ---- one proportion -------------------------------------------------------------------------


class Proportion(msgspec.Struct, frozen=True):
    """``successes`` of ``trials`` with a Wilson score interval; with no trials the estimate is
    ``None`` and the interval is all of [0, 1], since the data say nothing."""

    successes: int
    trials: int
    estimate: float | None
    low: float
    high: float
    confidence: float


def _check_counts(successes: int, trials: int) -> None:
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"counts must satisfy 0 <= successes <= trials, got {successes}/{trials}")


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Proportion:
    """Wilson's score interval: unlike the Wald interval it stays inside [0, 1] and keeps its
    coverage for rare events, which altruistic acts are (a few per thousand decisions)."""
    _check_counts(successes, trials)
    if trials == 0:
        return Proportion(successes, trials, None, 0.0, 1.0, confidence)
    z = critical_z(confidence)
    n = float(trials)
    p = successes / n
    shrink = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / shrink
    half = z / shrink * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    # Rounding can push a bound a hair past 0 or 1 when successes is 0 or trials.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Proportion(successes, trials, p, low, high, confidence)


# ---- two proportions ------------------------------------------------------------------------


class ProportionDifference(msgspec.Struct, frozen=True):
    """``first − second`` with Newcombe's hybrid score interval (his method 10, built from the two
    Wilson intervals) and a two-sided z-test with the pooled standard error."""

    first: Proportion
    second: Proportion
    difference: float | None
    low: float
    high: float
    z: float | None
    p_value: float | None
    confidence: float


def compare_proportions(
    successes_1: int,
    trials_1: int,
    successes_2: int,
    trials_2: int,
    confidence: float = 0.95,
) -> ProportionDifference:
    first = wilson_interval(successes_1, trials_1, confidence)
    second = wilson_interval(successes_2, trials_2, confidence)
    if first.estimate is None or second.estimate is None:
        return ProportionDifference(first, second, None, -1.0, 1.0, None, None, confidence)
    p1, p2 = first.estimate, second.estimate
    difference = p1 - p2
    low = difference - math.hypot(p1 - first.low, second.high - p2)
    high = difference + math.hypot(first.high - p1, p2 - second.low)
    pooled = (successes_1 + successes_2) / (trials_1 + trials_2)
    variance = pooled * (1.0 - pooled) * (1.0 / trials_1 + 1.0 / trials_2)
    if variance <= 0.0:
        # Both 0/n or both n/n: the samples agree exactly, and nothing speaks for a difference.
        z, p_value = 0.0, 1.0
    else:
        z = difference / math.sqrt(variance)
        p_value = two_sided_p(z)
    return ProportionDifference(
        first, second, difference, max(-1.0, low), min(1.0, high), z, p_value, confidence
    )


# ---- a logistic regression with clustered standard errors -----------------------------------


class ClusterLogit(msgspec.Struct, frozen=True):
    """``logit P(success) = intercept + log_odds_ratio · condition``, clusters as units of
    independence. When the data cannot identify the ratio, ``estimable`` is false, ``reason``
    says why, and the estimates are ``None``."""

    estimable: bool
    reason: str | None
    clusters: int
    trials: int
    successes: int
    intercept: float | None = None
    log_odds_ratio: float | None = None
    odds_ratio: float | None = None
    # Cluster-robust (sandwich, CR1) standard error, and the Wald test and interval built on it.
    se: float | None = None
    z: float | None = None
    p_value: float | None = None
    low: float | None = None
    high: float | None = None
    # The same statistic against Student's t with G − 1 degrees of freedom, the usual remedy
    # for the Wald test's optimism with few clusters (Cameron & Miller 2015): prefer it when a
    # condition has a handful of runs.
    df: int | None = None
    p_value_t: float | None = None
    low_t: float | None = None
    high_t: float | None = None
    # The model-based standard error, as if every decision were independent: shown beside the
    # robust one, the gap tells how much runs differ from one another.
    naive_se: float | None = None
    iterations: int = 0
    confidence: float = 0.95


def cluster_logit(
    successes: npt.ArrayLike,
    trials: npt.ArrayLike,
    condition: npt.ArrayLike,
    clusters: Sequence[Hashable] | None = None,
    confidence: float = 0.95,
    max_iterations: int = 100,
) -> ClusterLogit:
    """Fit the logistic regression of a binary outcome on a binary condition from aggregated
    counts, each row a (cluster, condition) cell, so millions of decisions cost nothing.

    ``clusters`` labels each row's cluster (e.g. the run's seed); by default each row is its own
    cluster, which suits one row per run. Decisions within a run share its history, so they are
    not independent: the sandwich variance summed over clusters accounts for that, with the CR1
    small-sample factor G/(G−1)·(N−1)/(N−k) (G clusters, N decisions, k = 2 coefficients). The
    test is a Wald z-test (``p_value``, ``low``, ``high``); with few clusters it is optimistic,
    so the same statistic is also referred to Student's t with G − 1 degrees of freedom
    (``p_value_t``, ``low_t``, ``high_t``).
    """
    y = np.asarray(successes, dtype=np.int64).ravel()
    n = np.asarray(trials, dtype=np.int64).ravel()
    x = np.asarray(condition).astype(np.int64).ravel()
    if not (y.size == n.size == x.size):
        raise ValueError("successes, trials and condition must have one entry per row")
    if np.any(n < 0) or np.any(y < 0) or np.any(y > n):
        raise ValueError("counts must satisfy 0 <= successes <= trials in every row")
    if not np.all((x == 0) | (x == 1)):
        raise ValueError("condition must be binary (0/1 or False/True)")
    labels: list[Hashable] = list(range(y.size)) if clusters is None else list(clusters)
    if len(labels) != y.size:
        raise ValueError("clusters must have one label per row")
    keep = n > 0
    y, n, x = y[keep], n[keep], x[keep]
    labels = [label for label, kept in zip(labels, keep, strict=True) if kept]
    index = {label: i for i, label in enumerate(dict.fromkeys(labels))}
    groups = np.array([index[label] for label in labels], dtype=np.int64)
    total_n, total_y, count = int(n.sum()), int(y.sum()), len(index)

    def not_estimable(reason: str) -> ClusterLogit:
        return ClusterLogit(False, reason, count, total_n, total_y, confidence=confidence)

    if total_n == 0:
        return not_estimable("no trials")
    if total_y in (0, total_n):
        which = "no successes" if total_y == 0 else "only successes"
        return not_estimable(f"the outcome does not vary ({which})")
    levels = set(x.tolist())
    if len(levels) < 2:
        return not_estimable(f"the condition does not vary (only condition {levels.pop()})")
    for level in (0, 1):
        level_y, level_n = int(y[x == level].sum()), int(n[x == level].sum())
        if level_y in (0, level_n):
            which = "no successes" if level_y == 0 else "only successes"
            return not_estimable(
                f"perfect separation: condition {level} has {which} ({level_y}/{level_n}), "
                "so the log-odds ratio is infinite"
            )
    if count < 2:
        return not_estimable("one cluster: a cluster-robust variance needs at least two")
    for level in (0, 1):
        # A lone cluster's score is exactly zero at the fit, so it adds nothing to the variance
        # and the standard error would come out as zero.
        within = len(set(groups[x == level].tolist()))
        if within < 2:
            return not_estimable(
                f"condition {level} has {within} cluster; a cluster-robust variance needs at "
                "least two in each condition"
            )

    design = np.column_stack([np.ones_like(x, dtype=float), x.astype(float)])
    beta, iterations, converged = _irls(design, y.astype(float), n.astype(float), max_iterations)
    if not converged:
        return not_estimable(f"the fit did not converge in {max_iterations} iterations")
    p = _sigmoid(design @ beta)
    weights = n * p * (1.0 - p)
    information = design.T @ (design * weights[:, None])
    bread = np.linalg.inv(information)
    scores = design * (y - n * p)[:, None]
    per_cluster = np.zeros((count, 2))
    np.add.at(per_cluster, groups, scores)
    meat = per_cluster.T @ per_cluster
    factor = count / (count - 1) * (total_n - 1) / (total_n - 2)
    variance = factor * (bread @ meat @ bread)
    robust = float(variance[1, 1])
    naive = float(bread[1, 1])
    # Relative to the model-based variance: exact zeros arrive as rounding noise.
    if not robust > 1e-12 * naive:
        return not_estimable("the cluster-robust variance is zero (every cluster fits exactly)")
    se = math.sqrt(robust)
    slope = float(beta[1])
    z = slope / se
    half = critical_z(confidence) * se
    df = count - 1
    half_t = critical_t(confidence, df) * se
    return ClusterLogit(
        estimable=True,
        reason=None,
        clusters=count,
        trials=total_n,
        successes=total_y,
        intercept=float(beta[0]),
        log_odds_ratio=slope,
        odds_ratio=math.exp(slope),
        se=se,
        z=z,
        p_value=two_sided_p(z),
        low=slope - half,
        high=slope + half,
        df=df,
        p_value_t=student_t_two_sided_p(z, df),
        low_t=slope - half_t,
        high_t=slope + half_t,
        naive_se=math.sqrt(naive),
        iterations=iterations,
        confidence=confidence,
    )


def _sigmoid(eta: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * eta))
    return result


def _irls(
    design: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    n: npt.NDArray[np.float64],
    max_iterations: int,
) -> tuple[npt.NDArray[np.float64], int, bool]:
    """Newton's method on the binomial log-likelihood (IRLS for the canonical link)."""
    beta = np.zeros(design.shape[1])
    for iteration in range(1, max_iterations + 1):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (y - n * p)
        hessian = design.T @ (design * (n * p * (1.0 - p))[:, None])
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if float(np.max(np.abs(step))) < 1e-10:
            return beta, iteration, True
    return beta, max_iterations, False


# ---- agreement between two coders -----------------------------------------------------------


class Kappa(msgspec.Struct, frozen=True):
    """Cohen's kappa over ``items`` coded by two coders. ``se`` is Cohen's (1960) large-sample
    approximation sqrt(po(1−po) / (n(1−pe)²)). ``kappa`` is ``None`` when chance agreement is
    total (both coders gave every item the same one label): agreement beyond chance is then
    undefined, and ``reason`` says so."""

    items: int
    observed: float | None
    expected: float | None
    kappa: float | None
    se: float | None
    reason: str | None = None


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> Kappa:
    """Kappa over categorical labels (any hashable: bools for a binary code, strings, ...)."""
    if len(first) != len(second):
        raise ValueError("both coders must label the same items")
    n = len(first)
    if n == 0:
        return Kappa(0, None, None, None, None, "no items")
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    left, right = Counter(first), Counter(second)
    expected = sum(left[label] * right.get(label, 0) for label in left) / (n * n)
    if expected >= 1.0:
        return Kappa(n, observed, expected, None, None, "both coders used one label for all items")
    kappa = (observed - expected) / (1.0 - expected)
    se = math.sqrt(observed * (1.0 - observed) / (n * (1.0 - expected) ** 2))
    return Kappa(n, observed, expected, kappa, se)
