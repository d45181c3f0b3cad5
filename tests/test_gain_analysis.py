"""The gain readouts on hand-computed gain curves."""

import math

import numpy as np
import pytest

from ngm_jax import gain_analysis


def test_time_averaged_gain_is_the_mean_over_iterations_and_seeds():
  avg = gain_analysis.time_averaged_gain([[1.0, 2.0, 3.0], [3.0, 3.0, 3.0]])
  assert avg.mean == 2.5
  np.testing.assert_allclose(avg.per_seed, [2.0, 3.0])
  assert avg.stderr == pytest.approx(0.5)  # std([2, 3], ddof=1) / sqrt(2)
  assert math.isnan(gain_analysis.time_averaged_gain([[1.0, 2.0]]).stderr)


@pytest.mark.parametrize("gain, match", [
    ([1.0, 2.0], r"\[seeds, iterations\]"),
    ([[1.0, np.nan]], "non-finite"),
])
def test_time_averaged_gain_rejects_bad_curves(gain, match):
  with pytest.raises(ValueError, match=match):
    gain_analysis.time_averaged_gain(gain)


def test_gain_schedule_is_the_gain_each_step_used():
  schedule = gain_analysis.gain_schedule([[1.5, 2.0, 1.2], [3.0, 2.5, 2.0]], g0=1.0)
  np.testing.assert_array_equal(schedule, [[1.0, 1.5, 2.0], [1.0, 3.0, 2.5]])
  assert schedule.dtype == np.float32
  with pytest.raises(ValueError, match="g0=0.0"):
    gain_analysis.gain_schedule([[1.0]], g0=0.0)
  with pytest.raises(ValueError, match="non-finite"):
    gain_analysis.gain_schedule([[1.0, np.nan]], g0=1.0)


def test_block_mean_gain_averages_each_task_block():
  gain = [[1, 1, 2, 4, 3, 5], [0, 2, 2, 2, 6, 6]]
  np.testing.assert_allclose(gain_analysis.block_mean_gain(gain, 3), [[1, 3, 4], [1, 2, 6]])
  np.testing.assert_allclose(gain_analysis.block_mean_gain(gain, 3, skip=1),
                             [[1, 4, 5], [2, 2, 6]])
  with pytest.raises(ValueError, match="cannot be cut into 4"):
    gain_analysis.block_mean_gain(gain, 4)
  with pytest.raises(ValueError, match=r"skip=2: must be an integer in \[0, 2\)"):
    gain_analysis.block_mean_gain(gain, 3, skip=2)


def test_gain_trend_fits_each_seed_then_averages():
  # Two seeds, 3 tasks of 2 iterations; block gains [1, 2, 3] and [1, 3, 5].
  gain = np.repeat([[1.0, 2.0, 3.0], [1.0, 3.0, 5.0]], 2, axis=1)
  trend = gain_analysis.gain_trend(gain, 3)
  np.testing.assert_allclose(trend["block_gain"], [[1, 2, 3], [1, 3, 5]])
  np.testing.assert_allclose(trend["block_mean"], [1, 2.5, 4])
  np.testing.assert_allclose(trend["block_stderr"], [0, 0.5, 1])
  np.testing.assert_allclose(trend["slope_per_seed"], [1, 2])
  assert trend["slope"]["mean"] == pytest.approx(1.5)
  assert trend["slope"]["half_width"] == pytest.approx(12.70620474 * 0.5)
  assert trend["intercept"] == pytest.approx(-0.5)
  assert trend["time_averaged"] == pytest.approx(2.5) and trend["skip"] == 0
  # Leaving out each block's first iteration: block gains [2, 3, 4] and [1, 3, 5] + ramp.
  ramp = gain + np.tile([1.0, 0.0], 3)
  settled = gain_analysis.gain_trend(ramp, 3, skip=1)
  np.testing.assert_allclose(settled["block_gain"], [[1, 2, 3], [1, 3, 5]])
  assert settled["skip"] == 1 and settled["time_averaged"] == pytest.approx(3.0)
  with pytest.raises(ValueError, match="at least 2 tasks"):
    gain_analysis.gain_trend(gain, 1)
