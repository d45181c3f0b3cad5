"""bfloat16 compute with float32 parameters (TrainConfig.compute_dtype, ngm_jax.precision).

The network computes in bfloat16; parameters, gradients, optimizer state, the
gain, the loss and the entropy stay float32; outputs and a short run stay
close to float32's. A run saved before the field existed resumes and loads.
"""

import json
import re
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ngm_jax import checks
from ngm_jax.model_fns import model_fns
from ngm_jax.models import MLP
from ngm_jax.precision import with_compute_dtype
from ngm_jax.results import load_result
from ngm_jax.runner import run_benchmark
from ngm_jax.streams import split_mnist
from ngm_jax.train import TrainConfig, make_train, make_train_parts, seed_keys
from tests.conftest import fake_mnist

#: Largest |bfloat16 logit − float32 logit| allowed, as a fraction of the
#: largest |float32 logit|: bfloat16 keeps 8 significant bits (2^-8 = 0.4 %
#: per rounding); measured 0.5 % (MLP) and 0.6 % (conv net) here.
LOGIT_TOLERANCE = 0.02


class NNXNet(nnx.Module):
  """Dropout: an RNG key and counter in the model state."""

  def __init__(self, rngs):
    self.hidden = nnx.Linear(784, 16, rngs=rngs)
    self.drop = nnx.Dropout(0.1, rngs=rngs)
    self.out = nnx.Linear(16, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(self.drop(nnx.relu(self.hidden(x))))


class ConvNet(nn.Module):
  """A tiny conv net with BatchNorm (statistics in the model state), as the ResNet."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Conv(8, (3, 3), use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
    x = nn.Conv(8, (3, 3), strides=2, use_bias=False)(x)
    return nn.Dense(10, use_bias=False)(x.mean(axis=(1, 2)))


NETWORKS = {
    "mlp": (MLP(), (16, 784)),
    "conv": (ConvNet(), (16, 12, 12, 3)),
    "nnx": (NNXNet, (16, 784)),
}


def _floats(tree):
  return [x.dtype for x in jax.tree.leaves(tree)
          if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)]


@pytest.mark.parametrize("name", NETWORKS)
def test_the_network_computes_in_bfloat16_and_returns_float32_close_to_float32(name):
  model, shape = NETWORKS[name]
  net = model_fns(model)
  x = jax.random.normal(jax.random.key(1), shape)
  params, state = net.init(jax.random.key(0), x)
  bf16 = with_compute_dtype(net, "bfloat16")
  assert with_compute_dtype(net, "float32") is net
  for train in (False, True):
    apply = lambda p, n=bf16: n.apply(p, state, x, train=train, key=jax.random.key(2))
    jaxpr = str(jax.make_jaxpr(apply)(params))
    apply = jax.jit(apply, static_argnums=1)
    products = re.findall(r"(\w+)\[[^\]]*\] = (?:dot_general|conv_general_dilated)", jaxpr)
    assert products and set(products) == {"bf16"}, products
    logits, new_state = apply(params)
    reference, ref_state = apply(params, net)
    assert logits.dtype == jnp.float32
    assert _floats(new_state) == _floats(state)
    assert set(_floats(state)) <= {jnp.dtype("float32")}
    scale = float(jnp.max(jnp.abs(reference)))
    assert float(jnp.max(jnp.abs(logits - reference))) <= LOGIT_TOLERANCE * scale
    for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(ref_state)):
      if jnp.issubdtype(a.dtype, jnp.floating):  # BatchNorm statistics
        np.testing.assert_allclose(a, b, atol=LOGIT_TOLERANCE * scale)


@pytest.fixture(scope="module")
def stream():
  return split_mnist(fake_mnist(n_train_per_class=20, n_test_per_class=30))


def test_parameters_gradients_optimizer_state_and_gain_stay_float32(stream):
  config = TrainConfig(iterations_per_task=4, batch_size=8, task_eval_every=4,
                       compute_dtype="bfloat16")
  parts = make_train_parts(stream, "ngm_sgd", config)
  state = parts.init(jax.random.key(0), parts.data)
  state, record = jax.jit(parts.step)(state, parts.data)
  for tree in (state.params, state.opt_state, record):
    assert set(_floats(tree)) == {jnp.dtype("float32")}
  net, x, key = parts.model, jnp.ones((4, 784)), jax.random.key(0)
  grads = jax.grad(lambda p: net.apply(p, {}, x, train=True, key=key)[0].sum())(state.params)
  assert set(_floats(grads)) == {jnp.dtype("float32")}


@pytest.mark.slow  # two compiled runs each (~20 s here)
@pytest.mark.parametrize("optimizer", ["ngm_sgd", "sgd"])
def test_a_short_run_in_bfloat16_trains_like_float32(stream, optimizer):
  base = TrainConfig(iterations_per_task=20, batch_size=16, task_eval_every=10)
  curves = {}
  for dtype in ("float32", "bfloat16"):
    train, data = make_train(stream, optimizer,
                             TrainConfig(**{**base.__dict__, "compute_dtype": dtype}))
    curves[dtype] = jax.device_get(jax.jit(jax.vmap(train, in_axes=(0, None)))(
        seed_keys(2), data))
  f32, b16 = curves["float32"], curves["bfloat16"]
  assert b16["gain"].dtype == np.float32 and b16["entropy"].dtype == np.float32
  final = lambda c: c["task_acc"][:, -1].mean()  # 2 seeds x 300 test images
  assert final(f32) > 0.5  # it learned (10 classes, chance 0.1)
  assert abs(final(b16) - final(f32)) <= 0.03  # measured: equal, 0.002 (sgd)
  assert not np.array_equal(b16["train_loss"], f32["train_loss"])  # bfloat16 did run
  # Adam is left out: on these tiny data its losses spike (to ~15 nats) and its
  # trajectory parts from float32's; docs/results.md compares it on MNIST.
  np.testing.assert_allclose(b16["train_loss"], f32["train_loss"], atol=0.02)
  np.testing.assert_allclose(b16["gain"], f32["gain"], rtol=0.01)  # measured 0.13 %


def test_compute_dtype_is_checked():
  with pytest.raises(checks.ParameterError, match=r"compute_dtype='float16': must be one of"
                                                    r" 'float32', 'bfloat16'"):
    TrainConfig(compute_dtype="float16")
  with pytest.raises(checks.ParameterTypeError, match="compute_dtype"):
    TrainConfig(compute_dtype=16)
  assert TrainConfig().compute_dtype == "float32"


@pytest.mark.slow  # a run, then its resume (~13 s here)
def test_a_run_saved_without_compute_dtype_resumes_and_loads(stream, tmp_path):
  config = TrainConfig(iterations_per_task=2, batch_size=4, task_eval_every=2)
  out = tmp_path / "run"
  first = run_benchmark(stream, ["ngm_sgd"], config, num_seeds=2, out=out,
                        show_progress=False, compile_cache=False)
  meta = json.loads((out / "run.json").read_text())
  assert meta["train"]["compute_dtype"] == "float32"
  del meta["train"]["compute_dtype"]  # as a run saved before the field existed
  del meta["variants"]["ngm_sgd"]["train"]["compute_dtype"]
  (out / "run.json").write_text(json.dumps(meta))
  assert load_result(out).config == config
  again = run_benchmark(stream, ["ngm_sgd"], config, num_seeds=2, out=out, resume=True,
                        show_progress=False, compile_cache=False)
  np.testing.assert_array_equal(again.curves["ngm_sgd"]["gain"], first.curves["ngm_sgd"]["gain"])
  meta["train"]["compute_dtype"] = "bfloat16"  # another run: refused
  (out / "run.json").write_text(json.dumps(meta))
  with pytest.raises(ValueError, match="other arguments.*train"):
    run_benchmark(stream, ["ngm_sgd"], config, num_seeds=2, out=out, resume=True,
                  show_progress=False, compile_cache=False)


@pytest.mark.parametrize("folder", ["split_mnist", "rotated_mnist"])
def test_the_saved_runs_load_as_float32(folder):
  result = load_result(Path(__file__).resolve().parents[1] / "docs" / "runs" / folder)
  assert "compute_dtype" not in result.meta["train"]  # made before the option
  assert result.config.compute_dtype == "float32"
