"""Split CIFAR-10: 5 tasks of 2 classes in label order, slim ResNet-18, head-only gain.

    python -m experiments.run run --benchmark split_cifar10 [--data-dir DIR]

400 iterations per task, batch 256, η = 0.2, crop+flip augmentation on the device.
Five optimizers × five seeds × 2,000 iterations is a GPU job (see docs/results.md).
"""

from experiments.configs import ExperimentConfig
from ngm_jax.train import TrainConfig


def get_config() -> ExperimentConfig:
  return ExperimentConfig(
      benchmark="split_cifar10",
      train=TrainConfig(
          iterations_per_task=400,
          batch_size=256,
          learning_rate=0.01,
          gamma=0.9,
          g0=1.0,
          eta=0.2,
          eval_every=1,
          task_eval_every=20,
          eval_batch_size=1000,
          backbone_momentum=0.9,
      ),
      augment=True,
  )
