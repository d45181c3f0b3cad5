"""The MLP, its gain mask and the MNIST preprocessing."""

import jax
import jax.numpy as jnp
import numpy as np

from ngm_jax import models


def test_mlp_shapes_no_bias_and_init_scale():
  model = models.MLP()
  params = model.init(jax.random.key(0), jnp.zeros((1, 784)))["params"]
  shapes = jax.tree.map(jnp.shape, params)
  assert shapes == {"hidden_0": {"kernel": (784, 400)},
                    "hidden_1": {"kernel": (400, 400)},
                    "output": {"kernel": (400, 10)}}
  np.testing.assert_allclose(jnp.std(params["hidden_0"]["kernel"]), 0.01, rtol=0.02)
  np.testing.assert_allclose(jnp.std(params["hidden_1"]["kernel"]), 0.01, rtol=0.03)
  np.testing.assert_allclose(jnp.std(params["output"]["kernel"]), 0.05, rtol=0.1)
  assert model.apply({"params": params}, jnp.zeros((5, 784))).shape == (5, 10)


def test_gain_mask_selects_every_kernel():
  params = models.MLP(hidden=(4,)).init(jax.random.key(0), jnp.zeros((1, 3)))["params"]
  assert models.mlp_gain_mask(params) == {"hidden_0": {"kernel": True},
                                          "output": {"kernel": True}}


def test_standardise_mnist():
  images = jnp.array([[[0, 255]]], dtype=jnp.uint8)  # [1, 1, 2]
  x = models.standardise_mnist(images)
  assert x.shape == (1, 2) and x.dtype == jnp.float32
  np.testing.assert_allclose(
      x[0], [(0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081], rtol=1e-6)
