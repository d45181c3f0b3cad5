"""Known stability-gap mitigations, as optax transformations beside NGM.

- :func:`weight_ema`: an exponential moving average of the weights, kept in
  the optimizer state and used for evaluation (the temporal ensemble of
  Soutif-Cormerais et al., 2023). Chain it last, after the optimizer:
  ``optax.chain(optax.sgd(lr), weight_ema(0.99))``; read the averaged weights
  with :func:`ema_params` (optax's ``schedule_free_eval_params`` pattern).
- :func:`boundary_warmup`: a linear learning-rate warm-up after each task
  boundary, from an oracle boundary signal (the known number of iterations
  per task, like the optimizer-state resets of ``msgd_reset``).
- :func:`ema_sgd`, :func:`warmup_sgd`: SGD with either, the built-ins
  ``ema_sgd`` and ``warmup_sgd`` of :mod:`ngm_jax.optimizers`.

Both are plain optax ``GradientTransformation`` objects with ``NamedTuple`` states; their
hyperparameters are validated in the factory (a traced value, under
``optax.inject_hyperparams``, passes unchecked) and can be injected.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ngm_jax import checks

__all__ = ["WeightEmaState", "weight_ema", "ema_params", "BoundaryWarmupState",
           "boundary_warmup", "warmup_scale", "ema_sgd", "warmup_sgd"]


class WeightEmaState(NamedTuple):
  """State of :func:`weight_ema`.

  Attributes:
    ema: the averaged weights, a pytree like the params (float32).
  """

  ema: Any


def weight_ema(decay: float = 0.99) -> optax.GradientTransformation:
  """Tracks ``ema ← decay·ema + (1 − decay)·(params + updates)``.

  The updates pass through unchanged. Chain it last, so that ``params +
  updates`` are the weights after this step; the average starts at the
  initial weights (no bias correction).

  Args:
    decay: the average's retention per step, in ``[0, 1)`` (0: the current
      weights).

  Raises:
    TypeError, ValueError: a decay that is not a number in ``[0, 1)``.
  """
  checks.check_number("weight_ema: decay", decay, lambda v: 0.0 <= v < 1.0, "[0, 1)")

  def init_fn(params):
    return WeightEmaState(ema=jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("weight_ema needs params: call update(updates, state, params).")
    new = optax.apply_updates(params, updates)
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p.astype(jnp.float32),
                       state.ema, new)
    return updates, WeightEmaState(ema=ema)

  return optax.GradientTransformation(init_fn, update_fn)


def ema_params(params: Any, opt_state: optax.OptState) -> Any:
  """The averaged weights of the :func:`weight_ema` in ``opt_state`` (found by
  name anywhere in a chain), cast to ``params``' dtypes; ``params`` if there
  is none."""
  found = optax.tree.get(opt_state, "ema", None)
  if found is None:
    return params
  return jax.tree.map(lambda e, p: e.astype(p.dtype), found, params)


class BoundaryWarmupState(NamedTuple):
  """State of :func:`boundary_warmup`.

  Attributes:
    count: int32, the updates taken so far.
  """

  count: jax.Array


def warmup_scale(count: jax.Array, warmup_steps: Any, iterations_per_task: int) -> jax.Array:
  """The step-size factor of update ``count`` (0-based): 1 during the first
  task; ``min(1, (j + 1) / warmup_steps)`` at step ``j`` (0-based) of any
  later task."""
  within = count % iterations_per_task
  first_task = count < iterations_per_task
  ramp = jnp.minimum(1.0, (within + 1).astype(jnp.float32) / warmup_steps)
  return jnp.where(first_task, 1.0, ramp).astype(jnp.float32)


def boundary_warmup(warmup_steps: float, iterations_per_task: int
                    ) -> optax.GradientTransformation:
  """Scales the updates by :func:`warmup_scale`: a linear warm-up of the
  learning rate over ``warmup_steps`` iterations after every task boundary.

  The boundary is an oracle signal (the task length, as the ``*_reset``
  ablations use), not something the network detects.

  Args:
    warmup_steps: iterations to reach the full step, ``>= 1`` (1: no warm-up).
    iterations_per_task: I, so the boundaries are at ``I, 2I, ...``.

  Raises:
    TypeError, ValueError: a bad ``warmup_steps`` or ``iterations_per_task``.
  """
  checks.check_number("boundary_warmup: warmup_steps", warmup_steps, lambda v: v >= 1.0,
                      "[1, inf)")
  checks.check_integer("boundary_warmup: iterations_per_task", iterations_per_task, 1)

  def init_fn(params):
    del params
    return BoundaryWarmupState(count=jnp.zeros((), jnp.int32))

  def update_fn(updates, state, params=None):
    del params
    scale = warmup_scale(state.count, warmup_steps, iterations_per_task)
    updates = jax.tree.map(lambda u: u * scale.astype(u.dtype), updates)
    return updates, BoundaryWarmupState(count=state.count + 1)

  return optax.GradientTransformation(init_fn, update_fn)


def ema_sgd(learning_rate: float, decay: float = 0.99) -> optax.GradientTransformation:
  """SGD whose weights are averaged (:func:`weight_ema`) for evaluation."""
  return optax.chain(optax.sgd(learning_rate), weight_ema(decay))


def warmup_sgd(learning_rate: float, warmup_steps: float = 20.0, *,
               iterations_per_task: int) -> optax.GradientTransformation:
  """SGD with :func:`boundary_warmup` after each task boundary."""
  return optax.chain(optax.sgd(learning_rate),
                     boundary_warmup(warmup_steps, iterations_per_task))
