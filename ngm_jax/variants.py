"""What a run trains: its variants (optimizer and config each) and its network.

:func:`resolve_variants` builds every optimizer of a run before anything is
trained, so that a bad one fails at once; :func:`network` gives the
registered benchmark's network, placement and preprocessing where the caller
gave none. :func:`ngm_jax.run_benchmark` and the tuner
(:mod:`ngm_jax.tuning`) call both.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax

from ngm_jax import benchmarks
from ngm_jax.config import TrainConfig
from ngm_jax.optimizers import Optimizer, as_optimizer
from ngm_jax.placement import Placement, kernels
from ngm_jax.streams import TaskStream

__all__ = ["resolve_variants", "network"]

_SCHEDULE = ("iterations_per_task", "eval_every", "task_eval_every", "batch_size")


def _describe(optimizer: Any) -> str:
  if isinstance(optimizer, str):
    return optimizer
  if isinstance(optimizer, Optimizer) and optimizer.name:
    return optimizer.name
  return "user transformation"


def resolve_variants(
    optimizers: Sequence[Any] | Mapping[str, Any],
    config: TrainConfig,
    mask: Callable[[Any], Any],
) -> dict[str, tuple[Optimizer, TrainConfig, str]]:
  """``{label: (Optimizer, config, description)}``, every optimizer built now,
  so that a bad one fails before any training.

  Args:
    optimizers: built-in names (each its own label), or ``{label: value}``
      where a value is a name, an optax transformation, an
      :class:`ngm_jax.optimizers.Optimizer`, or ``(one of those, TrainConfig)``
      for a variant with its own hyperparameters.
    config: the run's config (the default of every variant).
    mask: ``params -> gain mask``, for built-ins that split the parameters.

  Raises:
    TypeError, ValueError: an optimizer that is neither, an unlabelled
      transformation, a variant whose schedule differs from ``config``'s.
  """
  if isinstance(optimizers, (str, bytes)) or not isinstance(optimizers, (Sequence, Mapping)):
    raise TypeError(f"optimizers={optimizers!r}: give a list of built-in names or a dict"
                    " {label: name or optax transformation}.")
  if not isinstance(optimizers, Mapping):
    unnamed = [o for o in optimizers if not isinstance(o, str)]
    if unnamed:
      raise TypeError(
          f"optimizers: {unnamed[0]!r} has no label; pass a dict, e.g."
          " optimizers={'mine': tx, 'ngm_sgd': 'ngm_sgd'}, to name your transformations.")
    optimizers = {name: name for name in optimizers}
  if not optimizers:
    raise ValueError("optimizers is empty; give at least one.")
  variants = {}
  for label, value in optimizers.items():
    if not isinstance(label, str) or not label or "/" in label:
      raise ValueError(f"optimizer label {label!r}: must be a non-empty string without '/'.")
    variant_config = config
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], TrainConfig):
      value, variant_config = value
    for field in _SCHEDULE:
      if getattr(variant_config, field) != getattr(config, field):
        raise ValueError(
            f"Variant {label!r}: {field}={getattr(variant_config, field)} differs from the"
            f" run's {getattr(config, field)}; curves must share one schedule.")
    try:
      spec = as_optimizer(value, variant_config, mask)
    except TypeError as e:
      raise TypeError(f"optimizers[{label!r}]: {e}") from None
    variants[label] = (spec, variant_config, _describe(value))
  return variants


def network(stream: TaskStream, model: Any = None, where: Placement | None = None,
            preprocess: Callable[[jax.Array], jax.Array] | None = None,
            augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None
            ) -> tuple[dict[str, Any], bool]:
  """The network keyword arguments of :func:`ngm_jax.train.make_train_parts`
  (``model``, ``where``, ``preprocess``, ``augment``), the registered
  benchmark's where the caller gave none, and whether the network is the
  benchmark's convolutional one (which decides the CPU loop).

  A user's model gets the default placement (every kernel) unless ``where``
  is given, and the benchmark's preprocessing unless ``preprocess`` is.

  Raises:
    ValueError: a stream that is not a registered benchmark, without
      ``model`` and ``preprocess``.
  """
  record = benchmarks.BENCHMARKS.get(stream.name)
  if record is None:
    if model is None or preprocess is None:
      raise ValueError(
          f"stream {stream.name!r} is not a registered benchmark"
          f" ({', '.join(benchmarks.BENCHMARKS)}), so it has no default network: pass"
          " model= (a flax.linen.Module or an rngs -> nnx.Module constructor) and"
          " preprocess= (uint8 images -> float inputs).")
    return {"model": model, "where": where or kernels, "preprocess": preprocess,
            "augment": augment}, False
  own = model is None
  return {"model": record.model(stream.num_classes) if own else model,
          "where": where or (record.where if own else kernels),
          "preprocess": preprocess or record.preprocess,
          "augment": augment}, own and record.convolutional
