"""Tests of the gain transformation, ngm_sgd, gain_of, effective_params, entropy."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ngm_jax import checks
from ngm_jax import gain as ngm


def _params():
  return {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros((2,))}}


class TestGainModulation:

  def test_dynamics_match_hand_computation(self):
    gamma, g0, eta = 0.9, 1.0, 0.4
    tx = ngm.gain_modulation(gamma=gamma, g0=g0, eta=eta)
    state = tx.init(_params())
    assert float(state.gain) == g0
    expected = g0
    for h in (2.3, 0.5, 0.0, 1.2):
      _, state = tx.update(_params(), state, entropy=jnp.float32(h))
      expected = gamma * expected + (1 - gamma) * g0 + eta * h
      np.testing.assert_allclose(float(state.gain), expected, rtol=1e-6)

  def test_updates_pass_through_unchanged(self):
    tx = ngm.gain_modulation()
    grads = {"w": jnp.arange(4.0)}
    updates, _ = tx.update(grads, tx.init(grads), entropy=1.0)
    chex.assert_trees_all_equal(updates, grads)

  def test_relaxes_to_fixed_point(self):
    # Constant H: g* = g0 + eta * H / (1 - gamma).
    tx = ngm.gain_modulation(gamma=0.5, g0=2.0, eta=0.1)
    state = tx.init(None)
    for _ in range(60):
      _, state = tx.update({}, state, entropy=1.0)
    np.testing.assert_allclose(float(state.gain), 2.0 + 0.1 / 0.5, rtol=1e-6)

  def test_unknown_extra_args_are_ignored(self):
    tx = ngm.gain_modulation()
    _, state = tx.update({}, tx.init(None), entropy=0.0, value=3.0, foo="bar")
    assert float(state.gain) == pytest.approx(1.0)

  def test_entropy_is_required(self):
    tx = ngm.gain_modulation()
    with pytest.raises(TypeError, match="entropy"):
      tx.update({}, tx.init(None))

  @pytest.mark.parametrize(
      "kwargs, name",
      [
          ({"gamma": 1.0}, "gamma"),
          ({"gamma": -0.1}, "gamma"),
          ({"gamma": float("nan")}, "gamma"),
          ({"g0": 0.0}, "g0"),
          ({"g0": -1.0}, "g0"),
          ({"g0": float("inf")}, "g0"),
          ({"eta": -0.5}, "eta"),
          ({"eta": float("nan")}, "eta"),
      ],
  )
  def test_bad_hyperparameters_raise_with_value_and_range(self, kwargs, name):
    with pytest.raises(ValueError) as err:
      ngm.gain_modulation(**kwargs)
    message = str(err.value)
    assert f"{name}=" in message and repr(kwargs[name]) in message
    assert message.endswith(f": must be {checks.allowed(name)}.")
    assert checks.allowed(name) in ("a finite number in [0, 1)", "a finite number > 0",
                                    "a finite number >= 0")

  @pytest.mark.parametrize("value", ["0.5", True, None, [0.5], np.array([0.5, 0.6]), 0.5j])
  def test_a_hyperparameter_that_is_not_a_number_is_a_type_error_at_once(self, value):
    with pytest.raises(TypeError, match=r"gain_modulation: gamma=.*: must be a finite number"
                                        r" in \[0, 1\), not a"):
      ngm.gain_modulation(gamma=value)
    for factory in (ngm.ngm_sgd, ngm.gain_scaled_sgd):
      with pytest.raises(TypeError, match="learning_rate="):
        factory(learning_rate=value)

  def test_numbers_of_every_kind_and_schedules_are_accepted(self):
    for value in (0.5, np.float32(0.5), np.float64(0.5), jnp.float32(0.5), jnp.array(0.5)):
      ngm.gain_modulation(gamma=value)
    ngm.gain_modulation(g0=2)  # an int is a number
    ngm.ngm_sgd(optax.constant_schedule(0.1))
    with pytest.raises(ValueError, match=r"ngm_sgd: learning_rate=-0.1: must be a finite number > 0"):
      ngm.ngm_sgd(-0.1)
    with pytest.raises(ValueError, match="replayed_gain_sgd: learning_rate=nan"):
      ngm.replayed_gain_sgd(float("nan"), [1.0])

  def test_state_dtype_and_shape_are_stable(self):
    tx = ngm.gain_modulation()
    state = tx.init(_params())
    chex.assert_shape(state.gain, ())
    assert state.gain.dtype == jnp.float32
    # A float64-looking Python entropy must not promote the state.
    _, new_state = tx.update(_params(), state, entropy=1.5)
    assert new_state.gain.dtype == jnp.float32
    chex.assert_trees_all_equal_shapes_and_dtypes(state, new_state)

  def test_jit_does_not_recompile(self):
    tx = ngm.ngm_sgd(0.1)
    params = _params()
    state = tx.init(params)
    traces = []

    @jax.jit
    def step(grads, state, h):
      traces.append(1)
      return tx.update(grads, state, params, entropy=h)

    _, state = step(params, state, jnp.float32(0.3))
    _, state = step(params, state, jnp.float32(0.7))
    assert len(traces) == 1

  def test_vmap_over_states(self):
    tx = ngm.gain_modulation(gamma=0.5, g0=1.0, eta=1.0)
    states = jax.vmap(tx.init)(jnp.zeros((3, 2)))
    h = jnp.array([0.0, 1.0, 2.0])
    _, new = jax.vmap(lambda s, e: tx.update({}, s, entropy=e))(states, h)
    np.testing.assert_allclose(new.gain, 1.0 + h, rtol=1e-6)

  def test_inject_hyperparams_matches_plain(self):
    params = _params()
    grads = jax.tree.map(lambda x: 0.1 * jnp.ones_like(x), params)
    plain = ngm.ngm_sgd(0.05, gamma=0.8, g0=1.5, eta=0.3)
    injected = optax.inject_hyperparams(ngm.ngm_sgd)(
        learning_rate=0.05, gamma=0.8, g0=1.5, eta=0.3)
    s_plain, s_inj = plain.init(params), injected.init(params)
    update_inj = jax.jit(lambda g, s, h: injected.update(g, s, params, entropy=h))
    for h in (2.0, 0.4):
      u_plain, s_plain = plain.update(grads, s_plain, params, entropy=h)
      u_inj, s_inj = update_inj(grads, s_inj, jnp.float32(h))
      chex.assert_trees_all_close(u_plain, u_inj, rtol=1e-6)
      np.testing.assert_allclose(ngm.gain_of(s_plain), ngm.gain_of(s_inj), rtol=1e-6)

  def test_inject_hyperparams_can_change_eta(self):
    injected = optax.inject_hyperparams(ngm.gain_modulation)(eta=0.0)
    state = injected.init(None)
    state.hyperparams["eta"] = jnp.float32(1.0)
    _, state = jax.jit(lambda s: injected.update({}, s, entropy=2.0))(state)
    np.testing.assert_allclose(ngm.gain_of(state), 0.9 + 0.1 + 2.0, rtol=1e-6)


class TestNgmSgd:

  def test_chains_with_adam(self):
    tx = optax.chain(ngm.gain_modulation(eta=1.0), optax.adam(1e-3))
    params = _params()
    state = tx.init(params)
    updates, state = jax.jit(
        lambda g, s: tx.update(g, s, params, entropy=0.5))(params, state)
    np.testing.assert_allclose(ngm.gain_of(state), 0.9 + 0.1 + 0.5, rtol=1e-6)
    adam_only = optax.adam(1e-3)
    expected, _ = adam_only.update(params, adam_only.init(params), params)
    chex.assert_trees_all_close(updates, expected)

  def test_effective_learning_rate_is_lr_times_gain_squared(self):
    # Linear model y = (g W) x; loss L(W_eff). One ngm_sgd step on the raw W
    # moves W_eff by -lr * g^2 * dL/dW_eff.
    lr, g = 0.01, 2.5
    w = jnp.array([[0.3, -0.2], [0.1, 0.4]])
    x, target = jnp.array([1.0, 2.0]), jnp.array([0.5, -0.5])
    mask = {"w": True}
    loss_of_weff = lambda weff: 0.5 * jnp.sum((weff @ x - target) ** 2)
    loss_of_w = lambda p: loss_of_weff(ngm.effective_params(p, g, mask)["w"])
    tx = ngm.ngm_sgd(lr, gamma=0.0, g0=g, eta=0.0)  # gain held at g
    params = {"w": w}
    state = tx.init(params)
    grads = jax.grad(loss_of_w)(params)
    updates, _ = tx.update(grads, state, params, entropy=0.0)
    new_weff = g * optax.apply_updates(params, updates)["w"]
    expected = g * w - lr * g**2 * jax.grad(loss_of_weff)(g * w)
    np.testing.assert_allclose(new_weff, expected, rtol=1e-6)


class TestGainOf:

  def test_reads_gain_from_nested_chain(self):
    tx = optax.chain(optax.clip(1.0), optax.chain(ngm.gain_modulation(g0=3.0), optax.sgd(0.1)))
    assert float(ngm.gain_of(tx.init(_params()))) == 3.0

  def test_reads_gain_from_partition(self):
    tx = optax.multi_transform(
        {"head": ngm.ngm_sgd(0.1, g0=2.0), "body": optax.sgd(0.1, momentum=0.9)},
        {"dense": {"kernel": "head", "bias": "body"}},
    )
    assert float(ngm.gain_of(tx.init(_params()))) == 2.0

  def test_no_gain_raises_or_returns_default(self):
    state = optax.adam(0.1).init(_params())
    with pytest.raises(KeyError, match="gain_modulation"):
      ngm.gain_of(state)
    assert ngm.gain_of(state, default=1.0) == 1.0


class TestEffectiveParams:

  def test_scales_only_masked_leaves(self):
    params = _params()
    mask = {"dense": {"kernel": True, "bias": False}}
    out = ngm.effective_params(params, jnp.float32(2.0), mask)
    np.testing.assert_array_equal(out["dense"]["kernel"], 2.0 * params["dense"]["kernel"])
    assert out["dense"]["bias"] is params["dense"]["bias"]

  def test_callable_and_prefix_masks(self):
    params = {"a": {"kernel": jnp.ones(2), "scale": jnp.ones(2)}, "b": {"kernel": jnp.ones(2)}}
    by_name = lambda p: jax.tree_util.tree_map_with_path(
        lambda path, _: path[-1].key == "kernel", p)
    out = ngm.effective_params(params, 3.0, by_name)
    np.testing.assert_array_equal(out["a"]["kernel"], 3.0)
    np.testing.assert_array_equal(out["a"]["scale"], 1.0)
    prefix = ngm.effective_params(params, 3.0, {"a": False, "b": True})
    np.testing.assert_array_equal(prefix["b"]["kernel"], 3.0)
    np.testing.assert_array_equal(prefix["a"]["kernel"], 1.0)

  def test_gradient_wrt_raw_params_is_gain_times_effective_gradient(self):
    w = jnp.array([1.0, -2.0])
    f = lambda weff: jnp.sum(jnp.sin(weff))
    g = 1.7
    grad_raw = jax.grad(lambda p: f(ngm.effective_params(p, g, {"w": True})["w"]))({"w": w})
    np.testing.assert_allclose(grad_raw["w"], g * jnp.cos(g * w), rtol=1e-6)


class TestEntropy:

  def test_uniform_logits_give_log_classes(self):
    np.testing.assert_allclose(ngm.entropy(jnp.zeros((4, 10))), math.log(10), rtol=1e-6)

  def test_confident_logits_give_near_zero(self):
    logits = jnp.array([[50.0, 0.0, 0.0], [0.0, 0.0, 50.0]])
    assert float(ngm.entropy(logits)) < 1e-10

  def test_hand_computed_batch_mean(self):
    logits = jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1]]))
    h1 = math.log(2)
    h2 = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    np.testing.assert_allclose(ngm.entropy(logits), (h1 + h2) / 2, rtol=1e-6)


def test_gain_of_ignores_other_entries_named_gain():
  tx = optax.multi_transform({"gain": ngm.ngm_sgd(0.1, g0=2.5), "other": optax.sgd(0.1)},
                             {"a": "gain", "b": "other"})
  state = tx.init({"a": jnp.zeros(1), "b": jnp.zeros(1)})
  assert float(ngm.gain_of(state)) == 2.5


def test_set_gain_replaces_only_the_gain():
  tx = optax.chain(ngm.gain_modulation(g0=1.0), optax.sgd(0.1, momentum=0.9))
  state = ngm.set_gain(tx.init(_params()), 4.0)
  assert float(ngm.gain_of(state)) == 4.0 and ngm.gain_of(state).dtype == jnp.float32


def test_gain_scaled_sgd_takes_ngm_step_size_on_raw_weights():
  lr, gamma, eta = 0.1, 0.5, 1.0
  tx = ngm.gain_scaled_sgd(lr, gamma=gamma, g0=1.0, eta=eta)
  params = {"w": jnp.array([1.0, -1.0])}
  grads = {"w": jnp.array([0.5, 2.0])}
  state = tx.init(params)
  g = 1.0
  for h in (2.0, 0.0, 1.0):
    updates, state = jax.jit(lambda s: tx.update(grads, s, params, entropy=h))(state)
    np.testing.assert_allclose(updates["w"], -lr * g**2 * grads["w"], rtol=1e-6)
    g = gamma * g + (1 - gamma) * 1.0 + eta * h   # the gain used by the next step
    np.testing.assert_allclose(ngm.gain_of(state), g, rtol=1e-6)
  with pytest.raises(ValueError, match="gamma"):
    ngm.gain_scaled_sgd(0.1, gamma=2.0)


def test_replayed_gain_sgd_steps_by_its_schedule_then_holds_the_last_gain():
  lr, gains = 0.1, np.array([1.0, 2.0, 3.0], np.float32)
  tx = ngm.replayed_gain_sgd(lr, gains)
  params = {"w": jnp.array([1.0, -1.0])}
  grads = {"w": jnp.array([0.5, 2.0])}
  state = tx.init(params)
  assert float(ngm.gain_of(state)) == 1.0
  update = jax.jit(lambda s: tx.update(grads, s, params, entropy=0.3))
  for t, g in enumerate([1.0, 2.0, 3.0, 3.0]):
    updates, state = update(state)
    np.testing.assert_allclose(updates["w"], -lr * g**2 * grads["w"], rtol=1e-6)
    assert int(state.count) == t + 1
    assert float(ngm.gain_of(state)) == gains[min(t + 1, 2)]
  # Another seed's schedule goes in through the state; it replays from its start.
  state = optax.tree.set(tx.init(params), schedule=jnp.array([4.0, 5.0]))
  updates, state = update(state)
  np.testing.assert_allclose(updates["w"], -lr * 16.0 * grads["w"], rtol=1e-6)
  assert float(ngm.gain_of(state)) == 5.0


@pytest.mark.parametrize("gains, match", [
    ([], "non-empty"), ([[1.0]], "non-empty"), ([1.0, 0.0], r"gains\[1\] = 0.0"),
    ([1.0, float("nan")], r"gains\[1\] = nan"),
])
def test_replayed_gain_sgd_rejects_bad_schedules(gains, match):
  with pytest.raises(ValueError, match=match):
    ngm.replayed_gain_sgd(0.1, gains)
