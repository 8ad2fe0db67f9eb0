"""The chi-square test's p-value, computed here rather than adding scipy for one function:
the regularized upper incomplete gamma function Q(k/2, x/2) (Numerical Recipes' series and
continued fraction)."""

from __future__ import annotations

import math
from collections.abc import Sequence

EPS = 1e-14
MAX_STEPS = 100_000


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X chi-square distributed with `dof` degrees of freedom."""
    a, x = dof / 2, statistic / 2
    if x <= 0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:  # the series for P, then Q = 1 - P
        term = total = 1 / a
        n = a
        for _ in range(MAX_STEPS):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * EPS:
                break
        return max(0.0, 1 - total * math.exp(log_front))
    b = x + 1 - a  # the continued fraction for Q (modified Lentz)
    c, d = 1 / 1e-300, 1 / b
    h = d
    for i in range(1, MAX_STEPS):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1 / (d if abs(d) > 1e-300 else 1e-300)
        c = b + an / c
        c = c if abs(c) > 1e-300 else 1e-300
        h *= d * c
        if abs(d * c - 1) < EPS:
            break
    return math.exp(log_front) * h


def chi_square(observed: Sequence[Sequence[int]]) -> tuple[float, int]:
    """The statistic and degrees of freedom of rows of counts, each row against a uniform
    expectation over its cells (rows summed: independent tests pooled)."""
    statistic, dof = 0.0, 0
    for row in observed:
        expected = sum(row) / len(row)
        statistic += sum((o - expected) ** 2 / expected for o in row)
        dof += len(row) - 1
    return statistic, dof
