"""The arithmetic of the report: goal rates, their intervals and the uplift of treated over control.

All intervals are two-sided 95%:

- a goal rate ``x / n``: the Wilson score interval. It stays inside [0, 1],
  is sensible at ``x = 0``, ``x = n`` and tiny ``n``, unlike the normal
  approximation;
- the absolute uplift ``p_t - p_c``: Newcombe's hybrid score interval (his
  method 10, 1998), built from the two Wilson intervals, with the same
  good behaviour at zero counts;
- the relative uplift ``p_t / p_c - 1``: the log risk-ratio (Katz) interval,
  ``exp(ln(RR) +- z * sqrt(1/x_t - 1/n_t + 1/x_c - 1/n_c)) - 1``. When either
  arm has no goal reached, 0.5 is added to every cell of the 2x2 table
  (Haldane-Anscombe) so the interval stays finite; the point estimate is then
  still ``p_t / p_c - 1``, or ``None`` when ``p_c`` is 0 (no finite ratio).

The verdict reads the absolute interval: ``better`` when it lies above 0,
``worse`` when below, else ``not yet significant``; ``no control group`` or
``no treated group`` when an arm has no decided goal at all. Incremental goals
are ``(p_t - p_c) * n_t``, the goals the treated matches reached beyond what
the control rate predicts, with the difference's interval scaled alike.

No function divides by zero: an empty arm gives ``None`` where a figure is
undefined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal

BETTER = "better"
WORSE = "worse"
NOT_YET = "not yet significant"
NO_CONTROL = "no control group"
NO_TREATED = "no treated group"

Interval = tuple[float, float]


def wilson(x: int, n: int, z: float = Z95) -> Interval | None:
    """Wilson score interval of ``x`` successes in ``n`` trials; ``None`` when ``n`` is 0."""
    if n <= 0:
        return None
    if not 0 <= x <= n:
        raise ValueError(f"successes {x} outside 0..{n}")
    p = x / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> Interval | None:
    """Newcombe's hybrid score interval for ``x1/n1 - x2/n2``; ``None`` when either ``n`` is 0."""
    w1, w2 = wilson(x1, n1, z), wilson(x2, n2, z)
    if w1 is None or w2 is None:
        return None
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = w1, w2
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def ratio_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> Interval | None:
    """Katz log interval of the risk ratio ``(x1/n1) / (x2/n2)``, 0.5 added to every cell at a zero count."""
    if n1 <= 0 or n2 <= 0:
        return None
    a, b, c, d = float(x1), float(n1), float(x2), float(n2)
    if x1 == 0 or x2 == 0:
        # Each arm's two cells (reached, not reached) get 0.5: n grows by 1.
        a, b, c, d = a + 0.5, b + 1.0, c + 0.5, d + 1.0
    log_rr = math.log((a / b) / (c / d))
    se = math.sqrt(max(0.0, 1 / a - 1 / b + 1 / c - 1 / d))
    return math.exp(log_rr - z * se), math.exp(log_rr + z * se)


@dataclass(frozen=True, slots=True)
class Rate:
    """One arm's goal outcomes: reached and missed goals, and those whose window is still open."""

    reached: int
    missed: int
    open: int = 0

    @property
    def decided(self) -> int:
        return self.reached + self.missed

    @property
    def rate(self) -> float | None:
        return self.reached / self.decided if self.decided else None

    @property
    def interval(self) -> Interval | None:
        return wilson(self.reached, self.decided)


@dataclass(frozen=True, slots=True)
class Uplift:
    """Treated over control: differences, their intervals, a verdict and incremental goals."""

    absolute: float | None
    absolute_interval: Interval | None
    relative: float | None
    relative_interval: Interval | None
    verdict: str
    incremental: float | None
    incremental_interval: Interval | None


def uplift(treated: Rate, control: Rate, z: float = Z95) -> Uplift:
    """Compare the goal rates of the treated arm and the control arms."""
    x1, n1, x2, n2 = treated.reached, treated.decided, control.reached, control.decided
    if n1 == 0 or n2 == 0:
        verdict = NO_TREATED if n1 == 0 else NO_CONTROL
        return Uplift(None, None, None, None, verdict, None, None)
    p1, p2 = x1 / n1, x2 / n2
    diff = p1 - p2
    interval = newcombe(x1, n1, x2, n2, z)
    assert interval is not None  # both n are positive
    low, high = interval
    verdict = BETTER if low > 0 else WORSE if high < 0 else NOT_YET
    ratio = ratio_interval(x1, n1, x2, n2, z)
    relative = p1 / p2 - 1 if p2 > 0 else None
    relative_interval = (ratio[0] - 1, ratio[1] - 1) if ratio is not None else None
    return Uplift(diff, interval, relative, relative_interval, verdict, diff * n1, (low * n1, high * n1))
