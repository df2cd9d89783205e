"""Paired comparisons of methods: per-seed differences, their mean and a 95% Student-t interval, and the verdict.

Runs of different methods with the same seed share the student's initialisation and the data order, so the
difference of two methods is measured seed by seed (paired) and the interval is on those differences, with
df = seeds - 1. The words follow the interval alone: "wins" when it lies above 0, "loses" when below, "ties" when it
holds 0; with one seed there is no interval and no verdict ("n/a").
"""

from __future__ import annotations

import math
from typing import Any

# two-sided 95% quantiles of Student's t (t_{0.975, df}), to 3 decimals
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
         29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}: exact (3 decimals) to df 30, interpolated in 1/df beyond (1.960 as df grows without bound)."""
    if df < 1:
        raise ValueError(f"a t interval needs df >= 1, got {df}")
    if df in _T975:
        return _T975[df]
    lo = max(k for k in _T975 if k < df)
    hi = min((k for k in _T975 if k > df), default=None)
    t_hi, x_hi = (1.960, 0.0) if hi is None else (_T975[hi], 1 / hi)
    x = 1 / df
    return t_hi + (_T975[lo] - t_hi) * (x - x_hi) / (1 / lo - x_hi)


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict[str, Any]:
    """Method `a` minus method `b` on the seeds both have: per-seed deltas, mean, sample std, 95% interval, verdict."""
    seeds = sorted(set(a) & set(b))
    deltas = {s: a[s] - b[s] for s in seeds}
    n = len(seeds)
    mean = sum(deltas.values()) / n if n else None
    std = math.sqrt(sum((d - mean) ** 2 for d in deltas.values()) / (n - 1)) if n > 1 else None
    ci = None
    if n > 1:
        half = t_quantile_975(n - 1) * std / math.sqrt(n)
        ci = [mean - half, mean + half]
    return {"per_seed": deltas, "n": n, "mean": mean, "std": std, "ci95": ci, "verdict": verdict(ci)}


def verdict(ci: list[float] | None) -> str:
    """'wins' if the interval lies above 0, 'loses' if below, 'ties' if it holds 0, 'n/a' without an interval."""
    if ci is None:
        return "n/a"
    return "wins" if ci[0] > 0 else "loses" if ci[1] < 0 else "ties"
