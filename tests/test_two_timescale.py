"""The proof of principle: the scalar model learnt three ways."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngm_jax import two_timescale as tt


@pytest.fixture(scope="module")
def result():
  return tt.simulate()


def test_shapes_and_switch(result):
  steps = result["settings"]["steps"]
  assert result["switch_step"] == steps // 2
  np.testing.assert_array_equal(
      result["target"], np.where(np.arange(steps) < steps // 2, 1.0, 2.0))
  for name in ("gain_modulated", "fast_slow", "slow_only"):
    for key, value in result[name].items():
      assert value.shape == (steps,), (name, key)
      assert value.dtype == jnp.float32, (name, key)
      assert np.isfinite(value).all(), (name, key)


@pytest.mark.parametrize("kwargs", [
    {},
    {"w0": 0.0, "t2": -1.0, "eta": 0.1, "gamma": 0.9},
    {"signal": "abs_error", "g0": 1.5, "x": 0.5, "learning_rate": 0.1},
])
def test_gain_modulated_is_fast_plus_slow(kwargs):
  r = tt.simulate(**kwargs)
  gm, fs = r["gain_modulated"], r["fast_slow"]
  x, g0 = r["settings"]["x"], r["settings"]["g0"]
  # The same system written two ways: equal at every step.
  for key in ("y", "gain", "w_fast", "w_slow", "w_eff", "loss"):
    np.testing.assert_allclose(gm[key], fs[key], rtol=1e-5, atol=1e-5, err_msg=key)
  np.testing.assert_allclose(fs["y"], (fs["w_fast"] + fs["w_slow"]) * x, rtol=1e-6)
  np.testing.assert_allclose(gm["y"], gm["gain"] * gm["w"] * x, rtol=1e-6)
  np.testing.assert_allclose(gm["w_slow"], g0 * gm["w"], rtol=1e-6)
  np.testing.assert_allclose(gm["w_fast"], (gm["gain"] - g0) * gm["w"], rtol=1e-6, atol=1e-7)


def test_slow_only_is_gain_modulated_with_eta_zero():
  targets = tt.target_schedule(50)
  gm = tt.simulate_gain_modulated(targets, w0=0.3, eta=0.0)
  so = tt.simulate_slow_only(targets, w0=0.3)
  np.testing.assert_allclose(gm["y"], so["y"], rtol=1e-6)
  np.testing.assert_array_equal(gm["gain"], np.ones(50))


def test_hand_computed_first_steps():
  gm = tt.simulate_gain_modulated(jnp.array([2.0, 2.0]), x=1.0, w0=1.0,
                                  learning_rate=0.1, gamma=0.5, g0=1.0, eta=0.2)
  # Step 0: y = 1, e = 1, w <- 1 + 0.1·1·1·1 = 1.1, g <- 0.5 + 0.5 + 0.2·1 = 1.2.
  np.testing.assert_allclose(gm["y"], [1.0, 1.2 * 1.1], rtol=1e-6)
  np.testing.assert_allclose(gm["gain"], [1.0, 1.2], rtol=1e-6)
  np.testing.assert_allclose(gm["signal"], [1.0, (2 - 1.32) ** 2], rtol=1e-5)


def test_gain_peaks_after_the_switch(result):
  gain = np.asarray(result["gain_modulated"]["gain"])
  peak, switch = result["peak_gain_step"], result["switch_step"]
  assert peak == int(np.argmax(gain))
  assert switch < peak < switch + 20
  assert gain[peak] > result["settings"]["g0"] + 0.3
  np.testing.assert_allclose(gain[:switch], result["settings"]["g0"])  # at rest on T1


def test_gain_modulated_reaches_t2_faster(result):
  s = result["switch_step"]
  fast = tt.steps_to_target(result["gain_modulated"]["y"], 2.0, s, rtol=0.05)
  slow = tt.steps_to_target(result["slow_only"]["y"], 2.0, s, rtol=0.05)
  assert 0 < fast < slow
  assert (fast, slow) == (13, 45)  # the defaults' measured values
  assert fast == tt.steps_to_target(result["gain_modulated"]["y"], 2.0, s, stay=False)


def test_steps_to_target_first_versus_stays():
  y = jnp.array([0.0, 1.0, 0.5, 1.0, 1.0])
  assert tt.steps_to_target(y, 1.0, 0, stay=False) == 1
  assert tt.steps_to_target(y, 1.0, 0, stay=True) == 3
  assert tt.steps_to_target(y, 1.0, 2, stay=True) == 1
  assert tt.steps_to_target(jnp.zeros(4), 1.0, 0) == -1


@pytest.mark.parametrize("gain", [0.5, 1.0, 1.577, 3.0])
def test_curvature_ratio_is_gain_squared(gain):
  np.testing.assert_allclose(tt.curvature_ratio(0.7, gain, x=1.3, target=2.0),
                             gain**2, rtol=1e-5)
  # Independently, by second differences of the plotted landscapes.
  land = tt.loss_landscape(0.7, gain, x=1.3, target=2.0, span=0.5, num=11)
  h = float(land["w_grid"][1] - land["w_grid"][0])
  d2 = lambda f: (f[2:] - 2 * f[1:-1] + f[:-2]) / h**2
  np.testing.assert_allclose(d2(np.asarray(land["loss_w"], np.float64)),
                             gain**2 * 1.3**2, rtol=1e-3)
  np.testing.assert_allclose(d2(np.asarray(land["loss_w_eff"], np.float64)),
                             1.3**2, rtol=1e-3)
  np.testing.assert_allclose(land["loss_w"][5], land["loss_w_eff"][5], rtol=1e-6)


def test_jit_and_callable_signal():
  targets = tt.target_schedule(40)
  eager = tt.simulate_gain_modulated(targets, signal=lambda y, t: jnp.abs(t - y) ** 3)
  jitted = jax.jit(lambda t: tt.simulate_gain_modulated(
      t, signal=lambda y, t: jnp.abs(t - y) ** 3))(targets)
  np.testing.assert_allclose(eager["y"], jitted["y"], rtol=1e-6)
  assert tt.simulate(20, signal=lambda y, t: 0.0 * y)["peak_gain_step"] == 0


@pytest.mark.parametrize("call, text", [
    (lambda: tt.simulate(gamma=1.0), "gamma=1.0"),
    (lambda: tt.simulate(gamma=-0.1), "gamma=-0.1"),
    (lambda: tt.simulate(g0=0.0), "g0=0.0"),
    (lambda: tt.simulate(eta=-1.0), "eta=-1.0"),
    (lambda: tt.simulate(learning_rate=0.0), "learning_rate=0.0"),
    (lambda: tt.simulate(x=0.0), "x=0.0"),
    (lambda: tt.simulate(t2=float("nan")), "t2=nan"),
    (lambda: tt.simulate(1), "steps=1"),
    (lambda: tt.simulate(10.5), "steps=10.5"),
    (lambda: tt.simulate(signal="entropy"), "signal='entropy'"),
    (lambda: tt.steps_to_target(jnp.ones(5), 0.0, 0), "target=0.0"),
    (lambda: tt.steps_to_target(jnp.ones(5), 1.0, 5), "start=5"),
    (lambda: tt.steps_to_target(jnp.ones(5), 1.0, 0, rtol=1.5), "rtol=1.5"),
    (lambda: tt.loss_landscape(1.0, 0.0), "gain=0.0"),
    (lambda: tt.loss_landscape(1.0, 1.0, num=2), "num=2"),
])
def test_bad_input_raises_with_value(call, text):
  with pytest.raises(ValueError) as info:
    call()
  assert text in str(info.value)
