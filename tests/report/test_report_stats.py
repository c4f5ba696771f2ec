"""The report's arithmetic against figures computed by hand or published with the methods.

Wilson and Newcombe figures are those of Newcombe's papers (Statistics in
Medicine 17, 1998: "Two-sided confidence intervals for the single proportion"
example 81/263, and "Interval estimation for the difference between
independent proportions", method 10, examples (a), (e), (g), (h)); the log
ratio interval is worked out step by step below.
"""

from __future__ import annotations

import math

import pytest

from streams.report.stats import (
    BETTER,
    NO_CONTROL,
    NO_TREATED,
    NOT_YET,
    WORSE,
    Rate,
    newcombe,
    ratio_interval,
    uplift,
    wilson,
)


@pytest.mark.parametrize(
    ("x", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),  # Newcombe 1998, table I
        (15, 148, 0.0624, 0.1605),  # same table
        (0, 20, 0.0, 0.1611),  # same table: zero successes
        (1, 29, 0.0061, 0.1718),  # same table
        (1, 1, 0.2065, 1.0),  # a tiny arm: 1/(1 + z^2) below
        (0, 1, 0.0, 0.7935),
    ],
)
def test_wilson_matches_the_published_figures(x: int, n: int, low: float, high: float) -> None:
    interval = wilson(x, n)
    assert interval is not None
    assert interval == pytest.approx((low, high), abs=5e-5)


def test_wilson_of_one_success_in_one_by_hand() -> None:
    # p = 1: centre = (1 + z²/2)/(1 + z²), half = (z²/2)/(1 + z²), so low = 1/(1 + z²).
    z2 = 1.959963984540054**2
    assert wilson(1, 1) == pytest.approx((1 / (1 + z2), 1.0))


def test_wilson_of_an_empty_arm_is_undefined_not_a_division_by_zero() -> None:
    assert wilson(0, 0) is None
    with pytest.raises(ValueError, match="outside"):
        wilson(3, 2)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "low", "high"),
    [
        (56, 70, 48, 80, 0.0524, 0.3339),  # (a)
        (9, 10, 3, 10, 0.1705, 0.8090),  # (e)
        (5, 56, 0, 29, -0.0381, 0.1926),  # (g): a zero count
        (0, 10, 0, 20, -0.1611, 0.2775),  # (h): both zero
    ],
)
def test_newcombe_matches_the_published_figures(x1: int, n1: int, x2: int, n2: int, low: float, high: float) -> None:
    interval = newcombe(x1, n1, x2, n2)
    assert interval is not None
    assert interval == pytest.approx((low, high), abs=5e-5)


def test_newcombe_with_an_empty_arm_is_undefined() -> None:
    assert newcombe(1, 2, 0, 0) is None
    assert newcombe(0, 0, 1, 2) is None


def test_log_ratio_interval_by_hand() -> None:
    # 56/70 against 48/80: RR = 0.8 / 0.6; se = sqrt(1/56 - 1/70 + 1/48 - 1/80) = sqrt(0.0119048) = 0.109109;
    # ln RR = 0.287682 -> exp(0.287682 -+ 1.959964 * 0.109109) = 1.07663 .. 1.65125.
    interval = ratio_interval(56, 70, 48, 80)
    assert interval == pytest.approx((1.07663, 1.65125), abs=5e-5)


def test_log_ratio_interval_adds_a_half_to_every_cell_at_a_zero_count() -> None:
    # 5/56 against 0/29 becomes 5.5/57 against 0.5/30.
    rr = (5.5 / 57) / (0.5 / 30)
    se = math.sqrt(1 / 5.5 - 1 / 57 + 1 / 0.5 - 1 / 30)
    z = 1.959963984540054
    assert ratio_interval(5, 56, 0, 29) == pytest.approx((rr * math.exp(-z * se), rr * math.exp(z * se)))
    assert ratio_interval(0, 0, 1, 2) is None


def test_uplift_by_hand() -> None:
    u = uplift(Rate(56, 14), Rate(48, 32))
    assert u.absolute == pytest.approx(0.2)  # 0.8 - 0.6
    assert u.absolute_interval == pytest.approx((0.0524, 0.3339), abs=5e-5)
    assert u.relative == pytest.approx(1 / 3)
    assert u.relative_interval == pytest.approx((0.07663, 0.65125), abs=5e-5)
    assert u.verdict == BETTER
    assert u.incremental == pytest.approx(14.0)  # 0.2 * 70 treated matches
    assert u.incremental_interval == pytest.approx((0.0524 * 70, 0.3339 * 70), abs=5e-3)


def test_uplift_verdicts() -> None:
    assert uplift(Rate(48, 32), Rate(56, 14)).verdict == WORSE
    assert uplift(Rate(5, 5), Rate(4, 6)).verdict == NOT_YET
    assert uplift(Rate(5, 5), Rate(0, 0)).verdict == NO_CONTROL
    assert uplift(Rate(0, 0), Rate(5, 5)).verdict == NO_TREATED


@pytest.mark.parametrize(
    ("treated", "control"),
    [
        (Rate(0, 0), Rate(0, 0)),
        (Rate(0, 1), Rate(0, 1)),
        (Rate(1, 0), Rate(0, 1)),
        (Rate(0, 1), Rate(1, 0)),
        (Rate(1, 0), Rate(1, 0)),
        (Rate(0, 5), Rate(0, 7)),
        (Rate(3, 0, open=4), Rate(0, 2)),
    ],
)
def test_zero_counts_and_tiny_arms_never_divide_by_zero(treated: Rate, control: Rate) -> None:
    u = uplift(treated, control)
    for value in (u.absolute, u.relative, u.incremental):
        assert value is None or math.isfinite(value)
    for interval in (u.absolute_interval, u.relative_interval, u.incremental_interval):
        assert interval is None or (math.isfinite(interval[0]) and math.isfinite(interval[1]))
        assert interval is None or interval[0] <= interval[1]


def test_no_control_goal_reached_gives_no_relative_point_but_a_finite_interval() -> None:
    u = uplift(Rate(3, 0), Rate(0, 2))
    assert u.absolute == pytest.approx(1.0)
    assert u.relative is None  # p_c = 0: no finite ratio
    assert u.relative_interval is not None
    assert u.verdict == BETTER  # 3/3 against 0/2: Newcombe's lower bound is above zero
    assert newcombe(3, 3, 0, 2) == pytest.approx(u.absolute_interval)


def test_rate_counts_decided_goals_only() -> None:
    r = Rate(reached=3, missed=1, open=10)
    assert r.decided == 4
    assert r.rate == pytest.approx(0.75)
    assert Rate(0, 0, open=3).rate is None
    assert Rate(0, 0).interval is None
