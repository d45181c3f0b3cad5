"""Split CIFAR-10: 5 tasks of 2 classes in label order, slim ResNet-18, head-only gain.

    ngm-jax run --config experiments/configs/split_cifar10.py [--data-dir DIR]

400 iterations per task, batch 256, η = 0.2, crop+flip augmentation on the device.
Five optimizers × five seeds × 2,000 iterations is a GPU job (see docs/results.md).
"""

from ngm_jax import benchmarks
from ngm_jax.config import ExperimentConfig


def get_config() -> ExperimentConfig:
  return ExperimentConfig(
      benchmark="split_cifar10",
      train=benchmarks.get("split_cifar10").config,  # the paper's, in ngm_jax.benchmarks
      augment=True,
  )
