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

    f is convex on [0, H/2] and concave on [H/2, H], and every district is alike, so an optimum
    has a known shape: two districts strictly inside the convex part can be improved by moving
    residents from one to the other until one of them empties or reaches H/2, and two districts
    in the concave part by evening them out. So some districts are empty, at most one holds
    any population p, and the rest are balanced (populations differing by at most one). Trying
    every count of empty districts and every p is exact and O(Q · H), where the dynamic
    programme over districts (kept as ``optimal_allocation_dp`` to check this against) is
    O(Q · N · H): seconds for a city of 100,000.
    """
    if agents == 0:
        return 0.0, [0] * districts
    welfare = district_welfare(capacity, m)
    partial = np.arange(min(capacity, agents) + 1)
    best_value, best_split = -np.inf, (0, 0, 0)
    for empty in range(districts):
        balanced = districts - empty - 1
        rest = agents - partial
        if balanced == 0:
            feasible = rest == 0
            values = np.where(feasible, welfare[partial], -np.inf)
        else:
            feasible = rest <= balanced * capacity
            share, extra = np.divmod(np.where(feasible, rest, 0), balanced)
            higher = np.minimum(share + 1, capacity)
            values = np.where(
                feasible,
                welfare[partial] + (balanced - extra) * welfare[share] + extra * welfare[higher],
                -np.inf,
            )
        index = int(np.argmax(values))
        if values[index] > best_value + 1e-12:
            best_value, best_split = float(values[index]), (empty, int(partial[index]), balanced)
    empty, p, balanced = best_split
    populations = [p]
    if balanced:
        each, above = divmod(agents - p, balanced)
        populations += [each + 1] * above + [each] * (balanced - above)
    populations += [0] * empty
    return best_value, sorted(populations, reverse=True)


def optimal_allocation_dp(
    agents: int, districts: int, capacity: int, m: float
) -> tuple[float, list[int]]:
    """The same optimum by a dynamic programme over districts (slow; for checking)."""
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
