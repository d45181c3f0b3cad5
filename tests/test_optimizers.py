"""ngm_jax.optimizers: each built-in name's transformation and flags, on a tiny
params pytree (no training loop): first updates against hand computations,
the gain where there is one, errors that name the bad value."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ngm_jax import gain_modulation, gain_of
from ngm_jax.config import TrainConfig
from ngm_jax.optimizers import (OPTIMIZER_NAMES, Optimizer, as_optimizer, builtin, has_gain,
                                make_optimizer, partition_by_gain, training_options)

PARAMS = {"head": {"kernel": jnp.ones((2, 3))}, "body": {"kernel": jnp.ones((3,))}}
GRADS = {"head": {"kernel": jnp.arange(6.0).reshape(2, 3) - 2.5},
         "body": {"kernel": jnp.array([0.5, -1.0, 2.0])}}
HEAD_ONLY = {"head": {"kernel": True}, "body": {"kernel": False}}
ENTROPY = 0.5
#: The names whose state holds a gain (gain_of finds it).
WITH_GAIN = {"ngm_sgd", "g0_sgd", "ngm_sgd_plain", "entropy_lr_sgd", "replayed_lr_sgd",
             "ngm_msgd", "ngm_adam"}


def _updates(tx, steps=1, entropy=ENTROPY):
  """The updates of ``steps`` calls with GRADS, each under jit; and the state."""
  state = tx.init(PARAMS)
  update = jax.jit(lambda g, s: tx.update(g, s, PARAMS, entropy=entropy, unused_signal=1.0))
  out = []
  for _ in range(steps):
    u, state = update(GRADS, state)
    out.append(jax.device_get(u))
  return out, state


def _close(tree, expected, **kw):
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **kw), tree, expected)


def _scaled(c, tree=GRADS):
  return jax.tree.map(lambda g: c * g, tree)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_every_name_updates_under_jit_with_entropy_and_extra_signals(name):
  tx = make_optimizer(name, iterations_per_task=10)
  (first, second), state = _updates(tx, steps=2)
  for u in (first, second):
    assert jax.tree.structure(u) == jax.tree.structure(PARAMS)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(u))
  assert (gain_of(state, default=None) is not None) == (name in WITH_GAIN)
  assert has_gain(tx, PARAMS) == (name in WITH_GAIN)


@pytest.mark.parametrize("name", ["sgd", "msgd", "msgd_reset", "ngm_sgd", "ngm_msgd",
                                  "ngm_sgd_plain", "ema_sgd"])
def test_first_update_is_minus_lr_times_the_gradient(name):
  # Momentum's trace starts at 0; the gain (g0 = 2 here) scales W_eff in the
  # training loop, never the raw step of ngm_sgd.
  (first,), _ = _updates(make_optimizer(name, learning_rate=0.1, g0=2.0))
  _close(first, _scaled(-0.1), rtol=1e-6)


def test_momentum_adds_the_previous_step():
  (first, second), _ = _updates(make_optimizer("msgd", learning_rate=0.1, momentum=0.5), 2)
  _close(second, _scaled(-0.1 * 1.5), rtol=1e-6)
  (first, second), _ = _updates(make_optimizer("sgd", learning_rate=0.1), 2)
  _close(second, first, rtol=0)


@pytest.mark.parametrize("name", ["adam", "adam_reset", "ngm_adam"])
def test_adams_first_update_is_lr_times_the_gradients_sign(name):
  (first,), _ = _updates(make_optimizer(name, learning_rate=0.1))
  # m̂/(√v̂ + ε) = g/(|g| + 1e-8); the bias corrections round in float32.
  _close(first, jax.tree.map(lambda g: -0.1 * jnp.sign(g), GRADS), rtol=1e-5)


def test_the_gain_follows_its_recursion_and_g0_sgd_holds_it():
  # g1 = γ·g0 + (1 − γ)·g0 + η·H with γ 0.8, g0 2, η 0.4, H 0.5: 2 + 0.2.
  for name in ("ngm_sgd", "ngm_msgd", "ngm_adam", "ngm_sgd_plain", "entropy_lr_sgd"):
    _, state = _updates(make_optimizer(name, gamma=0.8, g0=2.0, eta=0.4))
    assert float(gain_of(state)) == pytest.approx(2.2), name
  # g0_sgd: η = 0 and the gain held at const_gain (g0 is ignored).
  _, state = _updates(make_optimizer("g0_sgd", g0=2.0, eta=0.4, const_gain=3.0), steps=3)
  assert float(gain_of(state)) == pytest.approx(3.0)


def test_gain_scaled_steps_are_lr_times_the_gain_squared():
  # entropy_lr_sgd and replayed_lr_sgd step by lr·g² (g before the update: g0).
  for name in ("entropy_lr_sgd", "replayed_lr_sgd"):
    (first,), _ = _updates(make_optimizer(name, learning_rate=0.1, g0=2.0))
    _close(first, _scaled(-0.1 * 4.0), rtol=1e-6)
  # The second step of entropy_lr_sgd uses the gain after the first.
  (_, second), _ = _updates(make_optimizer("entropy_lr_sgd", learning_rate=0.1, gamma=0.8,
                                           g0=2.0, eta=0.4), steps=2)
  _close(second, _scaled(-0.1 * 2.2 ** 2), rtol=1e-5)


def test_backbone_momentum_reaches_only_the_backbone():
  tx = make_optimizer("ngm_sgd", learning_rate=1.0, backbone_momentum=0.5, gain_mask=HEAD_ONLY)
  (first, second), state = _updates(tx, steps=2)
  np.testing.assert_allclose(second["head"]["kernel"], -GRADS["head"]["kernel"])  # plain SGD
  np.testing.assert_allclose(second["body"]["kernel"], -1.5 * GRADS["body"]["kernel"])
  g1 = 0.9 * 1.0 + 0.1 + 0.4 * ENTROPY  # two steps: found in a partition
  assert float(gain_of(state)) == pytest.approx(0.9 * g1 + 0.1 + 0.4 * ENTROPY)
  # ngm_sgd_plain: no momentum anywhere, the same mask and momentum given.
  plain = make_optimizer("ngm_sgd_plain", learning_rate=1.0, backbone_momentum=0.5,
                         gain_mask=HEAD_ONLY)
  (_, second), _ = _updates(plain, steps=2)
  _close(second, _scaled(-1.0), rtol=0)


def test_partition_by_gain_takes_a_mask_or_a_function_of_the_params():
  gain_tx = optax.chain(gain_modulation(eta=1.0), optax.sgd(1.0))
  for mask in (HEAD_ONLY, lambda params: jax.tree.map(lambda _: False, params)):
    tx = partition_by_gain(gain_tx, optax.sgd(0.0), mask)
    (first,), state = _updates(tx)
    head_moves = mask is HEAD_ONLY
    np.testing.assert_allclose(first["head"]["kernel"],
                               -GRADS["head"]["kernel"] if head_moves else 0.0)
    np.testing.assert_allclose(first["body"]["kernel"], 0.0)
    # The entropy reaches the gain in its group (g1 = 1 + η·H).
    assert float(gain_of(state)) == pytest.approx(1.0 + ENTROPY)


def test_errors_name_the_bad_value():
  with pytest.raises(ValueError, match="Unknown optimizer 'sgdd'; choose from") as e:
    make_optimizer("sgdd")
  assert all(name in str(e.value) for name in OPTIMIZER_NAMES)
  with pytest.raises(ValueError, match=r"backbone_momentum=0.9\) needs the gain_mask"):
    make_optimizer("ngm_sgd", backbone_momentum=0.9)
  with pytest.raises(ValueError, match="warmup_sgd.*needs iterations_per_task"):
    make_optimizer("warmup_sgd")
  with pytest.raises(TypeError, match="Optimizer.tx='sgd': expected an optax"):
    Optimizer("sgd")
  with pytest.raises(TypeError, match="optimizer 3: expected a built-in name") as e:
    as_optimizer(3, TrainConfig())
  assert "ngm_sgd" in str(e.value)


def test_training_options_of_each_name():
  expected = {"entropy_lr_sgd": {"reparameterise": False},
              "replayed_lr_sgd": {"reparameterise": False},
              "msgd_reset": {"reset_at_task_boundaries": True},
              "adam_reset": {"reset_at_task_boundaries": True}}
  for name in OPTIMIZER_NAMES:
    options = training_options(name)
    if name == "ema_sgd":
      assert set(options) == {"eval_params"} and callable(options["eval_params"])
    else:
      assert options == expected.get(name, {}), name


def test_builtin_reads_the_config_and_sets_the_flags():
  config = TrainConfig(learning_rate=0.25, gamma=0.5, g0=2.0, eta=1.0)
  spec = builtin("ngm_sgd", config)
  assert spec.name == "ngm_sgd" and spec.reparameterise and not spec.reset_at_task_boundaries
  (first,), state = _updates(spec.tx)
  _close(first, _scaled(-0.25), rtol=1e-6)
  assert float(gain_of(state)) == pytest.approx(0.5 * 2 + 0.5 * 2 + 1.0 * ENTROPY)
  assert builtin("adam_reset", config).reset_at_task_boundaries
  assert not builtin("entropy_lr_sgd", config).reparameterise


def test_as_optimizer_accepts_a_name_a_transformation_or_an_optimizer():
  config = TrainConfig()
  spec = Optimizer(optax.sgd(0.1), reset_at_task_boundaries=True)
  assert as_optimizer(spec, config) is spec
  assert as_optimizer("msgd_reset", config).name == "msgd_reset"
  mine = as_optimizer(optax.sgd(0.5), config)  # a plain transformation: no flags, no name
  assert mine.name is None and mine.reparameterise and not mine.reset_at_task_boundaries
  (first,), _ = _updates(mine.tx)  # takes entropy= though optax.sgd does not
  _close(first, _scaled(-0.5), rtol=1e-6)
