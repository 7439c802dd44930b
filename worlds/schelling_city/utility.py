"""Grauwin/Jensen district utility, the system optimum, and the residential Gini coefficient."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def personal_utility(density: NDArray[np.float64] | float, m: float) -> NDArray[np.float64]:
    """u(ρ) = 2ρ for ρ ≤ ½, m + 2(1 − m)(1 − ρ) above: peaks at 1 when half full."""
    rho = np.asarray(density, dtype=np.float64)
    return np.where(rho <= 0.5, 2.0 * rho, m + 2.0 * (1.0 - m) * (1.0 - rho))


def district_welfare(capacity: int, m: float) -> NDArray[np.float64]:
    """f(n) = n · u(n / H) for n = 0 … H: one district's share of the system utility."""
    n = np.arange(capacity + 1, dtype=np.float64)
    return n * personal_utility(n / capacity, m)


def optimal_allocation(
    agents: int, districts: int, capacity: int, m: float
) -> tuple[float, list[int]]:
    """The largest system utility reachable by any placement, with one placement that reaches it.

    Exact dynamic programme over districts: f is convex below ½ and concave above, so neither
    the even spread nor a closed form is optimal for every density.
    """
    welfare = district_welfare(capacity, m)
    best = np.full(agents + 1, -np.inf)
    best[0] = 0.0
    choices = np.zeros((districts, agents + 1), dtype=np.int64)
    for district in range(districts):
        new = np.full(agents + 1, -np.inf)
        for n in range(min(capacity, agents) + 1):
            candidate = np.full(agents + 1, -np.inf)
            candidate[n:] = best[: agents + 1 - n] + welfare[n]
            better = candidate > new
            new[better] = candidate[better]
            choices[district][better] = n
        best = new
    populations = []
    remaining = agents
    for district in reversed(range(districts)):
        n = int(choices[district][remaining])
        populations.append(n)
        remaining -= n
    return float(best[agents]), populations[::-1]


def gini(values: NDArray[np.int64] | list[int]) -> float:
    x = np.sort(np.asarray(values, dtype=np.float64))
    total = x.sum()
    if total <= 0:
        return 0.0
    n = x.size
    ranks = np.arange(1, n + 1)
    return float((2.0 * np.sum(ranks * x)) / (n * total) - (n + 1) / n)
