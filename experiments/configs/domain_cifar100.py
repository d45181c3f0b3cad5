"""Domain CIFAR-100: the 20 superclasses as labels; task t holds the t-th fine class
of every superclass. Slim ResNet-18, head-only gain.

    ngm-jax run --config experiments/configs/domain_cifar100.py [--num-tasks 3] [--data-dir DIR]

5 tasks (3 also works) × 400 iterations, batch 256, η = 0.1. A GPU job (docs/results.md).
"""

from ngm_jax import benchmarks
from ngm_jax.config import ExperimentConfig


def get_config() -> ExperimentConfig:
  return ExperimentConfig(
      benchmark="domain_cifar100",
      train=benchmarks.get("domain_cifar100").config,  # the paper's, in ngm_jax.benchmarks
      options={"num_tasks": 5},
  )
