"""Split MNIST: 5 tasks {0,1}, {2,3}, {4,5}, {6,7}, {8,9}; 200 iterations per task.

    ngm-jax run --config experiments/configs/split_mnist.py --data-dir DIR

Five optimizers × five seeds; see docs/results.md for the wall time measured here.
"""

from ngm_jax import benchmarks
from ngm_jax.config import ExperimentConfig


def get_config() -> ExperimentConfig:
  return ExperimentConfig(
      benchmark="split_mnist",
      train=benchmarks.get("split_mnist").config,  # the paper's, in ngm_jax.benchmarks
  )
