"""Image rotation: nearest as Pillow / torchvision, bilinear as before."""

import hashlib

import numpy as np
import pytest

from ngm_jax import benchmarks, streams
from ngm_jax.transforms import INTERPOLATIONS, rotate_images

Image = pytest.importorskip("PIL.Image")  # Pillow comes with matplotlib

ANGLES = (80, 160, 33, -45, 90, 270, 180, 0, 360, -90, 12.5, 359.9)


def _digit_like(n=6, seed=0):
  """28x28 uint8 'digits': dark background, a bright off-centre ring and a
  stroke, like MNIST's strokes (MNIST's own border is zero too)."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:28, :28]
  out = np.zeros((n, 28, 28), np.uint8)
  for i in range(n):
    cy, cx, r = rng.uniform(9, 18), rng.uniform(9, 18), rng.uniform(4, 8)
    ring = np.abs(np.hypot(yy - cy, xx - cx) - r) < 1.5
    stroke = (np.abs(xx - cx - (yy - cy) * rng.uniform(-0.5, 0.5)) < 1.2) & (yy > 4) & (yy < 24)
    img = np.where(ring | stroke, rng.integers(150, 256, (28, 28)), 0)
    out[i] = img.astype(np.uint8)
  return out


def _pillow(images, degrees):
  return np.stack([
      np.asarray(Image.fromarray(img).rotate(float(degrees), resample=Image.NEAREST))
      for img in images
  ])


@pytest.mark.parametrize("degrees", ANGLES)
def test_nearest_equals_pillow_rotate(degrees):
  rng = np.random.default_rng(1)
  for images in (
      _digit_like(),
      rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
      rng.integers(0, 256, (2, 17, 23), dtype=np.uint8),  # not square, odd
  ):
    np.testing.assert_array_equal(rotate_images(images, degrees), _pillow(images, degrees))
    np.testing.assert_array_equal(
        rotate_images(images, degrees, "nearest"), _pillow(images, degrees))


def test_nearest_equals_pillow_on_many_random_angles():
  rng = np.random.default_rng(2)
  images = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
  for degrees in rng.uniform(-720, 720, 60):
    np.testing.assert_array_equal(rotate_images(images, degrees), _pillow(images, degrees))


def test_nearest_with_channels_rotates_every_channel_alike():
  rng = np.random.default_rng(3)
  rgb = rng.integers(0, 256, (2, 12, 15, 3), dtype=np.uint8)
  for degrees in (80, 160, -45):
    ref = np.stack([np.asarray(Image.fromarray(x, "RGB").rotate(degrees, resample=Image.NEAREST))
                    for x in rgb])
    np.testing.assert_array_equal(rotate_images(rgb, degrees), ref)
    # [N, H, W, 1] is [N, H, W] with a trailing axis.
    one = rgb[..., :1]
    np.testing.assert_array_equal(rotate_images(one, degrees)[..., 0],
                                  rotate_images(one[..., 0], degrees))


def test_quarter_turn_is_an_exact_permutation():
  rng = np.random.default_rng(4)
  for images in (_digit_like(3), rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)):
    out = rotate_images(images, 90)
    np.testing.assert_array_equal(out, np.rot90(images, 1, axes=(1, 2)))
    for a, b in zip(images, out):  # same multiset of pixel values
      np.testing.assert_array_equal(np.sort(a, axis=None), np.sort(b, axis=None))
    back = images
    for _ in range(4):
      back = rotate_images(back, 90)
    np.testing.assert_array_equal(back, images)
  img = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
  np.testing.assert_array_equal(rotate_images(img, 180), img[:, ::-1, ::-1])
  np.testing.assert_array_equal(rotate_images(img, -90), np.rot90(img, 3, axes=(1, 2)))


def test_nearest_copies_input_pixels_or_zero():
  rng = np.random.default_rng(5)
  images = rng.integers(1, 256, (3, 28, 28), dtype=np.uint8)  # no zeros inside
  for degrees in (80, 160, 33):
    out = rotate_images(images, degrees)
    assert out.dtype == np.uint8 and out.shape == images.shape
    for a, b in zip(images, out):
      assert set(np.unique(b)) <= set(np.unique(a)) | {0}
    assert (out == 0).any()  # corners come from outside the image


# The library's rotation before nearest became the default, copied as it was.
def _bilinear_reference(images, degrees):
  if degrees % 360 == 0:
    return images.copy()
  n, h, w = images.shape
  theta = np.deg2rad(degrees)
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  dy, dx = yy - cy, xx - cx
  sx = np.cos(theta) * dx - np.sin(theta) * dy + cx
  sy = np.sin(theta) * dx + np.cos(theta) * dy + cy
  x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
  fx, fy = sx - x0, sy - y0
  flat = images.reshape(n, h * w).astype(np.float32)
  out = np.zeros((n, h * w), np.float32)
  for oy, ox, weight in (
      (0, 0, (1 - fy) * (1 - fx)),
      (0, 1, (1 - fy) * fx),
      (1, 0, fy * (1 - fx)),
      (1, 1, fy * fx),
  ):
    py, px = y0 + oy, x0 + ox
    inside = (py >= 0) & (py < h) & (px >= 0) & (px < w)
    idx = np.where(inside, py * w + px, 0).ravel()
    wgt = np.where(inside, weight, 0.0).ravel().astype(np.float32)
    out += flat[:, idx] * wgt
  return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(n, h, w)


# sha256 of rotate_images(x, a) over the two arrays below, computed with the
# code as it was before the interpolation option existed.
_BILINEAR_SHA256 = {
    80: "cd804114c63f2c9133daba566650b1a41b278d93ddf3f2ff5244fe5bd0f3a5f8",
    160: "5289b02a657c2cb711018be02c8341240c306b546c2b0d205492a7713bd6ba0e",
    33: "65b6abe9ad353f47072f1ec7c86157f246f84a6c29f883c9887d81d6826f453d",
    -45: "af1325f1c3f9fa2ea47258f6a00205c928be70412f57c67e7efbfc6a745dc079",
    12.5: "c037f7ca6e70d3156b740cbed6ef6c45b931b631a9e94d9205105a3d5cbfba2e",
}


@pytest.mark.parametrize("degrees", sorted(_BILINEAR_SHA256))
def test_bilinear_is_unchanged(degrees):
  rng = np.random.default_rng(0)
  arrays = (rng.integers(0, 256, (8, 28, 28), dtype=np.uint8),
            rng.integers(0, 256, (3, 17, 23), dtype=np.uint8))
  digest = hashlib.sha256()
  for x in arrays:
    out = rotate_images(x, degrees, "bilinear")
    np.testing.assert_array_equal(out, _bilinear_reference(x, degrees))
    digest.update(out.tobytes())
  assert digest.hexdigest() == _BILINEAR_SHA256[degrees]
  digits = _digit_like()
  np.testing.assert_array_equal(rotate_images(digits, degrees, "bilinear"),
                                _bilinear_reference(digits, degrees))
  # A channel axis: each channel as its own [N, H, W] stack.
  rgb = np.stack([digits, digits[::-1], 255 - digits], axis=-1)
  out = rotate_images(rgb, degrees, "bilinear")
  for ch in range(3):
    np.testing.assert_array_equal(out[..., ch], _bilinear_reference(rgb[..., ch], degrees))


def test_bad_interpolation_and_shape_are_named():
  images = np.zeros((1, 28, 28), np.uint8)
  with pytest.raises(ValueError, match=r"'bicubic'.*'nearest', 'bilinear'"):
    rotate_images(images, 30, "bicubic")
  assert INTERPOLATIONS == ("nearest", "bilinear")
  with pytest.raises(ValueError, match=r"\(28, 28\)"):
    rotate_images(images[0], 30)
  with pytest.raises(ValueError, match="interpolation 'NEAREST'"):
    streams.rotated_mnist(
        streams.ImageDataset(images, np.zeros(1, np.int32), images, np.zeros(1, np.int32)),
        interpolation="NEAREST")


def test_rotated_mnist_passes_interpolation_through(mnist_data):
  near = streams.rotated_mnist(mnist_data)
  bil = streams.rotated_mnist(mnist_data, interpolation="bilinear")
  n = len(mnist_data.train_labels)
  assert near.task_names == bil.task_names == ("0°", "80°", "160°")
  np.testing.assert_array_equal(near.train_images[n:2 * n],
                                rotate_images(mnist_data.train_images, 80, "nearest"))
  np.testing.assert_array_equal(bil.train_images[n:2 * n],
                                rotate_images(mnist_data.train_images, 80, "bilinear"))
  assert not np.array_equal(near.train_images[n:], bil.train_images[n:])
  assert benchmarks.get("rotated_mnist").options == {"interpolation": "nearest"}
  assert streams.rotate_images is rotate_images  # still importable from streams
