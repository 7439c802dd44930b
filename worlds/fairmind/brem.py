"""The BREM equations of FairMindSim (section 2.3), one step at a time, shared by the offline
agents that play by them and the fitter that estimates them.

Fixed here where the paper leaves them open (``../shared/specs/fairmind_tpp.md``):

- the norm-violation intensity of a round is E = (P1 − P2) / 30, P1 and P2 the two players'
  shares of the 30-point pot (0 for a fair 15:15 split, 1 for 30:0);
- R_j is the observer's cumulative earnings after round j (R_0 = 0; a round pays 10 on ACCEPT
  and 10 − Y on PUNISH at cost Y), and round j sees z(R_{j−1}) = (R_{j−1} − mean(H)) / sd(H)
  with H = [R_1, …, R_{j−1}] and the population SD; z = 0 while |H| < 2, and sd = 1 when 0;
- bel_0 = 1 and T = 1.

Then Φ_j = β1·bel_{j−1}·E_j + β2·z(R_{j−1}) − C, P_j = σ(Φ_j), δ_j = y_j − P_j and
bel_j = bel_{j−1} + η·δ_j, with y_j = 1 for PUNISH.

Every function works on numpy arrays elementwise, so one call steps many agents at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

POT = 30
ENDOWMENT = 10
BELIEF_0 = 1.0

Floats = npt.NDArray[np.float64]


def norm_violation(p1_share: npt.ArrayLike, p2_share: npt.ArrayLike) -> Floats:
    """E_j: how far the split is from fair, 0 (15:15) to 1 (30:0)."""
    return np.asarray(
        (np.asarray(p1_share, dtype=float) - np.asarray(p2_share, dtype=float)) / POT, dtype=float
    )


def round_pay(punished: npt.ArrayLike, cost: npt.ArrayLike) -> Floats:
    """The observer's earnings in a round: 10 on ACCEPT, 10 − Y on PUNISH."""
    return np.asarray(
        ENDOWMENT - np.asarray(punished, dtype=float) * np.asarray(cost, dtype=float), dtype=float
    )


def earnings_z(history: Sequence[float]) -> float:
    """z(R_{j−1}) for the next round, from H = [R_1, …, R_{j−1}] (the spec's convention)."""
    if len(history) < 2:
        return 0.0
    values = np.asarray(history, dtype=float)
    sd = float(values.std())
    return float((values[-1] - values.mean()) / (sd if sd > 0 else 1.0))


def earnings_z_series(pay: npt.ArrayLike) -> Floats:
    """z(R_{j−1}) for every round j of each row of ``pay`` (rounds on the last axis): the
    online convention of ``earnings_z``, vectorised over agents."""
    pay = np.atleast_2d(np.asarray(pay, dtype=float))
    cumulative = np.cumsum(pay, axis=-1)  # R_1 … R_n
    n = pay.shape[-1]
    z = np.zeros_like(pay)
    counts = np.arange(1, n + 1, dtype=float)
    running_mean = np.cumsum(cumulative, axis=-1) / counts
    running_sq = np.cumsum(cumulative**2, axis=-1) / counts
    sd = np.sqrt(np.maximum(running_sq - running_mean**2, 0.0))
    sd = np.where(sd > 1e-12, sd, 1.0)
    # Round j (0-based j ≥ 2) sees H = R_1 … R_j (1-based), i.e. the first j cumulative sums.
    prior = (cumulative - running_mean) / sd
    z[..., 2:] = prior[..., 1:-1]
    return z


def sigmoid(x: npt.ArrayLike) -> Floats:
    x = np.asarray(x, dtype=float)
    return np.asarray(np.exp(-np.logaddexp(0.0, -x)), dtype=float)


def punish_probability(
    beta1: npt.ArrayLike,
    beta2: npt.ArrayLike,
    c: npt.ArrayLike,
    belief: npt.ArrayLike,
    violation: npt.ArrayLike,
    z: npt.ArrayLike,
) -> Floats:
    """P_j = σ(β1·bel_{j−1}·E_j + β2·z(R_{j−1}) − C), T = 1."""
    phi = (
        np.asarray(beta1) * np.asarray(belief) * np.asarray(violation)
        + np.asarray(beta2) * np.asarray(z)
        - np.asarray(c)
    )
    return sigmoid(phi)


def updated_belief(
    eta: npt.ArrayLike, belief: npt.ArrayLike, punished: npt.ArrayLike, p: npt.ArrayLike
) -> Floats:
    """bel_j = bel_{j−1} + η·(y_j − P_j)."""
    change = np.asarray(eta) * (np.asarray(punished, dtype=float) - np.asarray(p, dtype=float))
    return np.asarray(np.asarray(belief, dtype=float) + change, dtype=float)
