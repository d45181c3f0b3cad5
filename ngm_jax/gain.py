"""Noradrenergic gain modulation (NGM) as an optax transformation.

A gain-modulated layer computes with effective weights ``W_eff = g · W``. The
gradient is taken with respect to the raw ``W``, so a step of size ``lr`` on
``W`` is a step of ``lr · g²`` on ``W_eff``. The gain follows the network's
uncertainty, one update per optimizer step::

    g ← γ·g + (1 − γ)·g0 + η·H

where ``H`` is the mean softmax entropy (nats) of the current training
minibatch, taken from the same forward pass as the loss.

Order within one training step (see :mod:`ngm_jax.train`):

1. build ``W_eff = effective_params(params, gain_of(opt_state), mask)``;
2. forward pass with ``W_eff``; loss gradient with respect to the raw params;
   ``H = entropy(logits)`` from the same forward pass, without a gradient;
3. ``updates, opt_state = tx.update(grads, opt_state, params, entropy=H)``,
   which moves the gain used by the *next* step.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ngm_jax import checks
__all__ = [
    "GainModulationState",
    "gain_modulation",
    "ngm_sgd",
    "gain_scaled_sgd",
    "ReplayedGainState",
    "replayed_gain_sgd",
    "gain_of",
    "set_gain",
    "effective_params",
    "entropy",
]


class GainModulationState(NamedTuple):
  """State of :func:`gain_modulation`.

  Attributes:
    gain: the gain ``g`` (float32 scalar, unitless) used by the next forward
      pass.
  """

  gain: jax.Array


def _validate(gamma: Any, g0: Any, eta: Any, owner: str = "gain_modulation:") -> None:
  """Raises TypeError for a value that is not a real number (e.g. the string
  ``"0.5"``), ValueError for NaN, infinity or a value out of range; a traced
  value (``inject_hyperparams`` under ``jit``) is not known yet and passes."""
  for name, value in (("gamma", gamma), ("g0", g0), ("eta", eta)):
    checks.check(owner, name, value)


def _validate_learning_rate(learning_rate: Any, owner: str) -> None:
  """A schedule (a callable) passes; a number must be finite and > 0."""
  if not callable(learning_rate):
    checks.check(owner, "learning_rate", learning_rate)


def gain_modulation(
    gamma: float = 0.9, g0: float = 1.0, eta: float = 0.4
) -> optax.GradientTransformationExtraArgs:
  """The NGM gain dynamics, ``g ← γ·g + (1 − γ)·g0 + η·H``.

  The updates pass through unchanged; only the gain in the state moves. Chain
  it in front of any optimizer, e.g. ``optax.chain(gain_modulation(),
  optax.adam(1e-3))``, and read the gain with :func:`gain_of`.

  Args:
    gamma: γ, the gain's retention per step, in ``[0, 1)``.
    g0: g0, the resting gain the gain relaxes to, ``> 0``. Also the initial
      gain.
    eta: η, the gain added per nat of minibatch entropy, ``>= 0``. ``eta=0``
      holds the gain constant at ``g0`` (the constant-gain ablation).

  Returns:
    A transformation whose ``update(updates, state, params=None, *, entropy,
    **extra_args)`` needs the minibatch entropy ``H`` (nats, scalar) as a
    keyword argument; other extra arguments are accepted and ignored.

  Raises:
    TypeError: a hyperparameter that is not a real number (e.g. ``"0.5"``).
    ValueError: a hyperparameter that is NaN, infinite or outside its range.
  """
  _validate(gamma, g0, eta)

  def init_fn(params):
    del params
    return GainModulationState(gain=jnp.asarray(g0, dtype=jnp.float32))

  def update_fn(updates, state, params=None, *, entropy, **extra_args):
    del params, extra_args
    new_gain = gamma * state.gain + (1.0 - gamma) * g0 + eta * entropy
    return updates, GainModulationState(
        gain=jnp.asarray(new_gain, dtype=jnp.float32)
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def ngm_sgd(
    learning_rate: optax.ScalarOrSchedule,
    gamma: float = 0.9,
    g0: float = 1.0,
    eta: float = 0.4,
) -> optax.GradientTransformationExtraArgs:
  """NGM-SGD: :func:`gain_modulation` chained with plain SGD.

  Args:
    learning_rate: the SGD step size on the raw weights (the step on the
      effective weights is ``learning_rate · g²``).
    gamma, g0, eta: see :func:`gain_modulation`.
  """
  _validate_learning_rate(learning_rate, "ngm_sgd:")
  return optax.chain(
      gain_modulation(gamma=gamma, g0=g0, eta=eta), optax.sgd(learning_rate)
  )


def gain_scaled_sgd(
    learning_rate: float,
    gamma: float = 0.9,
    g0: float = 1.0,
    eta: float = 0.4,
) -> optax.GradientTransformationExtraArgs:
  """Ablation: NGM's step-size schedule without its reparameterisation.

  SGD on the raw weights with step ``learning_rate · g²``, where ``g`` follows
  the same dynamics as :func:`gain_modulation` (γ-filtered entropy) and is
  the gain *before* this step's update, exactly the step NGM-SGD takes on
  ``W_eff``. Train it with the weights used as they are (no ``W_eff = g·W``:
  ``make_train(..., reparameterise=False)``) to separate the two things the
  gain does. The state is a :class:`GainModulationState`, so
  :func:`gain_of` reads the gain.
  """
  _validate(gamma, g0, eta, "gain_scaled_sgd:")
  _validate_learning_rate(learning_rate, "gain_scaled_sgd:")
  gain_tx = gain_modulation(gamma=gamma, g0=g0, eta=eta)

  def update_fn(updates, state, params=None, *, entropy, **extra_args):
    step = -learning_rate * jnp.square(state.gain)
    updates = jax.tree.map(lambda u: (step * u).astype(u.dtype), updates)
    _, state = gain_tx.update(updates, state, params, entropy=entropy, **extra_args)
    return updates, state

  return optax.GradientTransformationExtraArgs(gain_tx.init, update_fn)


class ReplayedGainState(NamedTuple):
  """State of :func:`replayed_gain_sgd`.

  Attributes:
    count: int32 scalar, the optimizer steps taken so far.
    gain: float32 scalar, the gain the next step uses, ``schedule[count]``
      (held at the schedule's last value past its end); read by
      :func:`gain_of`.
    schedule: float32 ``[T]``, the gain used at each step ``0..T-1``.
  """

  count: jax.Array
  gain: jax.Array
  schedule: jax.Array


def replayed_gain_sgd(
    learning_rate: float, gains: Any
) -> optax.GradientTransformationExtraArgs:
  """Ablation: a recorded gain trajectory replayed as a step-size schedule.

  SGD on the raw weights whose step ``t`` is ``learning_rate · gains[t]²``:
  with the trajectory an NGM-SGD run actually had
  (:func:`ngm_jax.analysis.gain_schedule`), this is NGM-SGD's exact step-size
  schedule without ``W_eff = g·W`` (train with ``reparameterise=False``).
  Unlike :func:`gain_scaled_sgd`, whose gain follows its own network's
  entropy, the schedule here does not react to this run at all.

  The schedule is a field of the state, so each seed can replay its own:
  ``optax.tree.set(state, schedule=...)``, e.g. through the ``hyperparams`` of
  :func:`ngm_jax.train.train_seeds`.

  Args:
    learning_rate: the step size at gain 1.
    gains: ``[T]`` positive gains, the gain of step ``t`` (the gain *before*
      that step's update, i.e. NGM's ``g0`` first, then its recorded gain
      after each of steps ``0..T-2``); past ``T`` the last value is held.

  Raises:
    ValueError: ``gains`` is not a non-empty 1-D array of finite, positive
      numbers.
  """
  _validate_learning_rate(learning_rate, "replayed_gain_sgd:")
  gains = jnp.asarray(gains, jnp.float32)
  if gains.ndim != 1 or gains.shape[0] == 0:
    raise ValueError(f"replayed_gain_sgd: gains must be a non-empty [T] array; got shape"
                     f" {gains.shape}.")
  try:  # checked when known at trace time
    values = np.asarray(gains)
  except jax.errors.TracerArrayConversionError:
    values = None
  invalid = [] if values is None else np.flatnonzero(~(np.isfinite(values) & (values > 0)))
  if len(invalid):
    bad = int(invalid[0])
    raise ValueError(f"replayed_gain_sgd: every gain must be finite and > 0; gains[{bad}]"
                     f" = {float(values[bad])!r}.")

  def at(schedule, count):
    return schedule[jnp.minimum(count, schedule.shape[0] - 1)]

  def init_fn(params):
    del params
    return ReplayedGainState(count=jnp.zeros((), jnp.int32), gain=gains[0], schedule=gains)

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    # The schedule, not ``state.gain``: a schedule set after init is replayed
    # from its first entry.
    step = -learning_rate * jnp.square(at(state.schedule, state.count))
    updates = jax.tree.map(lambda u: (step * u).astype(u.dtype), updates)
    count = state.count + 1
    return updates, ReplayedGainState(count, at(state.schedule, count), state.schedule)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


_NO_GAIN = object()


def _is_gain_field(path, value) -> bool:
  """True for the ``gain`` field of a :class:`GainModulationState` or a
  :class:`ReplayedGainState` (not, say, a dict entry that happens to be
  called "gain")."""
  del value
  return (getattr(path[-1], "name", None) == "gain"
          and getattr(path[-1], "tuple_name", None) in _GAIN_STATES)


_GAIN_STATES = (GainModulationState.__name__, ReplayedGainState.__name__)


def gain_of(opt_state: optax.OptState, default: Any = _NO_GAIN) -> jax.Array:
  """The gain held anywhere in an optimizer state (a chain, a partition, ...).

  Args:
    opt_state: the state of a transformation containing one
      :func:`gain_modulation`.
    default: returned when the state holds no gain. Without it, a state with
      no gain raises.

  Returns:
    The gain, float32, shape ``[]`` (or ``[seeds]`` under ``vmap``).

  Raises:
    KeyError: if the state holds no gain and no default is given, or more than
      one gain.
  """
  found = optax.tree.get(opt_state, "gain", default=_NO_GAIN, filtering=_is_gain_field)
  if found is _NO_GAIN:
    if default is _NO_GAIN:
      raise KeyError(
          "gain_of: the optimizer state holds no 'gain'; chain"
          " ngm_jax.gain_modulation(...) into the optimizer, or pass default=."
      )
    return default
  return found


def set_gain(opt_state: optax.OptState, gain: jax.Array) -> optax.OptState:
  """``opt_state`` with the gain of its :func:`gain_modulation` replaced."""
  return optax.tree.set(opt_state, _is_gain_field,
                        gain=jnp.asarray(gain, dtype=jnp.float32))


Mask = Union[Any, Callable[[Any], Any]]


def effective_params(params: Any, gain: jax.Array, mask: Mask) -> Any:
  """``W_eff = g · W`` on the leaves the mask selects, other leaves untouched.

  Args:
    params: a params pytree.
    gain: the gain ``g`` (scalar).
    mask: a pytree of bools with the structure of ``params`` (or a prefix of
      it), or a callable ``params -> mask``, as in ``optax.masked``. ``True``
      marks a gain-modulated leaf (the kernels of gain-modulated layers).

  Returns:
    A pytree like ``params``, with the selected leaves multiplied by ``gain``
    in their own dtype.
  """
  if callable(mask):
    mask = mask(params)

  def scale(selected, subtree):
    if not selected:
      return subtree
    return jax.tree.map(lambda w: w * jnp.asarray(gain, w.dtype), subtree)

  return jax.tree.map(scale, mask, params)


def entropy(logits: jax.Array) -> jax.Array:
  """Mean softmax entropy ``H`` over a batch, in nats.

  Args:
    logits: ``[batch, classes]`` unnormalised log-probabilities.

  Returns:
    Scalar float32, ``mean_b −Σ_c p_bc log p_bc``, in ``[0, log classes]``.
  """
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.mean(jnp.sum(jnp.exp(log_p) * log_p, axis=-1))
