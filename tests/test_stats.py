"""Seed statistics on hand-computed values; the Student-t quantile from SciPy
against closed forms, the tables and the hand-written bisection it replaced."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ngm_jax import stats


def test_mean_and_stderr():
  mean, se = stats.mean_and_stderr(np.array([1.0, 2.0, 3.0, 6.0]))
  assert mean == 3.0
  np.testing.assert_allclose(se, np.std([1, 2, 3, 6], ddof=1) / 2)
  _, se_one = stats.mean_and_stderr(np.array([1.0]))
  assert math.isnan(se_one)
  mean, se = stats.mean_and_stderr([[1.0, 2.0], [3.0, 6.0]], axis=1)
  np.testing.assert_allclose(mean, [1.5, 4.5])
  np.testing.assert_allclose(se, [0.5, 1.5])


# The p quantile of Student's t with df degrees of freedom, as computed by
# ngm_jax.analysis.student_t_quantile before it was replaced by
# scipy.stats.t.ppf (inverting the exact distribution function of Abramowitz
# and Stegun 26.7.3-4 by bisection; run at commit 24c7ee9 and printed with repr).
_PREVIOUS_QUANTILES = [
    (0.975, 1, 12.70620473617464), (0.975, 2, 4.302652729749411),
    (0.975, 4, 2.776445105197695), (0.975, 9, 2.262157162798246),
    (0.975, 30, 2.042272456301191), (0.95, 4, 2.131846786326662),
    (0.995, 10, 3.169272672617012), (0.9, 7, 1.4149239276504773),
    (0.6, 3, 0.276670662332684),
]


@pytest.mark.parametrize("p, df, previous", _PREVIOUS_QUANTILES)
def test_scipy_quantile_matches_the_previous_hand_written_one(p, df, previous):
  assert scipy_stats.t.ppf(p, df) == pytest.approx(previous, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("p, df, expected", [
    (0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 4, 2.7764), (0.975, 9, 2.2622),
    (0.975, 30, 2.0423), (0.95, 4, 2.1318), (0.995, 10, 3.1693), (0.9, 7, 1.4149),
])
def test_interval_t_matches_the_tables(p, df, expected):
  level = 2 * p - 1
  ci = stats.confidence_interval(np.arange(df + 1, dtype=np.float64), level)
  assert ci["t"] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975])
def test_interval_t_matches_closed_forms(p):
  # df = 1 is the Cauchy distribution: t_p = tan(π(p − ½)); df = 2:
  # t_p = (2p − 1) / √(2p(1 − p)).
  level = 2 * p - 1
  t1 = stats.confidence_interval([0.0, 1.0], level)["t"]
  t2 = stats.confidence_interval([0.0, 1.0, 2.0], level)["t"]
  assert t1 == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)
  assert t2 == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-10)
  many = stats.confidence_interval(np.arange(100_001, dtype=np.float64), 0.95)["t"]
  assert many == pytest.approx(1.959964, abs=1e-4)


def test_confidence_interval_is_mean_plus_minus_t_times_stderr():
  ci = stats.confidence_interval([1.0, 2.0])
  assert ci["mean"] == 1.5 and ci["stderr"] == pytest.approx(0.5) and ci["n"] == 2
  assert ci["t"] == pytest.approx(12.7062, abs=1e-4)
  assert ci["half_width"] == pytest.approx(0.5 * 12.70620474)
  assert ci["low"] == pytest.approx(1.5 - ci["half_width"])
  assert ci["high"] == pytest.approx(1.5 + ci["half_width"])
  one = stats.confidence_interval([3.0])
  assert one["mean"] == 3.0 and math.isnan(one["half_width"]) and math.isnan(one["t"])
  with pytest.raises(ValueError, match="level=1.5"):
    stats.confidence_interval([1.0, 2.0], level=1.5)
  with pytest.raises(ValueError, match="non-empty"):
    stats.confidence_interval([])


def test_linear_fit_per_row():
  slope, intercept = stats.linear_fit([[1, 2, 3], [1, 3, 5]])
  np.testing.assert_allclose(slope, [1, 2])
  np.testing.assert_allclose(intercept, [0, -1], atol=1e-12)
  slope, intercept = stats.linear_fit([2, 5], x=[0, 1])
  assert slope == pytest.approx(3) and intercept == pytest.approx(2)
  with pytest.raises(ValueError, match="constant"):
    stats.linear_fit([1, 2], x=[1, 1])
  with pytest.raises(ValueError, match="K >= 2"):
    stats.linear_fit([1.0])


def test_paired_difference_is_the_interval_of_seedwise_differences():
  d = stats.paired_difference([0.1, 0.3], [0.0, 0.1])
  assert d["mean"] == pytest.approx(0.15) and d["stderr"] == pytest.approx(0.05)
  with pytest.raises(ValueError, match="differ"):
    stats.paired_difference([0.1], [0.0, 0.1])
