"""Flax models, and which of their layers carry a gain.

Models are plain ``flax.linen`` modules: a params pytree and a pure ``apply``.
Each model comes with a *gain mask*, a pytree of bools like its params that
selects the kernels of the gain-modulated layers, for
:func:`ngm_jax.gain.effective_params`.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ngm_jax.placement import gain_mask, kernels, layer_kernels

__all__ = [
    "MLP",
    "mlp_gain_mask",
    "MNIST_MEAN",
    "MNIST_STD",
    "standardise_mnist",
    "standardise_images",
    "BasicBlock",
    "SlimResNet18",
    "classifier_gain_mask",
    "CLASSIFIER",
]

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def standardise_mnist(images_uint8: jax.Array) -> jax.Array:
  """uint8 images ``[B, 28, 28]`` or ``[B, 28, 28, 1]`` → float32 ``[B, 784]``,
  scaled to [0, 1] and standardised with MNIST's mean 0.1307 and standard
  deviation 0.3081 (every axis after the batch axis is flattened)."""
  x = images_uint8.astype(jnp.float32) / 255.0
  x = (x - MNIST_MEAN) / MNIST_STD
  return x.reshape(x.shape[:1] + (-1,))


def standardise_images(mean: Sequence[float], std: Sequence[float]):
  """``uint8 [..., H, W, C] → float32``, scaled to [0, 1], then standardised
  per channel with ``mean`` and ``std`` (each of length C)."""
  # NumPy constants: building the function touches no JAX backend (the
  # benchmark registry makes these at import, before jax.distributed starts).
  mean_arr, std_arr = np.asarray(mean, np.float32), np.asarray(std, np.float32)

  def preprocess(images_uint8: jax.Array) -> jax.Array:
    return (images_uint8.astype(jnp.float32) / 255.0 - mean_arr) / std_arr

  return preprocess


class MLP(nn.Module):
  """The paper's MLP, 784-400-400-10 with ReLU and no biases.

  Hidden kernels are initialised N(0, hidden_std²), the output kernel
  N(0, output_std²). Every layer is gain-modulated (see :func:`mlp_gain_mask`).

  Input: ``[batch, features]`` float32. Output: logits ``[batch, classes]``.
  """

  hidden: Sequence[int] = (400, 400)
  num_classes: int = 10
  hidden_std: float = 0.01
  output_std: float = 0.05

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # no train-time behaviour (no dropout, no normalisation)
    for i, width in enumerate(self.hidden):
      x = nn.Dense(
          width,
          use_bias=False,
          kernel_init=nn.initializers.normal(self.hidden_std),
          name=f"hidden_{i}",
      )(x)
      x = nn.relu(x)
    return nn.Dense(
        self.num_classes,
        use_bias=False,
        kernel_init=nn.initializers.normal(self.output_std),
        name="output",
    )(x)


def mlp_gain_mask(params: Any) -> Any:
  """All kernels of the MLP carry the gain (the MLP has no other leaves):
  :func:`ngm_jax.placement.gain_mask` with :func:`ngm_jax.placement.kernels`."""
  return gain_mask(params, kernels)


class BasicBlock(nn.Module):
  """ResNet basic block: two 3×3 convolutions with BatchNorm, identity or
  1×1-projection shortcut. ``[B, H, W, C] → [B, H/stride, W/stride, features]``."""

  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                     epsilon=1e-5, name=name)
    y = nn.Conv(self.features, (3, 3), self.stride, padding=1, use_bias=False,
                name="conv1")(x)
    y = nn.relu(norm("bn1")(y))
    y = nn.Conv(self.features, (3, 3), 1, padding=1, use_bias=False, name="conv2")(y)
    y = norm("bn2")(y)
    if self.stride != 1 or x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1, 1), self.stride, use_bias=False,
                  name="shortcut_conv")(x)
      x = norm("shortcut_bn")(x)
    return nn.relu(x + y)


class SlimResNet18(nn.Module):
  """The slim ResNet-18 of the continual-learning literature.

  A 3×3 stem (stride 1), BasicBlock stages [2, 2, 2, 2] of ``width``,
  ``2·width``, ``4·width``, ``8·width`` channels (20, 40, 80, 160 by
  default; stride 2 from the second stage on), BatchNorm, global average
  pooling and a linear classifier without bias, the one gain-modulated layer
  (:func:`classifier_gain_mask`). Works on any input size, e.g. 32×32 (CIFAR)
  and 84×84 (mini-ImageNet).

  Input: ``[B, H, W, 3]`` float32. Output: logits ``[B, num_classes]``.
  BatchNorm statistics live in the ``batch_stats`` collection: updated when
  ``train=True`` (apply with ``mutable=["batch_stats"]``), used frozen when
  ``train=False``.
  """

  num_classes: int = 10
  width: int = 20
  stages: Sequence[int] = (2, 2, 2, 2)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = nn.Conv(self.width, (3, 3), 1, padding=1, use_bias=False, name="stem_conv")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                     name="stem_bn")(x)
    x = nn.relu(x)
    for i, blocks in enumerate(self.stages):
      for j in range(blocks):
        stride = 2 if i > 0 and j == 0 else 1
        x = BasicBlock(self.width * 2**i, stride, name=f"stage{i + 1}_block{j + 1}")(
            x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, use_bias=False, name="classifier")(x)


#: The slim ResNet-18's placement: only the classifier's kernel.
CLASSIFIER = layer_kernels("classifier")


def classifier_gain_mask(params: Any) -> Any:
  """Only the classifier's kernel carries the gain (a convolution filter is
  shared across positions and cannot be scaled per neuron like a dense layer)."""
  return gain_mask(params, CLASSIFIER)
