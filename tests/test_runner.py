"""run_benchmark on the user's objects: optax transformations, Linen and NNX models."""

import dataclasses
import os

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest
from flax import nnx

import ngm_jax
from ngm_jax import streams
from ngm_jax.dataset import ImageDataset
from ngm_jax.optimizers import OPTIMIZER_NAMES
from ngm_jax.results import load_result, save_result
from ngm_jax.train import TrainConfig, make_train, make_train_parts, seed_keys
from tests.conftest import fake_mnist

CONFIG = TrainConfig(iterations_per_task=2, batch_size=4, eval_every=1, task_eval_every=2)


@pytest.fixture(scope="module")
def stream():
  return streams.split_mnist(fake_mnist(n_train_per_class=4, n_test_per_class=2))


def frozen_gain(gain):
  """A transformation that holds the gain at ``gain`` and never moves the weights."""
  return optax.chain(ngm_jax.gain_modulation(gamma=0.9, g0=gain, eta=0.0), optax.sgd(0.0))


class LinenNet(nn.Module):
  """A user's Linen model: its own train flag, dropout, biases."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Dense(16)(x))
    x = nn.Dropout(0.2, deterministic=not train)(x)
    return nn.Dense(10)(x)


class NNXNet(nnx.Module):
  """A user's NNX model whose only required argument is rngs."""

  def __init__(self, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(784, 16, rngs=rngs)
    self.drop = nnx.Dropout(0.2, rngs=rngs)
    self.out = nnx.Linear(16, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(self.drop(nnx.relu(self.hidden(x))))


def test_user_transformations_and_a_builtin_in_one_call_write_nothing(stream, tmp_path,
                                                                      monkeypatch):
  monkeypatch.chdir(tmp_path)
  mine = optax.chain(ngm_jax.gain_modulation(gamma=0.9, g0=1.0, eta=0.4), optax.adamw(1e-3))
  result = ngm_jax.run_benchmark(
      stream, {"mine": mine, "adam": optax.adam(1e-3), "ngm_sgd": "ngm_sgd"}, CONFIG,
      num_seeds=2, show_progress=False)
  assert os.listdir(tmp_path) == []  # out=None: nothing written
  assert result.labels == ["mine", "adam", "ngm_sgd"]
  iterations = stream.num_tasks * CONFIG.iterations_per_task
  for label in result.labels:
    for curve in ("task1_acc", "task1_loss", "gain", "train_loss", "entropy"):
      value = result.curves[label][curve]
      assert isinstance(value, np.ndarray) and value.shape == (2, iterations), (label, curve)
    assert result.curves[label]["task_acc"].shape == (2, 5, stream.num_tasks)
    assert set(result.metrics[label]) >= {"avg_acc", "avg_sg", "wc_acc", "avg_min_acc"}
  variants = result.meta["variants"]
  assert variants["mine"]["has_gain"] and variants["ngm_sgd"]["has_gain"]
  assert not variants["adam"]["has_gain"]
  np.testing.assert_array_equal(result.curves["adam"]["gain"], 1.0)  # no gain: recorded as 1
  assert np.ptp(result.curves["mine"]["gain"]) > 0  # the gain moved inside the user's chain
  assert result.config == CONFIG


@pytest.mark.slow
def test_a_result_saved_and_loaded_is_the_same(stream, tmp_path):
  result = ngm_jax.run_benchmark(stream, ["sgd"], CONFIG, num_seeds=1, show_progress=False)
  save_result(result, tmp_path / "run")
  again = load_result(tmp_path / "run")
  assert again.meta == result.meta and again.labels == result.labels
  for name, value in result.curves["sgd"].items():
    np.testing.assert_array_equal(again.curves["sgd"][name], value)
  assert again.metrics["sgd"]["avg_acc"] == result.metrics["sgd"]["avg_acc"]


@pytest.mark.slow
@pytest.mark.parametrize("model", [LinenNet(), NNXNet], ids=["linen", "nnx"])
def test_user_model_gain_2_versus_1_changes_task1_loss(stream, model):
  result = ngm_jax.run_benchmark(stream, {"g1": frozen_gain(1.0), "g2": frozen_gain(2.0)},
                                 CONFIG, num_seeds=1, model=model, show_progress=False)
  g1, g2 = result.curves["g1"], result.curves["g2"]
  np.testing.assert_array_equal(g1["gain"], 1.0)
  np.testing.assert_array_equal(g2["gain"], 2.0)
  # Same seed, same initial weights, no learning: only W_eff = g·W differs.
  assert np.abs(g1["task1_loss"] - g2["task1_loss"]).min() > 1e-3
  assert result.meta["model_kind"] == ("nnx" if model is NNXNet else "linen")


class LinenDropNet(nn.Module):
  """LinenNet with the dropout rate as a field."""
  rate: float

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Dense(16)(x))
    x = nn.Dropout(self.rate, deterministic=not train)(x)
    return nn.Dense(10)(x)


class NNXDropNet(NNXNet):
  """NNXNet with the dropout rate as an argument."""

  def __init__(self, rate: float, rngs: nnx.Rngs):
    super().__init__(rngs)
    self.drop = nnx.Dropout(rate, rngs=rngs)


def _frozen_steps(stream, model, steps=4):
  """Training losses ``[steps]`` and the every-task evaluation before and after
  each step of key 0's run of ``model`` with frozen weights (frozen_gain)."""
  parts = make_train_parts(stream, frozen_gain(1.0), CONFIG, model=model)
  state = jax.jit(parts.init)(jax.random.key(0), parts.data)
  step, evaluate = jax.jit(parts.step), jax.jit(parts.task_eval)
  losses, evals = [], [evaluate(state, parts.data)]
  for _ in range(steps):
    state, record = step(state, parts.data)
    losses.append(record["train_loss"])
    evals.append(evaluate(state, parts.data))
  return np.asarray(losses), jax.device_get(evals)


@pytest.mark.parametrize("kind", ["linen", pytest.param("nnx", marks=pytest.mark.slow)])
def test_dropout_is_on_in_training_and_off_in_evaluation(stream, kind):
  # The weights never move, so the same key gives the same weights and
  # minibatches with dropout 0.5 and 0: the training losses differ only by
  # dropout; the evaluation sees no dropout, so it is bit for bit the same for
  # both rates and at every step (the dropout RNG moves on at each step).
  make = ((lambda rate: LinenDropNet(rate)) if kind == "linen"
          else (lambda rate: lambda rngs: NNXDropNet(rate, rngs)))
  on_loss, on_eval = _frozen_steps(stream, make(0.5))
  off_loss, off_eval = _frozen_steps(stream, make(0.0))
  assert (np.abs(on_loss - off_loss) > 1e-4).all(), (on_loss, off_loss)  # every step dropped
  for evaluated in on_eval + off_eval:
    for name in ("task_loss", "task_acc"):
      np.testing.assert_array_equal(evaluated[name], off_eval[0][name], err_msg=name)


@pytest.mark.slow
def test_nnx_dropout_and_model_state_train(stream):
  result = ngm_jax.run_benchmark(stream, ["ngm_sgd"], CONFIG, num_seeds=2, model=NNXNet,
                                 show_progress=False)
  curves = result.curves["ngm_sgd"]
  assert np.isfinite(curves["train_loss"]).all()
  assert not np.allclose(curves["train_loss"][0], curves["train_loss"][1])  # seeds differ


def test_gain_placement_is_a_path_predicate_for_linen_and_nnx(stream):
  linen_params = LinenNet().init(jax.random.key(0), np.zeros((1, 784)))["params"]
  _, nnx_params, _ = nnx.split(NNXNet(nnx.Rngs(0)), nnx.Param, ...)
  for params in (linen_params, nnx_params):
    mask = jax.tree.leaves(ngm_jax.gain_mask(params))
    assert sum(mask) == 2 and len(mask) == 4  # two kernels, two biases
    only_out = ngm_jax.layer_kernels("out", "Dense_1")
    assert sum(jax.tree.leaves(ngm_jax.gain_mask(params, only_out))) == 1


@pytest.mark.slow  # tests/test_train.py checks the reset step by step
def test_msgd_reset_differs_from_msgd(stream):
  keys = seed_keys(1)
  curves = {}
  for name in ("msgd", "msgd_reset"):
    train, data = make_train(stream, name, CONFIG)
    curves[name] = jax.device_get(jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, data))
  first_task = CONFIG.iterations_per_task
  np.testing.assert_array_equal(curves["msgd"]["train_loss"][:, :first_task + 1],
                                curves["msgd_reset"]["train_loss"][:, :first_task + 1])
  assert not np.allclose(curves["msgd"]["train_loss"], curves["msgd_reset"]["train_loss"])


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in OPTIMIZER_NAMES if n != "replayed_lr_sgd"])
def test_each_builtin_trains_the_same_through_make_train_and_run_benchmark(stream, name):
  train, data = make_train(stream, name, CONFIG)
  direct = jax.device_get(jax.jit(jax.vmap(train, in_axes=(0, None)))(seed_keys(1), data))
  result = ngm_jax.run_benchmark(stream, [name], CONFIG, num_seeds=1, show_progress=False)
  for curve, value in direct.items():
    np.testing.assert_array_equal(result.curves[name][curve], value, err_msg=curve)


@pytest.mark.slow
def test_images_with_a_channel_axis_train_like_without(stream):
  data = fake_mnist(n_train_per_class=4, n_test_per_class=2)
  with_channel = ImageDataset(data.train_images[..., None], data.train_labels,
                              data.test_images[..., None], data.test_labels)
  four_d = streams.split_mnist(with_channel)
  a = ngm_jax.run_benchmark(stream, ["ngm_sgd"], CONFIG, num_seeds=1, show_progress=False)
  b = ngm_jax.run_benchmark(four_d, ["ngm_sgd"], CONFIG, num_seeds=1, show_progress=False)
  np.testing.assert_array_equal(a.curves["ngm_sgd"]["task1_loss"],
                                b.curves["ngm_sgd"]["task1_loss"])


class WrongShape(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(7)(x)


def test_bad_inputs_get_clear_errors(stream, tmp_path):
  with pytest.raises(ValueError, match=r"output of shape \(2, 7\).*\[2, 10\]"):
    ngm_jax.run_benchmark(stream, ["sgd"], CONFIG, num_seeds=1, model=WrongShape())
  with pytest.raises(TypeError, match="NNX module instance; pass a constructor"):
    ngm_jax.run_benchmark(stream, ["sgd"], CONFIG, num_seeds=1, model=NNXNet(nnx.Rngs(0)))
  with pytest.raises(TypeError, match="has no label; pass a dict"):
    ngm_jax.run_benchmark(stream, [optax.adam(1e-3)], CONFIG, num_seeds=1)
  with pytest.raises(ValueError, match="Unknown optimizer 'rmsprop'"):
    ngm_jax.run_benchmark(stream, ["rmsprop"], CONFIG, num_seeds=1)
  with pytest.raises(ValueError, match="num_seeds=0"):
    ngm_jax.run_benchmark(stream, ["sgd"], CONFIG, num_seeds=0)
  (tmp_path / "file").write_text("x")
  with pytest.raises(ValueError, match="is a file, not a folder"):
    ngm_jax.run_benchmark(stream, ["sgd"], CONFIG, num_seeds=1, out=tmp_path / "file")
  ngm_jax.run_benchmark(stream, ["sgd"], CONFIG, num_seeds=1, out=tmp_path / "run",
                        show_progress=False)
  with pytest.raises(ValueError, match="already holds a run; pass overwrite=True"):
    ngm_jax.run_benchmark(stream, ["sgd"], CONFIG, num_seeds=1, out=tmp_path / "run")
  custom = dataclasses.replace(stream, name="my_stream")
  with pytest.raises(ValueError, match="not a registered benchmark.*pass model="):
    ngm_jax.run_benchmark(custom, ["sgd"], CONFIG, num_seeds=1)
