"""Split MNIST: 5 tasks {0,1}, {2,3}, {4,5}, {6,7}, {8,9}; 200 iterations per task.

    python -m experiments.run run --benchmark split_mnist --data-dir DIR

Five optimizers × five seeds; see docs/results.md for the wall time measured here.
"""

from experiments.configs import ExperimentConfig
from ngm_jax.train import TrainConfig


def get_config() -> ExperimentConfig:
  return ExperimentConfig(
      benchmark="split_mnist",
      train=TrainConfig(
          iterations_per_task=200,
          batch_size=128,
          learning_rate=0.01,
          gamma=0.9,
          g0=1.0,
          eta=0.4,
          eval_every=1,
          task_eval_every=10,
      ),
  )
