"""Split CIFAR-100: 10 tasks of 10 fine classes in label order (0-9, 10-19, ..., 90-99),
slim ResNet-18, head-only gain.

    ngm-jax run --config experiments/configs/split_cifar100.py [--data-dir DIR] \
        [--num-tasks 5 --classes-per-task 20]

Not measured. 400 iterations per task, batch 256, η = 0.1, crop+flip augmentation on the
device (as Split CIFAR-10). Five optimizers × five seeds × 4,000 iterations is a GPU job
(Split CIFAR-10's 2,000 iterations already are; docs/results.md).
"""

from experiments.configs import ExperimentConfig
from ngm_jax import benchmarks


def get_config() -> ExperimentConfig:
  return ExperimentConfig(
      benchmark="split_cifar100",
      train=benchmarks.get("split_cifar100").config,  # the paper-style one, in ngm_jax.benchmarks
      options={"num_tasks": 10, "classes_per_task": 10},
      augment=True,
  )
