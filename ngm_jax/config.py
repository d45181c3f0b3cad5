"""The configuration of one incremental-joint-training run, and its time axis.

:class:`TrainConfig` holds the schedule (iterations per task, batch size,
evaluation every how many iterations, on how many Task-1 images) and the
hyperparameters the built-in optimizers are made from (learning rate, γ, g0,
η, the constant gain, the backbone momentum). It validates itself; it builds
nothing (the optimizers are :func:`ngm_jax.optimizers.builtin`).
:class:`ExperimentConfig` adds what a command compares on a benchmark: the
optimizers, the seeds, the benchmark's options, augmentation and test subset.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ngm_jax import checks
from ngm_jax.optimizers import OPTIMIZERS
from ngm_jax.streams import TaskStream

__all__ = ["TrainConfig", "ExperimentConfig", "seed_keys", "curve_iterations",
           "task1_eval_size", "train_record"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Hyperparameters of one incremental-joint-training run.

  Attributes:
    iterations_per_task: I, optimizer steps per task.
    batch_size: minibatch size.
    learning_rate: step size on the raw weights.
    gamma, g0, eta: the NGM gain dynamics (γ, g0, η).
    const_gain: the constant gain of the ``g0_sgd`` ablation.
    eval_every: evaluate Task-1 test accuracy and loss every this many
      iterations (1 = every iteration). Must divide ``task_eval_every``.
    task_eval_every: evaluate every task's test set every this many
      iterations. Must divide ``iterations_per_task``.
    eval_task1_limit: evaluate Task 1 on only its first N test images (None:
      all of them). Recorded in the output.
    eval_batch_size: evaluate test sets in chunks of this many images (None:
      all at once), to bound activation memory for convolutional models.
    backbone_momentum: None: one optimizer for every parameter. A number: the
      gain-modulated parameters (the ``gain_mask``) get the named optimizer
      and every other parameter SGD with this momentum, through
      ``optax.partition`` (the image benchmarks' NGM-SGD: gain-modulated
      classifier by plain SGD, backbone by momentum SGD 0.9).
    compute_dtype: ``"float32"`` (default) or ``"bfloat16"``: the dtype the
      network's forward and backward pass compute in
      (:mod:`ngm_jax.precision`); parameters, gradients, optimizer state, the
      gain, the loss and the entropy stay float32 either way.
  """

  iterations_per_task: int = 200
  batch_size: int = 128
  learning_rate: float = 0.01
  gamma: float = 0.9
  g0: float = 1.0
  eta: float = 0.4
  const_gain: float = 1.0
  eval_every: int = 1
  task_eval_every: int = 10
  eval_task1_limit: int | None = None
  eval_batch_size: int | None = None
  backbone_momentum: float | None = None
  compute_dtype: str = "float32"

  def __post_init__(self):
    """Checks every field (:mod:`ngm_jax.checks`), then the schedule.

    Raises:
      ngm_jax.checks.ParameterTypeError: a field of the wrong type (e.g.
        ``gamma="0.5"``); a TypeError.
      ngm_jax.checks.ParameterError: NaN, infinite or out of range, or a
        schedule whose intervals do not divide each other; a ValueError whose
        ``.parameter`` names the field.
    """
    for field in dataclasses.fields(self):
      checks.check("TrainConfig", field.name, getattr(self, field.name))
    for part, whole in (("eval_every", "task_eval_every"),
                        ("task_eval_every", "iterations_per_task")):
      if getattr(self, whole) % getattr(self, part):
        raise checks.ParameterError(
            "{%s} must divide {%s}." % (part, whole),
            {part: getattr(self, part), whole: getattr(self, whole)}, prefix="TrainConfig: ")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """A benchmark, the optimizers to compare, the seeds, and the training config.

  The command line's default for a benchmark is :meth:`of_benchmark` of its
  registry record; ``experiments/configs/<name>.py`` hold the ones the docs ran.

  Attributes:
    benchmark: a name of :data:`ngm_jax.benchmarks.BENCHMARKS`.
    train: the training hyperparameters.
    optimizers: the optimizers compared.
    seeds: how many seeds (0..seeds-1).
    options: benchmark options (``ngm_jax.benchmarks.get(name).options``).
    augment: on-device training augmentation (image benchmarks).
    test_subset_per_task: evaluate on a fixed random subset of this many test
      images per task (None: every test image).
  """

  benchmark: str
  train: TrainConfig
  optimizers: tuple[str, ...] = OPTIMIZERS
  seeds: int = 5
  options: dict = dataclasses.field(default_factory=dict)
  augment: bool = False
  test_subset_per_task: int | None = None

  def __post_init__(self):
    """Raises ParameterError/ParameterTypeError for bad seeds or test subset,
    TypeError for a ``train`` that is not a :class:`TrainConfig`."""
    if not isinstance(self.train, TrainConfig):
      raise TypeError(f"ExperimentConfig.train={self.train!r}: must be a TrainConfig.")
    checks.check_integer("ExperimentConfig.seeds", self.seeds, 1)
    checks.check_integer("ExperimentConfig.test_subset_per_task", self.test_subset_per_task,
                         1, optional=True)

  @classmethod
  def of_benchmark(cls, record: Any) -> ExperimentConfig:
    """The default experiment of a benchmark registry record
    (:func:`ngm_jax.benchmarks.get`): its training config and its options'
    defaults, the five optimizers, five seeds, no augmentation, every test
    image."""
    return cls(benchmark=record.name, train=record.config, options=dict(record.options))


def train_record(record: dict[str, Any]) -> dict[str, Any]:
  """A :class:`TrainConfig` as saved in a ``run.json`` (``"train"``, a
  variant's ``"train"``), with the fields an older run did not record set to
  their defaults: the values that code always used (e.g. ``compute_dtype``
  float32). Unknown keys are kept, so that they still count as a difference."""
  defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
  return {**defaults, **record}


def seed_keys(seeds: int | list[int]) -> jax.Array:
  """PRNG keys ``[S]`` for seeds ``0..S-1`` (or the listed seeds).

  Seed ``s`` always gets ``jax.random.key(s)``, so a seed's run is the same
  whether it is trained alone or among others.
  """
  seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
  return jnp.stack([jax.random.key(s) for s in seeds])


def curve_iterations(config: TrainConfig, num_tasks: int) -> dict[str, np.ndarray]:
  """The iteration (1-based step count) of each recorded point, per curve kind."""
  total = config.iterations_per_task * num_tasks
  return {
      "step": np.arange(1, total + 1),
      "task1": np.arange(config.eval_every, total + 1, config.eval_every),
      "tasks": np.arange(config.task_eval_every, total + 1, config.task_eval_every),
  }


def task1_eval_size(stream: TaskStream, config: TrainConfig) -> int:
  """How many Task-1 test images the per-iteration evaluation uses."""
  n = int(stream.test_task_ends[0])
  return n if config.eval_task1_limit is None else min(n, config.eval_task1_limit)
