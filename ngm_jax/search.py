"""Search spaces: what each method may tune, and ``budget`` configurations of it.

A :class:`Tunable` is a method with its search space: a factory
``factory(**hyperparameters) -> optax.GradientTransformation``, one
:class:`Dimension` per tuned hyperparameter, and the training flags of
:class:`ngm_jax.optimizers.Optimizer`. :func:`builtin_tunable` gives every
built-in's (the learning rate for all; momentum for momentum SGD; η and γ for
NGM; the decay for the weight average; the warm-up length; the constant
gain), and a user's factory declares its own. :func:`configurations` draws
exactly ``budget`` configurations from a space: a grid on one dimension, a
seeded scrambled Halton sample (``scipy.stats.qmc``) on several, so that every
method gets the same number of trials whatever its space's size.

:meth:`Tunable.injected` wraps the factory in ``optax.inject_hyperparams``,
so that the hyperparameters are values in the optimizer state, set per run
(:func:`ngm_jax.train.make_train_parts`'s ``hyperparams``): a whole search is
one program with configurations × seeds on its runs axis.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Callable, Mapping

import numpy as np
import optax

from ngm_jax import checks
from ngm_jax.optimizers import (EMA_DECAY, WARMUP_STEPS, Optimizer, make_optimizer,
                                training_options)

__all__ = ["Dimension", "Tunable", "configurations", "builtin_tunable", "TUNABLE_NAMES",
           "SPACES"]

SCALES = ("log", "linear")


@dataclasses.dataclass(frozen=True)
class Dimension:
  """One tuned hyperparameter: an interval ``[low, high]`` and its scale.

  Attributes:
    low, high: the bounds (inclusive), ``low <= high``; ``> 0`` on a log scale.
    scale: ``"log"`` (sampled uniformly in log space, e.g. a learning rate) or
      ``"linear"``.
  """

  low: float
  high: float
  scale: str = "log"

  def __post_init__(self):
    if self.scale not in SCALES:
      raise ValueError(f"Dimension scale={self.scale!r}; choose from {', '.join(SCALES)}.")
    for bound in (self.low, self.high):
      if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
        raise ValueError(f"Dimension bounds ({self.low!r}, {self.high!r}): must be finite"
                         " numbers.")
    if self.low > self.high:
      raise ValueError(f"Dimension low={self.low} > high={self.high}.")
    if self.scale == "log" and self.low <= 0:
      raise ValueError(f"Dimension low={self.low} on a log scale: must be > 0.")

  def at(self, u: np.ndarray) -> np.ndarray:
    """Points ``u`` in ``[0, 1]`` → values in ``[low, high]`` on the scale."""
    u = np.asarray(u, np.float64)
    if self.scale == "log":
      return np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
    return self.low + u * (self.high - self.low)

  def to_json(self) -> dict[str, Any]:
    return {"low": self.low, "high": self.high, "scale": self.scale}


def _check_space(space: Mapping[str, Dimension]) -> None:
  if not space:
    raise ValueError("search space is empty; declare at least one Dimension"
                     " (e.g. {'learning_rate': Dimension(1e-4, 0.3)}).")
  for name, dim in space.items():
    if not isinstance(dim, Dimension):
      raise TypeError(f"search space entry {name!r}={dim!r}: expected an"
                      " ngm_jax.search.Dimension.")


def configurations(space: Mapping[str, Dimension], budget: int, seed: int = 0
                   ) -> list[dict[str, float]]:
  """Exactly ``budget`` configurations ``{name: value}`` of ``space``.

  One dimension: the grid of ``budget`` points from ``low`` to ``high``
  (evenly spaced on the dimension's scale; one point: the middle). Several:
  a scrambled Halton sample of ``budget`` points (``scipy.stats.qmc``, seeded
  by ``seed``), mapped through each dimension's scale.

  Raises:
    ValueError: an empty space or ``budget < 1``.
  """
  _check_space(space)
  checks.check_integer("budget", budget, 1)
  names = sorted(space)
  if len(names) == 1:
    u = np.linspace(0.0, 1.0, budget)[:, None] if budget > 1 else np.full((1, 1), 0.5)
  else:
    from scipy.stats import qmc  # pylint: disable=import-outside-toplevel
    u = qmc.Halton(d=len(names), scramble=True, seed=seed).random(budget)
  return [{name: float(space[name].at(u[i, j])) for j, name in enumerate(names)}
          for i in range(budget)]


def _keyword_factory(build: Callable[..., Any], names: tuple[str, ...]) -> Callable[..., Any]:
  """``build(**kwargs)`` with a signature of exactly ``names`` (keyword-only),
  so that ``optax.inject_hyperparams`` sees each as a hyperparameter."""
  def factory(**kwargs):
    return build(**kwargs)
  factory.__signature__ = inspect.Signature(
      [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names])
  return factory


@dataclasses.dataclass(frozen=True)
class Tunable:
  """A method and its search space.

  Attributes:
    factory: ``factory(**hyperparameters) -> optax.GradientTransformation``
      taking every name of ``space`` as a keyword argument (numbers; other
      settings fixed inside it).
    space: ``{name: Dimension}``.
    name: the built-in name, or None for a user's factory.
    options: training flags of :class:`ngm_jax.optimizers.Optimizer`
      (``reset_at_task_boundaries``, ``reparameterise``, ``eval_params``).
  """

  factory: Callable[..., optax.GradientTransformation]
  space: Mapping[str, Dimension]
  name: str | None = None
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    _check_space(self.space)
    if not callable(self.factory):
      raise TypeError(f"Tunable factory={self.factory!r}: must be callable.")
    try:
      params = inspect.signature(self.factory).parameters
    except (TypeError, ValueError):
      return
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    missing = [n for n in self.space if n not in params and not takes_any]
    if missing:
      raise ValueError(f"Tunable: the factory takes no argument(s) {', '.join(missing)} of its"
                       f" search space; it takes {', '.join(params) or 'none'}.")

  def optimizer(self, hyperparameters: Mapping[str, float]) -> Optimizer:
    """The method at one configuration (the final runs)."""
    return Optimizer(self.factory(**hyperparameters), name=self.name, **self.options)

  def injected(self) -> Optimizer:
    """The method with every tuned value in its optimizer state
    (``optax.inject_hyperparams``), initialised at the space's midpoint and set
    per run by ``hyperparams``."""
    names = tuple(sorted(self.space))
    factory = _keyword_factory(self.factory, names)
    middle = {n: float(self.space[n].at(0.5)) for n in names}
    return Optimizer(optax.inject_hyperparams(factory)(**middle), name=self.name,
                     **self.options)

  def space_json(self) -> dict[str, dict[str, Any]]:
    return {n: self.space[n].to_json() for n in sorted(self.space)}


_LR = Dimension(1e-4, 0.3)
#: Every built-in's search space. Learning rates on a log scale, wide enough
#: for each method's usual values (Adam's lower); NGM's η and γ around the
#: paper's values; the decay of the weight average up to 0.999; the warm-up
#: from 1 (none) to 100 iterations; the constant gain from 1 (plain SGD) to 3.
SPACES: dict[str, dict[str, Dimension]] = {
    "sgd": {"learning_rate": _LR},
    "msgd": {"learning_rate": Dimension(1e-4, 0.1), "momentum": Dimension(0.5, 0.99, "linear")},
    "adam": {"learning_rate": Dimension(1e-5, 1e-2)},
    "ngm_sgd": {"learning_rate": _LR, "eta": Dimension(0.05, 1.0, "linear"),
                "gamma": Dimension(0.5, 0.99, "linear")},
    "g0_sgd": {"learning_rate": _LR, "const_gain": Dimension(1.0, 3.0, "linear")},
    "ema_sgd": {"learning_rate": _LR, "ema_decay": Dimension(0.9, 0.999, "linear")},
    "warmup_sgd": {"learning_rate": _LR, "warmup_steps": Dimension(1.0, 100.0)},
}
SPACES["msgd_reset"] = SPACES["msgd"]
SPACES["adam_reset"] = SPACES["adam"]
SPACES["ngm_msgd"] = {**SPACES["msgd"], **{k: SPACES["ngm_sgd"][k] for k in ("eta", "gamma")}}
SPACES["ngm_adam"] = {**SPACES["adam"], **{k: SPACES["ngm_sgd"][k] for k in ("eta", "gamma")}}
#: Built-in names with a search space.
TUNABLE_NAMES = tuple(SPACES)


def builtin_tunable(name: str, config: Any, gain_mask: Any = None,
                    space: Mapping[str, Dimension] | None = None) -> Tunable:
  """Built-in ``name`` with its search space (:data:`SPACES`, or ``space``);
  the hyperparameters it does not tune come from ``config`` (a
  :class:`ngm_jax.train.TrainConfig`) as in :func:`ngm_jax.optimizers.builtin`.

  Raises:
    ValueError: a name without a search space (the message lists those with one).
  """
  if name not in SPACES:
    raise ValueError(f"optimizer {name!r} has no search space; tunable built-ins:"
                     f" {', '.join(TUNABLE_NAMES)} (or pass an ngm_jax.search.Tunable).")
  space = dict(space if space is not None else SPACES[name])
  fixed = dict(learning_rate=config.learning_rate, gamma=config.gamma, g0=config.g0,
               eta=config.eta, const_gain=config.const_gain,
               backbone_momentum=config.backbone_momentum, gain_mask=gain_mask,
               ema_decay=EMA_DECAY, warmup_steps=WARMUP_STEPS,
               iterations_per_task=config.iterations_per_task)

  def build(**hyperparameters):
    return make_optimizer(name, **{**fixed, **hyperparameters})

  return Tunable(_keyword_factory(build, tuple(sorted(space))), space, name=name,
                 options=training_options(name))
