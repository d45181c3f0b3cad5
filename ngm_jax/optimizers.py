"""The paper's optimizers by name: NGM-SGD, its baselines and its ablation."""

from __future__ import annotations

import optax

from ngm_jax.gain import ngm_sgd

__all__ = ["OPTIMIZERS", "make_optimizer"]

#: Names accepted by :func:`make_optimizer`, in the paper's order.
OPTIMIZERS = ("ngm_sgd", "sgd", "msgd", "adam", "g0_sgd")


def make_optimizer(
    name: str,
    *,
    learning_rate: float = 0.01,
    gamma: float = 0.9,
    g0: float = 1.0,
    eta: float = 0.4,
    const_gain: float = 1.0,
) -> optax.GradientTransformationExtraArgs:
  """One of the paper's optimizers; every one accepts ``entropy=`` in update.

  Args:
    name: ``ngm_sgd`` (gain-modulated SGD); ``sgd``; ``msgd`` (SGD with
      momentum 0.9); ``adam`` (default betas); ``g0_sgd`` (the ablation that
      holds the gain constant at ``const_gain``: NGM-SGD with η = 0).
    learning_rate: step size on the raw weights.
    gamma, g0, eta: the gain dynamics of ``ngm_sgd`` (see
      :func:`ngm_jax.gain.gain_modulation`).
    const_gain: the constant gain of ``g0_sgd``.

  Raises:
    ValueError: for an unknown name (the message lists the known ones) or a bad
      hyperparameter.
  """
  if name == "ngm_sgd":
    return ngm_sgd(learning_rate, gamma=gamma, g0=g0, eta=eta)
  if name == "g0_sgd":
    return ngm_sgd(learning_rate, gamma=gamma, g0=const_gain, eta=0.0)
  if name == "sgd":
    tx = optax.sgd(learning_rate)
  elif name == "msgd":
    tx = optax.sgd(learning_rate, momentum=0.9)
  elif name == "adam":
    tx = optax.adam(learning_rate)
  else:
    raise ValueError(
        f"Unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}."
    )
  return optax.with_extra_args_support(tx)
