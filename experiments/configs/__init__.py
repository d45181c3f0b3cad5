"""One config per benchmark; each module has ``get_config() -> ExperimentConfig``."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from ngm_jax.optimizers import OPTIMIZERS
from ngm_jax.train import TrainConfig


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """A benchmark, the optimizers to compare, the seeds, and the training config.

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


def available() -> list[str]:
  """Names of the benchmark configs in this package."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg)


def get_config(name: str) -> ExperimentConfig:
  """The config of benchmark ``name``; ValueError names the known ones."""
  if name not in available():
    raise ValueError(f"Unknown benchmark {name!r}; choose from {', '.join(available())}.")
  return importlib.import_module(f"{__name__}.{name}").get_config()
