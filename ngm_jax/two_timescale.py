"""The proof of principle (the paper's Figure 2): a gain is a fast weight.

A scalar model ``y = W_eff · x`` with a constant input ``x`` learns a target
``T`` that switches from ``T1`` to ``T2`` halfway through ``steps`` steps, with
the loss ``L = ½·(T − y)²``. Three learners see the same steps and the same
learning rate ``lr``:

1. *gain-modulated SGD*: ``W_eff = g·w``; the gradient is taken with respect
   to the raw ``w`` (so a step on ``w`` moves ``W_eff`` by ``lr·g²`` times the
   ``W_eff`` gradient), and after every step the gain follows an uncertainty
   signal ``U``: ``g ← γ·g + (1 − γ)·g0 + η·U``;
2. the *same system written as fast + slow weights*: ``w_slow = g0·w`` and
   ``w_fast = (g − g0)·w``, so ``y = (w_fast + w_slow)·x``. Written in these
   variables, the slow weight never decays and descends the loss with step
   ``lr·g0·g``, while the fast weight decays by ``γ`` per step (time constant
   ``1/(1 − γ)`` steps) and is driven by ``η·U`` times the slow weight;
3. *slow only*: plain SGD at the same ``lr`` with the gain fixed at ``g0``.

The uncertainty signal. In the networks ``U`` is the minibatch softmax entropy
``H``; a scalar regression has no predictive distribution, so here ``U`` is by
default the squared error ``(T − y)²`` (``"squared_error"``: twice the
surprise ``−log N(T; y, 1)`` up to a constant, and ``2·L``); ``"abs_error"``
uses ``|T − y|``, or pass any ``signal(y, target) -> U``. Unlike ``H`` these
signals need the target: they are error signals standing in for uncertainty.

Order within step ``t`` (as in :mod:`ngm_jax.gain`): predict ``y_t`` with the
gain ``g_t``; take the loss and ``U_t`` from that prediction; step the raw
weight; then move the gain to ``g_{t+1}`` with ``U_t``. Every trajectory
records, at index ``t``, the quantities *of step t*, before its update
(``y_t``, ``L_t``, ``g_t``, ``w_t``, ...), so ``loss[t] = ½·(T_t − y[t])²``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Union

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "SIGNALS",
    "uncertainty_signal",
    "target_schedule",
    "simulate_gain_modulated",
    "simulate_fast_slow",
    "simulate_slow_only",
    "simulate",
    "steps_to_target",
    "loss_landscape",
    "curvature_ratio",
]

Signal = Union[str, Callable[[jax.Array, jax.Array], jax.Array]]

#: Uncertainty signals ``U(y, T)`` by name (unitless, ``>= 0``).
SIGNALS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "squared_error": lambda y, target: (target - y) ** 2,
    "abs_error": lambda y, target: jnp.abs(target - y),
}


def _concrete_float(value: Any) -> float | None:
  """``float(value)`` when it is known at trace time, ``None`` for a tracer."""
  try:
    return float(value)
  except (jax.errors.ConcretizationTypeError, TypeError):
    return None


def _check(where: str, name: str, value: Any, ok, allowed: str) -> None:
  """ValueError naming ``value`` and ``allowed`` unless ``ok(value)``."""
  v = _concrete_float(value)
  if v is None:  # traced: cannot be checked here
    return
  if not math.isfinite(v) or not ok(v):
    raise ValueError(
        f"{where}: {name}={value!r} is not allowed; {name} must be a finite"
        f" number in {allowed}."
    )


def _check_dynamics(where: str, learning_rate, gamma, g0, eta, x) -> None:
  _check(where, "learning_rate", learning_rate, lambda v: v > 0, "(0, inf)")
  _check(where, "gamma", gamma, lambda v: 0 <= v < 1, "[0, 1)")
  _check(where, "g0", g0, lambda v: v > 0, "(0, inf)")
  _check(where, "eta", eta, lambda v: v >= 0, "[0, inf)")
  _check(where, "x", x, lambda v: v != 0, "(-inf, 0) or (0, inf)")


def uncertainty_signal(signal: Signal) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """The function ``U(y, T)`` for a name in :data:`SIGNALS` or a callable.

  Raises:
    ValueError: for an unknown name (the message lists the known ones).
  """
  if callable(signal):
    return signal
  if signal not in SIGNALS:
    raise ValueError(
        f"signal={signal!r} is not allowed; choose one of"
        f" {', '.join(map(repr, SIGNALS))}, or pass a callable U(y, target)."
    )
  return SIGNALS[signal]


def target_schedule(steps: int, t1: float = 1.0, t2: float = 2.0) -> jax.Array:
  """Targets ``[steps]`` float32: ``T1`` for ``t < steps // 2``, then ``T2``.

  Raises:
    ValueError: if ``steps`` is not an integer >= 2, or a target is not finite.
  """
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
    raise ValueError(
        f"target_schedule: steps={steps!r} is not allowed; steps must be an"
        " integer in [2, inf) (the target switches at steps // 2)."
    )
  _check("target_schedule", "t1", t1, lambda v: True, "(-inf, inf)")
  _check("target_schedule", "t2", t2, lambda v: True, "(-inf, inf)")
  t = jnp.arange(steps)
  return jnp.where(t < steps // 2, t1, t2).astype(jnp.float32)


def _scan(step_fn, state, targets):
  state = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), state)
  _, record = jax.lax.scan(step_fn, state, jnp.asarray(targets, jnp.float32))
  return record


def simulate_gain_modulated(
    targets: jax.Array,
    *,
    x: float = 1.0,
    w0: float = 0.0,
    learning_rate: float = 0.05,
    gamma: float = 0.98,
    g0: float = 1.0,
    eta: float = 0.4,
    signal: Signal = "squared_error",
) -> dict[str, jax.Array]:
  """Gain-modulated SGD on the scalar model, ``W_eff = g·w``.

  One step: ``y = g·w·x``; ``w ← w + lr·g·x·(T − y)`` (SGD on the raw ``w``;
  ``∂L/∂w = −g·x·(T − y)``); ``g ← γ·g + (1 − γ)·g0 + η·U(y, T)``. The gain
  starts at ``g0``.

  Args:
    targets: ``[steps]`` the target ``T`` of each step.
    x: the constant input.
    w0: the initial raw weight ``w``.
    learning_rate: ``lr``, the step size on the raw weight.
    gamma, g0, eta: γ, g0, η of the gain dynamics.
    signal: ``U``: a name in :data:`SIGNALS` or a callable ``U(y, target)``.

  Returns:
    Float32 ``[steps]`` arrays of each step before its update: ``y``, ``loss``
    (``½·(T − y)²``), ``error`` (``T − y``), ``signal`` (``U``), ``w``,
    ``gain`` (``g``), ``w_eff`` (``g·w``), ``w_fast`` (``(g − g0)·w``),
    ``w_slow`` (``g0·w``).

  Raises:
    ValueError: if a hyperparameter is outside its range (see
      :func:`simulate`), or ``signal`` is an unknown name.
  """
  _check_dynamics("simulate_gain_modulated", learning_rate, gamma, g0, eta, x)
  return _run_gain_modulated(targets, x, w0, learning_rate, gamma, g0, eta,
                             u_fn=uncertainty_signal(signal))


@functools.partial(jax.jit, static_argnames="u_fn")
def _run_gain_modulated(targets, x, w0, learning_rate, gamma, g0, eta, *, u_fn):
  def step(state, target):
    w, g = state
    y = g * w * x
    error = target - y
    u = u_fn(y, target)
    record = {"y": y, "loss": 0.5 * error**2, "error": error, "signal": u,
              "w": w, "gain": g, "w_eff": g * w, "w_fast": (g - g0) * w,
              "w_slow": g0 * w}
    w = w + learning_rate * g * x * error
    g = gamma * g + (1.0 - gamma) * g0 + eta * u
    return (w, g), record

  return _scan(step, (w0, g0), targets)


def simulate_fast_slow(
    targets: jax.Array,
    *,
    x: float = 1.0,
    w0: float = 0.0,
    learning_rate: float = 0.05,
    gamma: float = 0.98,
    g0: float = 1.0,
    eta: float = 0.4,
    signal: Signal = "squared_error",
) -> dict[str, jax.Array]:
  """The gain-modulated learner written as an explicit fast + slow weight.

  State ``(w_slow, w_fast, g)``, starting at ``(g0·w0, 0, g0)``. One step:

  - ``y = (w_fast + w_slow)·x``, ``e = T − y``, ``U = U(y, T)``;
  - slow weight, no decay, step ``lr·g0·g`` down its gradient ``−e·x``:
    ``Δw_slow = lr·g0·g·x·e``, ``w_slow ← w_slow + Δw_slow``;
  - fast weight, decays by γ, driven by ``η·U`` times the slow weight and
    taking the gain's excess share of the step:
    ``w_fast ← γ·w_fast + (γ·(g − g0)·Δw_slow + η·U·w_slow_new) / g0``;
  - ``g ← γ·g + (1 − γ)·g0 + η·U``.

  This is :func:`simulate_gain_modulated` in the variables ``w_slow = g0·w``,
  ``w_fast = (g − g0)·w`` (substitute and the two updates agree exactly), so
  its trajectories equal that function's up to float rounding.

  Args:
    targets, x, w0, learning_rate, gamma, g0, eta, signal: as in
      :func:`simulate_gain_modulated` (``w0`` is the initial *raw* weight).

  Returns:
    Float32 ``[steps]`` arrays of each step before its update: ``y``,
    ``loss``, ``error``, ``signal``, ``w_fast``, ``w_slow``, ``w_eff``
    (``w_fast + w_slow``), ``gain``.

  Raises:
    ValueError: as :func:`simulate_gain_modulated`.
  """
  _check_dynamics("simulate_fast_slow", learning_rate, gamma, g0, eta, x)
  return _run_fast_slow(targets, x, w0, learning_rate, gamma, g0, eta,
                        u_fn=uncertainty_signal(signal))


@functools.partial(jax.jit, static_argnames="u_fn")
def _run_fast_slow(targets, x, w0, learning_rate, gamma, g0, eta, *, u_fn):
  def step(state, target):
    w_slow, w_fast, g = state
    y = (w_fast + w_slow) * x
    error = target - y
    u = u_fn(y, target)
    record = {"y": y, "loss": 0.5 * error**2, "error": error, "signal": u,
              "w_fast": w_fast, "w_slow": w_slow, "w_eff": w_fast + w_slow,
              "gain": g}
    d_slow = learning_rate * g0 * g * x * error
    new_slow = w_slow + d_slow
    w_fast = gamma * w_fast + (gamma * (g - g0) * d_slow + eta * u * new_slow) / g0
    g = gamma * g + (1.0 - gamma) * g0 + eta * u
    return (new_slow, w_fast, g), record

  return _scan(step, (g0 * w0, 0.0, g0), targets)


def simulate_slow_only(
    targets: jax.Array,
    *,
    x: float = 1.0,
    w0: float = 0.0,
    learning_rate: float = 0.05,
    g0: float = 1.0,
) -> dict[str, jax.Array]:
  """Plain SGD with the gain fixed at ``g0``: ``y = g0·w·x``,
  ``w ← w + lr·g0·x·(T − y)``.

  Returns:
    Float32 ``[steps]`` arrays of each step before its update: ``y``,
    ``loss``, ``error``, ``w``, ``gain`` (constant ``g0``), ``w_eff``
    (``g0·w``).

  Raises:
    ValueError: if ``learning_rate``, ``g0`` or ``x`` is outside its range.
  """
  _check_dynamics("simulate_slow_only", learning_rate, 0.0, g0, 0.0, x)
  return _run_slow_only(targets, x, w0, learning_rate, g0)


@jax.jit
def _run_slow_only(targets, x, w0, learning_rate, g0):
  def step(w, target):
    y = g0 * w * x
    error = target - y
    record = {"y": y, "loss": 0.5 * error**2, "error": error, "w": w,
              "gain": jnp.full_like(w, g0), "w_eff": g0 * w}
    return w + learning_rate * g0 * x * error, record

  return _scan(step, w0, targets)


def simulate(
    steps: int = 200,
    *,
    x: float = 1.0,
    t1: float = 1.0,
    t2: float = 2.0,
    w0: float | None = None,
    learning_rate: float = 0.05,
    gamma: float = 0.98,
    g0: float = 1.0,
    eta: float = 0.4,
    signal: Signal = "squared_error",
) -> dict[str, Any]:
  """All three learners on the same target switch.

  Args:
    steps: number of steps, ``>= 2``; the target switches at ``steps // 2``.
    x: the constant input, nonzero.
    t1, t2: the targets ``T1`` (before the switch) and ``T2`` (after).
    w0: the initial raw weight; ``None`` (default) starts every learner at the
      resting solution of ``T1``, ``w0 = T1 / (g0·x)``, so that the switch is
      the only event.
    learning_rate: ``lr > 0``, the step size on the raw weight (the same for
      all three learners).
    gamma: γ in ``[0, 1)``. The default 0.98 (fast-weight time constant 50
      steps) is slower than the networks' 0.9: with ``lr = 0.05`` the slow
      weight's time constant is ``1/(lr·g0²·x²) = 20`` steps, and a fast
      weight that decays much faster than the slow weight learns is gone
      before it helps (with γ = 0.9 the gain-modulated learner reaches ``T2``
      later than slow-only here). With the defaults it comes within 5% of
      ``T2`` in 13 steps against slow-only's 45, but then closes the last
      few percent more slowly: as the fast weight decays the slow weight must
      take over its share, and it lags (``|T2 − y| = 0.057`` against 0.006
      at step 199).
    g0: g0 > 0, the resting gain.
    eta: η >= 0, the gain added per unit of ``U``.
    signal: ``U``, see :data:`SIGNALS`.

  Returns:
    ``{"target": [steps], "gain_modulated": {...}, "fast_slow": {...},
    "slow_only": {...}, "switch_step": int, "peak_gain_step": int,
    "settings": {...}}``: the learners' dicts as returned by
    :func:`simulate_gain_modulated`, :func:`simulate_fast_slow` and
    :func:`simulate_slow_only`; ``peak_gain_step`` is the step of the
    gain-modulated learner's largest gain; ``settings`` the arguments used
    (``w0`` resolved, ``signal`` as a name).

  Raises:
    ValueError: naming the bad value and its allowed range.
  """
  targets = target_schedule(steps, t1, t2)
  _check_dynamics("simulate", learning_rate, gamma, g0, eta, x)
  if w0 is None:
    w0 = t1 / (g0 * x)
  _check("simulate", "w0", w0, lambda v: True, "(-inf, inf), or None")
  dynamics = dict(x=x, w0=w0, learning_rate=learning_rate, g0=g0)
  gain_dynamics = dict(dynamics, gamma=gamma, eta=eta, signal=signal)
  gain_modulated = simulate_gain_modulated(targets, **gain_dynamics)
  return {
      "target": targets,
      "gain_modulated": gain_modulated,
      "fast_slow": simulate_fast_slow(targets, **gain_dynamics),
      "slow_only": simulate_slow_only(targets, **dynamics),
      "switch_step": steps // 2,
      "peak_gain_step": int(jnp.argmax(gain_modulated["gain"])),
      "settings": {"steps": steps, "x": x, "t1": t1, "t2": t2, "w0": w0,
                   "learning_rate": learning_rate, "gamma": gamma, "g0": g0,
                   "eta": eta, "signal": signal if isinstance(signal, str)
                   else getattr(signal, "__name__", repr(signal))},
  }


def steps_to_target(
    y: jax.Array,
    target: float,
    start: int,
    rtol: float = 0.05,
    stay: bool = True,
) -> int:
  """Steps from ``start`` until ``y`` is within ``rtol·|target|`` of ``target``.

  A host-side metric (NumPy) of a finished trajectory.

  Args:
    y: ``[steps]`` a trajectory.
    target: the target value (nonzero).
    start: the step to count from (e.g. the switch step).
    rtol: the relative tolerance, in ``(0, 1)``; 0.05 is "within 5%".
    stay: if True, the first step from which ``y`` *stays* within the band to
      the end (the settling time); if False, the first step it enters it.

  Returns:
    ``t − start`` for that step ``t >= start``, or -1 if there is none.

  Raises:
    ValueError: if ``target`` is zero or ``rtol``/``start`` is out of range.
  """
  y = np.asarray(y)
  _check("steps_to_target", "target", target, lambda v: v != 0,
         "(-inf, 0) or (0, inf)")
  _check("steps_to_target", "rtol", rtol, lambda v: 0 < v < 1, "(0, 1)")
  if not 0 <= int(start) < y.shape[-1]:
    raise ValueError(
        f"steps_to_target: start={start!r} is not allowed; start must be an"
        f" integer in [0, {y.shape[-1]})."
    )
  inside = np.abs(y[start:] - target) <= rtol * abs(target)
  if stay:
    inside = np.flip(np.cumprod(np.flip(inside))) > 0
  return int(np.argmax(inside)) if inside.any() else -1


# The landscape of Figure 2, right panel, lives in ngm_jax.landscape; its names
# stay importable from here.
from ngm_jax.landscape import curvature_ratio, loss_landscape  # pylint: disable=g-import-not-at-top,wrong-import-position
