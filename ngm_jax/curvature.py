"""The top Hessian eigenvalue, by power iteration on Hessian-vector products.

A gain-modulated network computes with ``W_eff = g·W`` and is trained on the
raw ``W``. When every parameter is gain-modulated (the MLP), the chain rule
gives ``∇²_W L(g·W) = g²·∇²_{W_eff} L(W_eff)``, so the curvature seen by a
step on ``W``, ``λ_W``, is ``g²`` times the curvature of the loss in
``W_eff``, ``λ_Weff``; SGD on ``W`` at step ``lr`` is stable along the top
direction while ``lr·λ_W = lr·g²·λ_Weff < 2``. With only some leaves
gain-modulated the relation holds block-wise (``H_W = D·H_Weff·D``, ``D = g``
on the masked leaves and 1 elsewhere) but not for the top eigenvalue.

The Hessian is never formed: each iteration is one Hessian-vector product,
``jax.jvp`` of ``jax.grad`` (forward-over-reverse), on any params pytree.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ngm_jax.gain import effective_params
from ngm_jax.models import mlp_gain_mask

__all__ = [
    "PowerIterationResult",
    "hvp",
    "power_iteration",
    "top_hessian_eigenvalue",
    "ngm_top_eigenvalues",
]


class PowerIterationResult(NamedTuple):
  """Result of :func:`power_iteration`.

  Attributes:
    eigenvalue: float32 scalar, the Rayleigh quotient ``vᵀHv`` of the last
      unit vector ``v`` (signed; the loss's units per squared param unit).
    eigenvector: unit-norm pytree like the params.
    iterations: int32 scalar, Hessian-vector products taken.
  """

  eigenvalue: jax.Array
  eigenvector: Any
  iterations: jax.Array


def hvp(loss_fn: Callable[[Any], jax.Array], params: Any, vector: Any) -> Any:
  """``H·v`` with ``H = ∇²loss_fn(params)``, forward-over-reverse.

  Args:
    loss_fn: params pytree → scalar.
    params: the point.
    vector: a pytree like ``params``.

  Returns:
    A pytree like ``params``.
  """
  return jax.jvp(jax.grad(loss_fn), (params,), (vector,))[1]


def _normalise(tree: Any) -> tuple[Any, jax.Array]:
  norm = optax.tree.norm(tree)
  return optax.tree.scale(1.0 / jnp.maximum(norm, 1e-30), tree), norm


def _check_settings(num_iters: Any, tol: Any) -> None:
  """ValueError for a concrete ``num_iters < 1`` or ``tol`` < 0 (tracers pass)."""
  for name, value, ok, allowed in (
      ("num_iters", num_iters, lambda v: v >= 1 and v == int(v), "an integer in [1, inf)"),
      ("tol", tol, lambda v: v >= 0 and v == v, "a number in [0, inf)"),
  ):
    try:
      v = float(value)
    except (jax.errors.ConcretizationTypeError, TypeError):
      continue
    if not ok(v):
      raise ValueError(
          f"power_iteration: {name}={value!r} is not allowed; {name} must be"
          f" {allowed}."
      )


def power_iteration(
    matvec: Callable[[Any], Any],
    v0: Any,
    num_iters: int = 20,
    tol: float = 1e-3,
) -> PowerIterationResult:
  """The dominant (largest-magnitude) eigenpair of a symmetric linear map.

  Iterates ``v ← A·v / ‖A·v‖`` and stops after ``num_iters`` products, or
  earlier once the Rayleigh quotient ``λ = vᵀAv`` changes by at most
  ``tol·|λ|`` between iterations. Runs as a ``jax.lax.while_loop``, so it
  works under ``jax.jit`` (``num_iters`` and ``tol`` may be traced).

  Args:
    matvec: ``v -> A·v`` on pytrees like ``v0``; ``A`` symmetric.
    v0: the start vector (any nonzero pytree; normalised here).
    num_iters: the most products to take, ``>= 1``.
    tol: relative tolerance on successive eigenvalue estimates, ``>= 0``
      (0 runs all ``num_iters``).

  Returns:
    A :class:`PowerIterationResult`.

  Raises:
    ValueError: if a concrete ``num_iters < 1`` or ``tol < 0``.
  """
  _check_settings(num_iters, tol)
  v, _ = _normalise(v0)
  av = matvec(v)
  lam = optax.tree.vdot(v, av)

  def cond(state):
    _, _, lam, prev, i = state
    return (i < num_iters) & (jnp.abs(lam - prev) > tol * jnp.abs(lam))

  def body(state):
    _, av, lam, _, i = state
    v, _ = _normalise(av)
    av = matvec(v)
    return v, av, optax.tree.vdot(v, av), lam, i + 1

  state = (v, av, lam, jnp.full_like(lam, jnp.inf), jnp.ones((), jnp.int32))
  v, _, lam, _, iters = jax.lax.while_loop(cond, body, state)
  return PowerIterationResult(eigenvalue=lam, eigenvector=v, iterations=iters)


def top_hessian_eigenvalue(
    loss_fn: Callable[[Any], jax.Array],
    params: Any,
    key: jax.Array,
    num_iters: int = 20,
    tol: float = 1e-3,
) -> jax.Array:
  """The Hessian eigenvalue of largest magnitude, by power iteration.

  Power iteration finds the eigenvalue of largest *magnitude*; it is returned
  with its sign (a negative value means a negative-curvature direction
  dominates). Near a minimum, or for a convex loss, that is the largest
  algebraic eigenvalue, the sharpness ``λ_max``. The Hessian is never formed:
  one Hessian-vector product (:func:`hvp`) per iteration.

  Args:
    loss_fn: params pytree → scalar loss.
    params: the point (any pytree of float arrays).
    key: PRNG key for the random start vector (standard normal per leaf).
    num_iters: the most Hessian-vector products, ``>= 1``.
    tol: stop once successive estimates differ by at most ``tol·|λ|``.

  Returns:
    Float32 scalar ``λ`` (units of the loss per squared param unit).

  Raises:
    ValueError: if a concrete ``num_iters < 1`` or ``tol < 0``.
  """
  return _top_eigen(loss_fn, params, key, num_iters, tol).eigenvalue


def _top_eigen(loss_fn, params, key, num_iters, tol) -> PowerIterationResult:
  v0 = optax.tree.random_like(key, params)
  return power_iteration(lambda v: hvp(loss_fn, params, v), v0, num_iters, tol)


def ngm_top_eigenvalues(
    loss_of_w_eff: Callable[[Any], jax.Array],
    params: Any,
    gain: jax.Array,
    key: jax.Array,
    mask: Any = mlp_gain_mask,
    num_iters: int = 20,
    tol: float = 1e-3,
) -> dict[str, jax.Array]:
  """Top Hessian eigenvalues of a gain-modulated loss in ``W`` and in ``W_eff``.

  Args:
    loss_of_w_eff: effective params pytree ``W_eff`` → scalar loss (e.g. the
      cross-entropy of ``model.apply({"params": W_eff}, x)`` on a fixed batch).
    params: the raw params ``W``.
    gain: the gain ``g`` (scalar).
    key: PRNG key; split into independent start vectors for the two estimates.
    mask: the gain mask (pytree of bools, or ``params -> mask``); default the
      MLP's, on which every kernel is gain-modulated.
    num_iters, tol: see :func:`top_hessian_eigenvalue`.

  Returns:
    Float32 scalars: ``raw`` (``λ_W``, the top eigenvalue of
    ``W ↦ L(effective_params(W, g, mask))`` at ``W``, the curvature a step on
    the raw params sees), ``effective`` (``λ_Weff``, of ``L`` at
    ``W_eff = effective_params(W, g, mask)``), ``gain_sq`` (``g²``) and
    ``ratio`` (``λ_W / λ_Weff``, equal to ``g²`` when every leaf is
    gain-modulated, up to the estimates' error); int32 ``raw_iterations`` and
    ``effective_iterations``, the Hessian-vector products each estimate took.
  """
  key_raw, key_eff = jax.random.split(key)
  gain = jnp.asarray(gain, jnp.float32)
  raw = _top_eigen(lambda w: loss_of_w_eff(effective_params(w, gain, mask)),
                   params, key_raw, num_iters, tol)
  eff = _top_eigen(loss_of_w_eff, effective_params(params, gain, mask), key_eff,
                   num_iters, tol)
  return {"raw": raw.eigenvalue, "effective": eff.eigenvalue, "gain_sq": gain**2,
          "ratio": raw.eigenvalue / eff.eigenvalue,
          "raw_iterations": raw.iterations, "effective_iterations": eff.iterations}
