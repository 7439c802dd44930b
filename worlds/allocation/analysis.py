"""The allocation games' analyses, over ``agora.load_run(...).of("allocation")``.

- ``by_stance``: per stance, the answers given (and the share of the decisions asked that
  were answered validly), their mean with a 95% t interval, median and SD;
- ``shift``: the difference of two stances' means with a Welch 95% interval (the minimal
  pair's effect on the allocation);
- ``spearman``: Spearman's rank correlation with its two-sided p-value (scipy), for the
  allocation against the steering strength.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np
import polars as pl

from agora.engine.analysis.stats import critical_t


class Summary(msgspec.Struct, frozen=True):
    stance: str
    n: int
    asked: int
    mean: float
    low: float
    high: float
    median: float
    sd: float

    @property
    def valid_rate(self) -> float:
        return self.n / self.asked if self.asked else math.nan


class Shift(msgspec.Struct, frozen=True):
    difference: float
    low: float
    high: float
    df: float


def summarise(stance: str, values: Sequence[float], asked: int) -> Summary:
    data = np.asarray(values, dtype=float)
    n = len(data)
    if n == 0:
        return Summary(stance, 0, asked, math.nan, math.nan, math.nan, math.nan, math.nan)
    mean = float(data.mean())
    sd = float(data.std(ddof=1)) if n > 1 else math.nan
    half = critical_t(0.95, n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
    return Summary(stance, n, asked, mean, mean - half, mean + half, float(np.median(data)), sd)


def by_stance(allocations: pl.DataFrame, stances: Sequence[str], asked: int) -> list[Summary]:
    """``asked``: decisions asked per stance (agents of the stance × ticks)."""
    return [
        summarise(
            stance,
            allocations.filter(pl.col("stance") == stance)["amount"].cast(pl.Float64).to_list()
            if not allocations.is_empty()
            else [],
            asked,
        )
        for stance in stances
    ]


def shift(a: Sequence[float], b: Sequence[float]) -> Shift:
    """mean(a) − mean(b), Welch's interval (NaN when either has fewer than two values)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2:
        return Shift(math.nan, math.nan, math.nan, math.nan)
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    difference = float(x.mean() - y.mean())
    if vx + vy == 0:
        return Shift(difference, difference, difference, math.inf)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    half = critical_t(0.95, df) * math.sqrt(vx + vy)
    return Shift(difference, difference - half, difference + half, float(df))


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(rho, two-sided p), scipy's. NaN when either variable is constant or n < 3."""
    from scipy.stats import spearmanr  # type: ignore[import-untyped]

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan, math.nan
    result = spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)
