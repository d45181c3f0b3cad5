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

__all__ = ["MLP", "mlp_gain_mask", "MNIST_MEAN", "MNIST_STD", "standardise_mnist"]

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def standardise_mnist(images_uint8: jax.Array) -> jax.Array:
  """uint8 images ``[..., 28, 28]`` → float32 ``[..., 784]``, scaled to [0, 1]
  and standardised with MNIST's mean 0.1307 and standard deviation 0.3081."""
  x = images_uint8.astype(jnp.float32) / 255.0
  x = (x - MNIST_MEAN) / MNIST_STD
  return x.reshape(x.shape[:-2] + (-1,))


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
  """All kernels of the MLP carry the gain (the MLP has no other leaves)."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], "key", None) == "kernel", params
  )
