"""Domain CIFAR-100: the 20 superclasses as labels; task t holds the t-th fine class
of every superclass. Slim ResNet-18, head-only gain.

    python -m experiments.run run --benchmark domain_cifar100 [--num-tasks 3] [--data-dir DIR]

5 tasks (3 also works) × 400 iterations, batch 256, η = 0.1. A GPU job (docs/results.md).
"""

from experiments.configs import ExperimentConfig
from ngm_jax.train import TrainConfig


def get_config() -> ExperimentConfig:
  return ExperimentConfig(
      benchmark="domain_cifar100",
      train=TrainConfig(
          iterations_per_task=400,
          batch_size=256,
          learning_rate=0.01,
          gamma=0.9,
          g0=1.0,
          eta=0.1,
          eval_every=1,
          task_eval_every=20,
          eval_batch_size=1000,
          backbone_momentum=0.9,
      ),
      options={"num_tasks": 5},
  )
