"""Slim ResNet-18, its classifier-only gain mask, BatchNorm state in the loop,
per-group optimizers, on-device augmentation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ngm_jax import gain as ngm
from ngm_jax.augment import random_crop_flip
from ngm_jax.models import CLASSIFIER, SlimResNet18, classifier_gain_mask
from ngm_jax.optimizers import make_optimizer

SMALL = dict(width=4, stages=(1, 1, 1, 1))  # same structure, tiny


@pytest.mark.slow
@pytest.mark.parametrize("size", [32, 84])
def test_resnet_forward_shapes(size):
  model = SlimResNet18(num_classes=7, **SMALL)
  variables = model.init(jax.random.key(0), jnp.zeros((2, size, size, 3)))
  assert set(variables) == {"params", "batch_stats"}
  logits = model.apply(variables, jnp.ones((2, size, size, 3)))
  assert logits.shape == (2, 7)


def test_default_widths_and_classifier_without_bias():
  params = jax.eval_shape(SlimResNet18(num_classes=10).init, jax.random.key(0),
                          jnp.zeros((1, 32, 32, 3)))["params"]
  assert params["stem_conv"]["kernel"].shape == (3, 3, 3, 20)
  widths = [params[f"stage{i}_block1"]["conv1"]["kernel"].shape[-1] for i in (1, 2, 3, 4)]
  assert widths == [20, 40, 80, 160]
  assert set(params["classifier"]) == {"kernel"}
  assert params["classifier"]["kernel"].shape == (160, 10)
  assert sorted(k for k in params if k.startswith("stage")) == sorted(
      f"stage{i}_block{j}" for i in (1, 2, 3, 4) for j in (1, 2))


def test_mask_touches_only_the_classifier_kernel():
  # The parameters' shapes (traced, nothing compiled: initialising the
  # ResNet takes ~15 s on 2 busy cores), filled with random values.
  shapes = jax.eval_shape(SlimResNet18(num_classes=5, **SMALL).init, jax.random.key(0),
                          jnp.zeros((1, 32, 32, 3)))["params"]
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype), shapes)
  mask = classifier_gain_mask(params)
  selected = [jax.tree_util.keystr(p) for p, m in jax.tree_util.tree_leaves_with_path(mask) if m]
  assert selected == ["['classifier']['kernel']"]
  scaled = ngm.effective_params(params, 3.0, classifier_gain_mask)
  np.testing.assert_allclose(scaled["classifier"]["kernel"], 3.0 * params["classifier"]["kernel"])
  unchanged = {k: v for k, v in scaled.items() if k != "classifier"}
  jax.tree.map(np.testing.assert_array_equal, unchanged,
               {k: v for k, v in params.items() if k != "classifier"})


@pytest.mark.slow  # the ResNet's first forward passes: ~25 s on 2 busy cores
def test_batchnorm_statistics_update_in_training_not_in_evaluation():
  model = SlimResNet18(num_classes=3, **SMALL)
  x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3)) * 3 + 1
  variables = model.init(jax.random.key(0), x)
  _, updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                         variables["batch_stats"], updated["batch_stats"])
  assert all(jax.tree.leaves(changed))
  # Evaluation uses the stored statistics: an example's logits do not depend
  # on the rest of the batch, and nothing is mutated.
  alone = model.apply(variables, x[:1])
  together = model.apply(variables, x)
  np.testing.assert_allclose(alone[0], together[0], rtol=1e-4, atol=1e-5)


def test_per_group_optimizer_momentum_on_backbone_only():
  params = {"classifier": {"kernel": jnp.zeros((2, 2))}, "backbone": {"kernel": jnp.zeros(3)}}
  tx = make_optimizer("ngm_sgd", learning_rate=0.1, eta=0.5, backbone_momentum=0.9,
                      gain_mask=classifier_gain_mask)
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  step = jax.jit(lambda s: tx.update(grads, s, params, entropy=1.0))
  first, state = step(state)
  second, state = step(state)
  np.testing.assert_allclose(first["classifier"]["kernel"], -0.1)
  np.testing.assert_allclose(second["classifier"]["kernel"], -0.1)   # no momentum
  np.testing.assert_allclose(first["backbone"]["kernel"], -0.1)
  np.testing.assert_allclose(second["backbone"]["kernel"], -0.19, rtol=1e-6)  # momentum 0.9
  np.testing.assert_allclose(ngm.gain_of(state), 1.0 + 0.5 + 0.9 * 0.5, rtol=1e-6)


def test_plain_variant_has_no_momentum_and_g0_holds_gain():
  params = {"classifier": {"kernel": jnp.zeros(2)}, "backbone": {"kernel": jnp.zeros(2)}}
  grads = jax.tree.map(jnp.ones_like, params)
  plain = make_optimizer("ngm_sgd_plain", learning_rate=0.1, backbone_momentum=0.9,
                         gain_mask=classifier_gain_mask)
  state = plain.init(params)
  for _ in range(2):
    updates, state = plain.update(grads, state, params, entropy=1.0)
  np.testing.assert_allclose(updates["backbone"]["kernel"], -0.1)
  const = make_optimizer("g0_sgd", const_gain=2.0, backbone_momentum=0.9,
                         gain_mask=classifier_gain_mask)
  state = const.init(params)
  _, state = const.update(grads, state, params, entropy=2.0)
  assert float(ngm.gain_of(state)) == pytest.approx(2.0)


def test_backbone_momentum_needs_a_mask():
  with pytest.raises(ValueError, match="gain_mask"):
    make_optimizer("ngm_sgd", backbone_momentum=0.9)


def test_random_crop_flip_shifts_and_flips_within_padding():
  images = jnp.arange(2 * 6 * 6 * 1, dtype=jnp.uint8).reshape(2, 6, 6, 1) + 1
  out = jax.jit(random_crop_flip, static_argnums=2)(jax.random.key(0), images, 2)
  assert out.shape == images.shape and out.dtype == jnp.uint8
  padded = np.pad(np.asarray(images), ((0, 0), (2, 2), (2, 2), (0, 0)))
  for i in range(2):  # each output is some window of the padded image, maybe flipped
    windows = [padded[i, y:y + 6, x:x + 6] for y in range(5) for x in range(5)]
    windows += [w[:, ::-1] for w in windows]
    assert any(np.array_equal(np.asarray(out[i]), w) for w in windows)
  outs = np.stack([np.asarray(random_crop_flip(jax.random.key(k), images)) for k in range(20)])
  assert len({o.tobytes() for o in outs}) > 10  # random per key


@pytest.mark.slow
def test_batchnorm_state_in_the_training_loop():
  from ngm_jax.data import ImageDataset
  from ngm_jax.streams import split_by_classes
  from ngm_jax.train import TrainConfig, make_train_parts
  from ngm_jax.benchmarks import CIFAR10_STATS
  from ngm_jax.models import standardise_images
  rng = np.random.default_rng(0)
  x = rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8)
  y = np.repeat(np.arange(4), 10).astype(np.int32)
  stream = split_by_classes(ImageDataset(x, y, x[:20], y[::2]), [(0, 1), (2, 3)], "tiny", 4)
  config = TrainConfig(iterations_per_task=2, batch_size=4, task_eval_every=1,
                       backbone_momentum=0.9)
  parts = make_train_parts(stream, "ngm_sgd", config, model=SlimResNet18(4, **SMALL),
                           where=CLASSIFIER, preprocess=standardise_images(*CIFAR10_STATS),
                           augment=random_crop_flip, unroll=True)
  from ngm_jax.train import seed_keys
  keys = seed_keys(2)

  def two_intervals(key):  # a lax.scan over eval intervals, as in make_train
    start = parts.init(key, parts.data)
    end, _ = jax.lax.scan(lambda s, _: parts.eval_interval(s, parts.data), start, None,
                          length=2)
    return start, end, parts.task_eval(end, parts.data)

  start, end, records = jax.jit(jax.vmap(two_intervals))(keys)
  moved = jax.tree.map(lambda a, b: np.asarray(jnp.any(a != b, axis=tuple(range(1, a.ndim)))),
                       start.model_state["batch_stats"], end.model_state["batch_stats"])
  assert all(bool(m.all()) for m in jax.tree.leaves(moved))  # every seed's statistics moved
  seeds_differ = jax.tree.map(lambda a: bool(jnp.any(a[0] != a[1])), end.model_state)
  assert all(jax.tree.leaves(seeds_differ))
  assert records["task_acc"].shape == (2, 2)
  # Evaluation leaves the statistics alone: evaluating twice gives the same records.
  again = jax.jit(jax.vmap(lambda s: parts.task_eval(s, parts.data)))(end)
  np.testing.assert_array_equal(again["task_loss"], records["task_loss"])
