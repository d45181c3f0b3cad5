"""The loss landscape at a point of the proof of principle (Figure 2, right).

A step on the raw weight ``W`` of ``W_eff = g·W`` sees the loss curved
``g²`` times more than the loss in ``W_eff``: :func:`loss_landscape` gives
both parabolas around the current point, :func:`curvature_ratio` the ratio
of their curvatures by ``jax.hessian`` (equal to ``g²``). The scalar model
and its notation are those of :mod:`ngm_jax.two_timescale`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ngm_jax.checks import check_number

__all__ = ["loss_landscape", "curvature_ratio"]


def _loss(w_eff, x, target):
  return 0.5 * (target - w_eff * x) ** 2


@jax.jit
def _curvatures(w, gain, x, target):
  """``(d²L/dW², d²L/dW_eff²)`` at ``W = w``, ``W_eff = g·w``, by jax.hessian."""
  in_w = jax.hessian(lambda v: _loss(gain * v, x, target))(w)
  in_w_eff = jax.hessian(lambda v: _loss(v, x, target))(gain * w)
  return in_w, in_w_eff


def loss_landscape(
    w: float,
    gain: float,
    *,
    x: float = 1.0,
    target: float = 2.0,
    span: float = 1.0,
    num: int = 101,
) -> dict[str, jax.Array]:
  """The loss around the current point, as a function of ``W`` and of ``W_eff``.

  At raw weight ``w`` and gain ``g`` the current point is ``W = w`` and
  ``W_eff = g·w``. Along each coordinate the loss is a parabola:
  ``L_W(W) = ½·(T − g·W·x)²`` with curvature ``d²L/dW² = g²·x²``, and
  ``L_eff(W_eff) = ½·(T − W_eff·x)²`` with curvature ``x²``. So
  ``d²L/dW² = g²·d²L/dW_eff²``: measured in ``W_eff``, the landscape that a
  step on ``W`` sees is ``1/g²`` as curved (equivalently, the step is ``g²``
  times longer).

  Args:
    w: the raw weight.
    gain: the gain ``g`` (nonzero).
    x: the input.
    target: ``T``.
    span: half-width of both grids, in weight units.
    num: points per grid, ``>= 3``.

  Returns:
    Float32: ``w_grid`` ``[num]`` (``w ± span``), ``loss_w`` ``[num]``
    (``L_W`` on it), ``w_eff_grid`` ``[num]`` (``g·w ± span``), ``loss_w_eff``
    ``[num]`` (``L_eff`` on it), and scalars ``w``, ``w_eff``, ``loss``
    (the current loss, equal in both), ``curvature_w`` (``g²·x²``),
    ``curvature_w_eff`` (``x²``).

  Raises:
    ValueError: if ``gain`` is zero, ``span <= 0`` or ``num < 3``.
  """
  check_number("loss_landscape: gain", gain, lambda v: v != 0, "a nonzero finite number")
  check_number("loss_landscape: span", span, lambda v: v > 0, "a finite number > 0")
  if isinstance(num, bool) or not isinstance(num, int) or num < 3:
    raise ValueError(
        f"loss_landscape: num={num!r} is not allowed; num must be an integer"
        " in [3, inf)."
    )
  w, gain = jnp.float32(w), jnp.float32(gain)
  x, target = jnp.float32(x), jnp.float32(target)
  offsets = jnp.linspace(-span, span, num, dtype=jnp.float32)
  w_grid, w_eff_grid = w + offsets, gain * w + offsets
  curvature_w, curvature_w_eff = _curvatures(w, gain, x, target)
  return {
      "w_grid": w_grid,
      "loss_w": _loss(gain * w_grid, x, target),
      "w_eff_grid": w_eff_grid,
      "loss_w_eff": _loss(w_eff_grid, x, target),
      "w": w,
      "w_eff": gain * w,
      "loss": _loss(gain * w, x, target),
      "curvature_w": curvature_w,
      "curvature_w_eff": curvature_w_eff,
  }


def curvature_ratio(
    w: float, gain: float, *, x: float = 1.0, target: float = 2.0
) -> jax.Array:
  """``(d²L/dW²) / (d²L/dW_eff²)`` at the point ``(w, g)``, by ``jax.hessian``.

  Equals ``g²`` (the chain rule through ``W_eff = g·W``); its inverse
  ``1/g²`` is how curved the ``W_eff`` landscape is relative to the one a
  step on ``W`` sees.

  Returns:
    Float32 scalar.
  """
  land = loss_landscape(w, gain, x=x, target=target, num=3)
  return land["curvature_w"] / land["curvature_w_eff"]
