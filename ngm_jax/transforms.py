"""Image transforms applied to whole datasets on the host: rotation.

:func:`rotate_images` rotates a batch of images (``[N, H, W]`` or
``[N, H, W, C]``, channels last) counter-clockwise about their centre, with the
same sampling grid for every image, so each rotation is one gather over the
batch. Two interpolations:

* ``"nearest"`` (default): the pixels torchvision's ``rotate`` gives on a PIL
  image, i.e. Pillow's ``Image.rotate(angle, resample=Image.NEAREST)`` (no
  expansion, fill 0), reproduced pixel for pixel (see
  :func:`_pillow_nearest_rows`).
* ``"bilinear"``: bilinear interpolation about the centre of the pixel grid
  ``((H-1)/2, (W-1)/2)``, rounded to the nearest integer (the interpolation of
  this library's Rotated MNIST runs before nearest became the default).
"""

from __future__ import annotations

import math

import numpy as np

from ngm_jax.dataset import image_shape_error

__all__ = ["INTERPOLATIONS", "rotate_images"]

#: The interpolations :func:`rotate_images` accepts; the first is the default.
INTERPOLATIONS = ("nearest", "bilinear")


def _check_images(images: np.ndarray) -> np.ndarray:
  images = np.asarray(images)
  problem = image_shape_error("rotate_images: images", images.shape)
  if problem:
    raise ValueError(problem)
  return images


def rotate_images(
    images: np.ndarray, degrees: float, interpolation: str = "nearest"
) -> np.ndarray:
  """Rotates images counter-clockwise (as displayed, row 0 at the top) about
  their centre, keeping their size; pixels from outside the image are 0.

  Args:
    images: ``[N, H, W]`` or ``[N, H, W, C]`` (channels last), normally uint8.
    degrees: the angle, counter-clockwise, in degrees (any real number).
    interpolation: ``"nearest"`` (Pillow's / torchvision's ``rotate``, pixel
      for pixel) or ``"bilinear"`` (rounded, clipped to 0..255, uint8).

  Returns:
    The rotated images, same shape; ``"nearest"`` keeps the dtype (every output
    pixel is an input pixel or 0), ``"bilinear"`` returns uint8. A multiple of
    360° returns a copy; with ``"nearest"``, 180° and (square images) 90°/270°
    are exact permutations.

  Raises:
    ValueError: an unknown ``interpolation`` or an image shape other than
      ``[N, H, W]`` / ``[N, H, W, C]``.
  """
  if interpolation not in INTERPOLATIONS:
    raise ValueError(
        f"rotate_images: unknown interpolation {interpolation!r}; choose from"
        f" {', '.join(repr(i) for i in INTERPOLATIONS)}."
    )
  images = _check_images(images)
  if interpolation == "bilinear":
    return _rotate_bilinear(images, degrees)
  return _rotate_nearest(images, degrees)


# ----------------------------------------------------------------------------
# Nearest neighbour, as Pillow's Image.rotate(angle, resample=NEAREST)


def _pillow_nearest_rows(h: int, w: int, degrees: float) -> np.ndarray:
  """For each output pixel (row-major, ``[H * W]``), the flat index
  ``y * W + x`` of the input pixel Pillow's nearest-neighbour rotation copies,
  or -1 where it fills 0.

  Pillow's ``Image.rotate`` reduces the angle modulo 360 and takes 0°, 180°
  and, for square images, 90° and 270° as exact transposes. Otherwise it maps
  output pixel centres back to the input with the inverse rotation about
  ``(W/2, H/2)``, coefficients ``(a, b, c, d, e, f)`` with ``a = e = cos(-θ)``,
  ``b = sin(-θ)``, ``d = -sin(-θ)`` rounded to 15 decimals: the source of
  output pixel ``(x, y)`` is ``(a (x+½) + b (y+½) + c, d (x+½) + e (y+½) + f)``.
  ``ImagingTransformAffine`` (``libImaging/Geometry.c``) evaluates it
  incrementally, in 16.16 fixed point whenever the four corners map inside
  ±32768 (every image of practical size), else in double precision; this
  function repeats the arithmetic of whichever path Pillow takes, so the
  result agrees pixel for pixel.
  """
  angle = float(degrees) % 360.0
  flat = np.arange(h * w, dtype=np.int64).reshape(h, w)
  if angle == 0:
    return flat.ravel()
  if angle == 180:
    return flat[::-1, ::-1].ravel()
  if angle in (90, 270) and h == w:
    return np.rot90(flat, 1 if angle == 90 else 3).ravel()
  cx, cy = w / 2, h / 2
  theta = -math.radians(angle)
  a, b = round(math.cos(theta), 15), round(math.sin(theta), 15)
  d, e = round(-math.sin(theta), 15), round(math.cos(theta), 15)
  c = a * -cx + b * -cy + 0.0 + cx
  f = d * -cx + e * -cy + 0.0 + cy
  if b == 0 and d == 0:  # ImagingScaleAffine (an angle within ~1e-13° of 0/180)
    xin = _coord(np.add.accumulate(np.r_[c + a * 0.5, np.full(w - 1, a)]))
    yin = _coord(np.add.accumulate(np.r_[f + e * 0.5, np.full(h - 1, e)]))
    xin, yin = np.broadcast_to(xin[None, :], (h, w)), np.broadcast_to(yin[:, None], (h, w))
  elif all(abs(x * a + y * b + c) < 32768.0 and abs(x * d + y * e + f) < 32768.0
           for x, y in ((0, 0), (w, h), (0, h), (w, 0))):  # affine_fixed
    fix = lambda v: math.floor(v * 65536.0 + 0.5)
    a0, a1, a3, a4 = fix(a), fix(b), fix(d), fix(e)
    a2, a5 = fix(c + a * 0.5 + b * 0.5), fix(f + d * 0.5 + e * 0.5)
    y, x = np.meshgrid(np.arange(h, dtype=np.int64), np.arange(w, dtype=np.int64),
                       indexing="ij")
    xin = (a2 + y * a1 + x * a0) >> 16  # exact: Pillow's int sums, no overflow
    yin = (a5 + y * a4 + x * a3) >> 16
  else:  # the double-precision loop: the same additions in the same order
    xo = np.add.accumulate(np.r_[c + b * 0.5 + a * 0.5, np.full(h - 1, b)])
    yo = np.add.accumulate(np.r_[f + e * 0.5 + d * 0.5, np.full(h - 1, e)])
    step = lambda start, inc: np.add.accumulate(
        np.concatenate([start[:, None], np.full((h, w - 1), inc)], axis=1), axis=1)
    xin, yin = _coord(step(xo, a)), _coord(step(yo, d))
  inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
  return np.where(inside, yin * w + xin, -1).ravel()


def _coord(v: np.ndarray) -> np.ndarray:
  """Geometry.c's ``COORD``: -1 below 0, else truncated to an integer."""
  return np.where(v < 0.0, -1, np.trunc(v)).astype(np.int64)


def _rotate_nearest(images: np.ndarray, degrees: float) -> np.ndarray:
  n, h, w = images.shape[:3]
  rows = _pillow_nearest_rows(h, w, degrees)
  flat = images.reshape((n, h * w) + images.shape[3:])
  out = flat[:, np.maximum(rows, 0)]
  out[:, rows < 0] = 0
  return out.reshape(images.shape)


# ----------------------------------------------------------------------------
# Bilinear (the library's original rotation; unchanged)


def _rotate_bilinear(images: np.ndarray, degrees: float) -> np.ndarray:
  if degrees % 360 == 0:
    return images.copy()
  n, h, w = images.shape[:3]
  channels = images.shape[3:]
  theta = np.deg2rad(degrees)
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  # Inverse map: the source pixel of each output pixel (rotate by -theta).
  dy, dx = yy - cy, xx - cx
  sx = np.cos(theta) * dx - np.sin(theta) * dy + cx
  sy = np.sin(theta) * dx + np.cos(theta) * dy + cy
  x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
  fx, fy = sx - x0, sy - y0
  flat = images.reshape((n, h * w) + channels).astype(np.float32)
  out = np.zeros((n, h * w) + channels, np.float32)
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
    wgt = wgt.reshape((1, h * w) + (1,) * len(channels))
    out += flat[:, idx] * wgt
  return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(images.shape)
