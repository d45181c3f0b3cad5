"""ngm_jax.mitigations: the weight average, the boundary warm-up, the constant gain."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ngm_jax.gain import gain_of
from ngm_jax.mitigations import (boundary_warmup, ema_params, ema_sgd, warmup_scale,
                                 weight_ema)
from ngm_jax.optimizers import Optimizer, builtin
from ngm_jax.search import builtin_tunable
from ngm_jax.streams import split_mnist
from ngm_jax.train import TrainConfig, make_train_parts
from tests.conftest import fake_mnist


def _descend(tx, steps=6):
  """A few steps on f(w) = ½‖w − 3‖², jitted; returns every iterate and the state."""
  params = {"w": jnp.array([1.0, -2.0])}
  state = tx.init(params)
  grad = jax.grad(lambda p: 0.5 * jnp.sum((p["w"] - 3.0) ** 2))
  update = jax.jit(tx.update)
  iterates = [params]
  for _ in range(steps):
    updates, state = update(grad(params), state, params)
    params = optax.apply_updates(params, updates)
    iterates.append(params)
  return iterates, state


def test_ema_weights_equal_the_average_by_hand():
  decay = 0.8
  iterates, state = _descend(ema_sgd(0.1, decay))
  by_hand = np.asarray(iterates[0]["w"])
  for p in iterates[1:]:
    by_hand = decay * by_hand + (1 - decay) * np.asarray(p["w"])
  np.testing.assert_allclose(ema_params(iterates[-1], state)["w"], by_hand, rtol=1e-6)
  # The trained weights are plain SGD's.
  sgd_iterates, _ = _descend(optax.sgd(0.1))
  np.testing.assert_array_equal(iterates[-1]["w"], sgd_iterates[-1]["w"])


def test_evaluation_uses_the_averaged_weights():
  stream = split_mnist(fake_mnist(n_train_per_class=6, n_test_per_class=3))
  config = TrainConfig(iterations_per_task=4, batch_size=8, task_eval_every=2)
  averaged = make_train_parts(stream, "ema_sgd", config)
  raw = make_train_parts(stream, Optimizer(ema_sgd(config.learning_rate)), config,
                         data=averaged.data)
  state = jax.jit(averaged.init)(jax.random.key(0), averaged.data)
  step = jax.jit(averaged.step)
  for _ in range(5):
    state, _ = step(state, averaged.data)
  ema = ema_params(state.params, state.opt_state)
  differ = jax.tree.leaves(jax.tree.map(lambda a, b: not np.allclose(a, b), ema, state.params))
  assert any(differ)
  raw_eval = jax.jit(raw.task_eval)
  on_ema = raw_eval(state._replace(params=ema), raw.data)
  np.testing.assert_allclose(jax.jit(averaged.task_eval)(state, averaged.data)["task_loss"],
                             on_ema["task_loss"], rtol=1e-6)
  on_trained = raw_eval(state, raw.data)
  assert not np.array_equal(on_trained["task_loss"], on_ema["task_loss"])


def test_warmup_profile_around_a_boundary():
  iters, warm = 10, 4.0
  scales = np.asarray([warmup_scale(jnp.int32(t), warm, iters) for t in range(25)])
  np.testing.assert_allclose(scales[:10], 1.0)          # task 1: full step
  np.testing.assert_allclose(scales[10:14], [0.25, 0.5, 0.75, 1.0])
  np.testing.assert_allclose(scales[14:20], 1.0)
  np.testing.assert_allclose(scales[20:22], [0.25, 0.5])  # the next boundary
  # The transformation applies it to SGD's step.
  tx = optax.chain(optax.sgd(1.0), boundary_warmup(warm, iters))
  params, state = {"w": jnp.zeros(())}, None
  state = tx.init(params)
  steps = []
  for _ in range(13):
    updates, state = tx.update({"w": jnp.ones(())}, state, params)
    steps.append(float(-updates["w"]))
  np.testing.assert_allclose(steps[9:13], [1.0, 0.25, 0.5, 0.75])


@pytest.mark.parametrize("make, match", [
    (lambda: weight_ema(1.0), "decay=1.0"),
    (lambda: weight_ema(-0.1), "decay=-0.1"),
    (lambda: boundary_warmup(0.5, 10), "warmup_steps=0.5"),
    (lambda: boundary_warmup(4.0, 0), "iterations_per_task=0"),
])
def test_bad_hyperparameters_are_named(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_the_constant_gain_stays_at_its_value():
  stream = split_mnist(fake_mnist(n_train_per_class=6, n_test_per_class=3))
  config = TrainConfig(iterations_per_task=4, batch_size=8, task_eval_every=2)
  # Built in with const_gain, and injected per run (the tuner's way).
  fixed = make_train_parts(stream, builtin("g0_sgd", TrainConfig(
      iterations_per_task=4, batch_size=8, task_eval_every=2, const_gain=2.5)), config)
  tunable = builtin_tunable("g0_sgd", config)
  injected = make_train_parts(stream, tunable.injected(), config, data=fixed.data)
  for parts, hyper in ((fixed, None), (injected, {"const_gain": jnp.float32(2.5),
                                                  "learning_rate": jnp.float32(0.01)})):
    state = parts.init(jax.random.key(0), parts.data, hyper)
    gains = [float(gain_of(state.opt_state))]
    step = jax.jit(parts.step)
    for _ in range(6):
      state, record = step(state, parts.data)
      gains.append(float(record["gain"]))
    np.testing.assert_allclose(gains, 2.5, rtol=1e-6)
