"""Optimizers for the stability-gap protocol: the paper's by name, or any optax one.

An :class:`Optimizer` is one value that carries everything the trainer needs
to train it: the optax transformation and the flags that change the training
loop (an oracle reset of the optimizer state at task boundaries; whether the
gain reparameterises the weights, ``W_eff = g·W``, or only scales the step).
:func:`builtin` builds the paper's optimizers and ablations from a name and a
:class:`ngm_jax.train.TrainConfig`; :func:`as_optimizer` accepts a name, any
``optax.GradientTransformation`` (chains, ``optax.partition``,
``inject_hyperparams``, with or without :func:`ngm_jax.gain_modulation`
inside) or an :class:`Optimizer`, so that every entry point trains a name the
same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import optax

from ngm_jax.gain import gain_modulation, gain_of, gain_scaled_sgd, ngm_sgd, replayed_gain_sgd
from ngm_jax.mitigations import ema_params, ema_sgd, warmup_sgd

__all__ = [
    "Optimizer",
    "OPTIMIZERS",
    "MITIGATIONS",
    "ABLATIONS",
    "OPTIMIZER_NAMES",
    "builtin",
    "as_optimizer",
    "has_gain",
    "make_optimizer",
    "training_options",
    "partition_by_gain",
]

#: The paper's comparison, in its order (the default set of every benchmark).
#: The constant-gain control ``g0_sgd`` is not in it: at its default
#: ``const_gain=1`` it is plain SGD, bit for bit. Run it at NGM-SGD's
#: time-averaged gain (``experiments/ablations.py``) or tuned
#: (:func:`ngm_jax.tuning.tune`).
OPTIMIZERS = ("ngm_sgd", "sgd", "msgd", "adam")
#: Known stability-gap mitigations beside NGM (:mod:`ngm_jax.mitigations`):
#: SGD evaluated with an exponential moving average of its weights, and SGD
#: with a learning-rate warm-up after each (oracle) task boundary.
MITIGATIONS = ("ema_sgd", "warmup_sgd")
#: Default EMA decay and warm-up length of the built-ins (tuned by
#: :func:`ngm_jax.tuning.tune`).
EMA_DECAY = 0.99
WARMUP_STEPS = 20.0
#: Ablations: the gain as a step-size schedule only (``entropy_lr_sgd``, its
#: own gain; ``replayed_lr_sgd``, a recorded NGM gain replayed), oracle
#: optimizer-state resets at task boundaries (``*_reset``), and the gain on top
#: of momentum SGD and Adam (``ngm_msgd``, ``ngm_adam``).
ABLATIONS = ("entropy_lr_sgd", "replayed_lr_sgd", "msgd_reset", "adam_reset", "ngm_msgd",
             "ngm_adam")
#: Every name :func:`make_optimizer` accepts.
OPTIMIZER_NAMES = OPTIMIZERS + ("g0_sgd", "ngm_sgd_plain") + MITIGATIONS + ABLATIONS


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """An optax transformation and the training flags that go with it.

  Attributes:
    tx: the transformation; its ``update`` receives ``entropy=H`` (plain
      transformations are wrapped with ``optax.with_extra_args_support``).
    reset_at_task_boundaries: re-initialise the optimizer state (keeping the
      gain and any per-seed hyperparameters) at the first iteration of every
      task after the first. Uses task identity: an oracle ablation.
    reparameterise: compute with ``W_eff = g·W`` on the gain placement
      (NGM). False: the raw weights whatever the gain, so the gain only
      scales the step (``entropy_lr_sgd``, ``replayed_lr_sgd``).
    name: the built-in name, or None for a user's transformation.
    eval_params: None (evaluate the trained weights), or ``(params,
      opt_state) -> params`` giving the weights to evaluate, e.g.
      :func:`ngm_jax.mitigations.ema_params` (the averaged weights). Training
      always uses the trained weights.
  """

  tx: optax.GradientTransformationExtraArgs
  reset_at_task_boundaries: bool = False
  reparameterise: bool = True
  name: str | None = None
  eval_params: Callable[[Any, Any], Any] | None = None

  def __post_init__(self):
    if not (hasattr(self.tx, "init") and hasattr(self.tx, "update")):
      raise TypeError(f"Optimizer.tx={self.tx!r}: expected an optax GradientTransformation.")
    object.__setattr__(self, "tx", optax.with_extra_args_support(self.tx))


def training_options(name: str) -> dict[str, bool]:
  """The training flags of built-in optimizer ``name`` (the fields of
  :class:`Optimizer` other than ``tx``): ``reparameterise=False`` for
  ``entropy_lr_sgd`` and ``replayed_lr_sgd`` (the gain sets the step size
  only), ``reset_at_task_boundaries=True`` for the oracle ``*_reset``
  ablations (they use task identity), ``eval_params=ema_params`` for
  ``ema_sgd`` (evaluated with the averaged weights)."""
  if name in ("entropy_lr_sgd", "replayed_lr_sgd"):
    return {"reparameterise": False}
  if name.endswith("_reset"):
    return {"reset_at_task_boundaries": True}
  if name == "ema_sgd":
    return {"eval_params": ema_params}
  return {}


def builtin(name: str, config: Any, gain_mask: Any = None) -> Optimizer:
  """Built-in optimizer ``name`` with ``config``'s hyperparameters
  (a :class:`ngm_jax.train.TrainConfig`: learning rate, γ, g0, η, the
  constant gain, the backbone momentum), with its training flags.

  Raises:
    ValueError: an unknown name (the message lists the known ones) or a bad
      hyperparameter.
  """
  tx = make_optimizer(
      name, learning_rate=config.learning_rate, gamma=config.gamma, g0=config.g0,
      eta=config.eta, const_gain=config.const_gain,
      backbone_momentum=config.backbone_momentum, gain_mask=gain_mask,
      iterations_per_task=config.iterations_per_task)
  return Optimizer(tx, name=name, **training_options(name))


def as_optimizer(optimizer: Any, config: Any, gain_mask: Any = None) -> Optimizer:
  """A name (:func:`builtin`), an optax transformation (no flags set) or an
  :class:`Optimizer` (returned as it is) → :class:`Optimizer`.

  Raises:
    ValueError: an unknown name.
    TypeError: anything that is neither a name nor an optax transformation.
  """
  if isinstance(optimizer, Optimizer):
    return optimizer
  if isinstance(optimizer, str):
    return builtin(optimizer, config, gain_mask)
  if hasattr(optimizer, "init") and hasattr(optimizer, "update"):
    return Optimizer(optimizer)
  raise TypeError(
      f"optimizer {optimizer!r}: expected a built-in name ({', '.join(OPTIMIZER_NAMES)}),"
      " an optax GradientTransformation, or an ngm_jax.Optimizer.")


def has_gain(tx: optax.GradientTransformation, params: Any) -> bool:
  """Whether ``tx``'s state for ``params`` holds a gain
  (:func:`ngm_jax.gain.gain_of`); traced abstractly, nothing is computed."""
  state = jax.eval_shape(tx.init, params)
  return gain_of(state, default=None) is not None


def partition_by_gain(
    gain_tx: optax.GradientTransformation,
    backbone_tx: optax.GradientTransformation,
    gain_mask: Any,
) -> optax.GradientTransformationExtraArgs:
  """``gain_tx`` for the gain-modulated parameters, ``backbone_tx`` for the rest.

  Built with ``optax.partition``; extra arguments such as ``entropy=`` reach
  both groups, and :func:`ngm_jax.gain.gain_of` finds a gain in either.

  Args:
    gain_tx: transformation of the parameters the mask selects.
    backbone_tx: transformation of every other parameter.
    gain_mask: pytree of bools like the params (or ``params -> mask``).
  """
  def labels(params):
    mask = gain_mask(params) if callable(gain_mask) else gain_mask
    return jax.tree.map(
        lambda selected: "gain_modulated" if selected else "backbone", mask)

  return optax.partition({"gain_modulated": gain_tx, "backbone": backbone_tx}, labels)


def make_optimizer(
    name: str,
    *,
    learning_rate: float = 0.01,
    gamma: float = 0.9,
    g0: float = 1.0,
    eta: float = 0.4,
    const_gain: float = 1.0,
    backbone_momentum: float | None = None,
    gain_mask: Any = None,
    momentum: float = 0.9,
    ema_decay: float = EMA_DECAY,
    warmup_steps: float = WARMUP_STEPS,
    iterations_per_task: int | None = None,
) -> optax.GradientTransformationExtraArgs:
  """One of the paper's optimizers; every one accepts ``entropy=`` in update.

  Args:
    name: ``ngm_sgd`` (gain-modulated SGD); ``sgd``; ``msgd`` (SGD with
      momentum 0.9); ``adam`` (default betas); ``g0_sgd`` (the ablation that
      holds the gain constant at ``const_gain``: NGM-SGD with η = 0);
      ``ngm_sgd_plain`` (NGM-SGD with no momentum anywhere, even when
      ``backbone_momentum`` is set); and the :data:`ABLATIONS`: ``entropy_lr_sgd``
      (:func:`ngm_jax.gain.gain_scaled_sgd`), ``replayed_lr_sgd``
      (:func:`ngm_jax.gain.replayed_gain_sgd` with the constant schedule
      ``[g0]``: each seed's recorded NGM schedule is set in its state,
      ``hyperparams={"schedule": [S, T]}`` of
      :func:`ngm_jax.train.train_seeds`), ``msgd_reset`` and ``adam_reset``
      (MSGD and Adam, to be trained with the options of
      :func:`training_options`), ``ngm_msgd`` and ``ngm_adam`` (the gain
      chained in front of MSGD and Adam); the :data:`MITIGATIONS`:
      ``ema_sgd`` (SGD, evaluated with the weights' moving average,
      :func:`ngm_jax.mitigations.ema_sgd`) and ``warmup_sgd`` (SGD with a
      warm-up after each task boundary, :func:`ngm_jax.mitigations.warmup_sgd`).
    learning_rate: step size on the raw weights.
    gamma, g0, eta: the gain dynamics of ``ngm_sgd`` (see
      :func:`ngm_jax.gain.gain_modulation`).
    const_gain: the constant gain of ``g0_sgd``.
    backbone_momentum: None: ``ngm_sgd`` and ``g0_sgd`` train every parameter
      by SGD. A number: only the ``gain_mask`` parameters do; the others
      (the backbone) get SGD with this momentum (:func:`partition_by_gain`).
    gain_mask: which parameters carry the gain; needed with
      ``backbone_momentum``.
    momentum: the momentum of ``msgd``, ``msgd_reset`` and ``ngm_msgd``.
    ema_decay: the moving average's decay of ``ema_sgd``.
    warmup_steps: the warm-up length of ``warmup_sgd`` (iterations).
    iterations_per_task: the task length ``warmup_sgd`` needs (its oracle
      boundary signal).

  Raises:
    ValueError: for an unknown name (the message lists the known ones), a bad
      hyperparameter, or ``backbone_momentum`` without a ``gain_mask``.
  """
  if name in ("ngm_sgd", "g0_sgd", "ngm_sgd_plain"):
    if name == "g0_sgd":
      g0, eta = const_gain, 0.0
    gain_tx = ngm_sgd(learning_rate, gamma=gamma, g0=g0, eta=eta)
    if backbone_momentum is None or name == "ngm_sgd_plain":
      return gain_tx
    if gain_mask is None:
      raise ValueError(
          f"make_optimizer({name!r}, backbone_momentum={backbone_momentum}) needs"
          " the gain_mask that separates the gain-modulated parameters from the"
          " backbone."
      )
    backbone = optax.sgd(learning_rate, momentum=backbone_momentum)
    return partition_by_gain(gain_tx, backbone, gain_mask)
  if name == "entropy_lr_sgd":
    return gain_scaled_sgd(learning_rate, gamma=gamma, g0=g0, eta=eta)
  if name == "replayed_lr_sgd":
    return replayed_gain_sgd(learning_rate, [g0])  # validates g0 as gains[0]
  if name in ("ngm_msgd", "ngm_adam"):
    inner = (optax.sgd(learning_rate, momentum=momentum) if name == "ngm_msgd"
             else optax.adam(learning_rate))
    return optax.chain(gain_modulation(gamma=gamma, g0=g0, eta=eta), inner)
  if name == "ema_sgd":
    return optax.with_extra_args_support(ema_sgd(learning_rate, ema_decay))
  if name == "warmup_sgd":
    if iterations_per_task is None:
      raise ValueError("make_optimizer('warmup_sgd') needs iterations_per_task, the task"
                       " length its boundary warm-up uses.")
    return optax.with_extra_args_support(
        warmup_sgd(learning_rate, warmup_steps, iterations_per_task=iterations_per_task))
  if name == "sgd":
    tx = optax.sgd(learning_rate)
  elif name in ("msgd", "msgd_reset"):
    tx = optax.sgd(learning_rate, momentum=momentum)
  elif name in ("adam", "adam_reset"):
    tx = optax.adam(learning_rate)
  else:
    raise ValueError(
        f"Unknown optimizer {name!r}; choose from {', '.join(OPTIMIZER_NAMES)}."
    )
  return optax.with_extra_args_support(tx)
