"""Rotated MNIST: all ten digits rotated by 0°, 80°, 160°; 400 iterations per task.

    python -m experiments.run run --benchmark rotated_mnist --data-dir DIR

Five optimizers × five seeds; see docs/results.md for the wall time measured here.
"""

from experiments.configs import ExperimentConfig
from ngm_jax.train import TrainConfig


def get_config() -> ExperimentConfig:
  return ExperimentConfig(
      benchmark="rotated_mnist",
      train=TrainConfig(
          iterations_per_task=400,
          batch_size=128,
          learning_rate=0.01,
          gamma=0.9,
          g0=1.0,
          eta=0.5,
          eval_every=1,
          task_eval_every=20,
      ),
  )
