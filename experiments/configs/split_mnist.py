"""Split MNIST: 5 tasks {0,1}, {2,3}, {4,5}, {6,7}, {8,9}; 200 iterations per task.

    python -m experiments.run run --benchmark split_mnist --data-dir DIR

Five optimizers × five seeds; see docs/results.md for the wall time measured here.
"""

from experiments.configs import ExperimentConfig
from ngm_jax import benchmarks


def get_config() -> ExperimentConfig:
  return ExperimentConfig(
      benchmark="split_mnist",
      train=benchmarks.get("split_mnist").config,  # the paper's, in ngm_jax.benchmarks
  )
