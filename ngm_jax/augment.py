"""Training-time augmentation on the device, inside the compiled step."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["random_crop_flip"]


def random_crop_flip(key: jax.Array, images: jax.Array, padding: int = 4) -> jax.Array:
  """Random crop with zero padding and random horizontal flip, per image.

  Args:
    key: PRNG key.
    images: ``[B, H, W, C]`` (any dtype; uint8 stays uint8).
    padding: pixels of zero padding on each side before the ``H × W`` crop
      (4 for the standard CIFAR recipe).

  Returns:
    ``[B, H, W, C]``, same dtype: each image shifted by up to ``padding``
    pixels in each direction and flipped left-right with probability 1/2.
  """
  b, h, w, c = images.shape
  key_y, key_x, key_flip = jax.random.split(key, 3)
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  dy = jax.random.randint(key_y, (b,), 0, 2 * padding + 1)
  dx = jax.random.randint(key_x, (b,), 0, 2 * padding + 1)
  crop = jax.vmap(lambda img, y, x: jax.lax.dynamic_slice(img, (y, x, 0), (h, w, c)))(
      padded, dy, dx)
  flip = jax.random.bernoulli(key_flip, 0.5, (b,))
  return jnp.where(flip[:, None, None, None], crop[:, :, ::-1], crop)
