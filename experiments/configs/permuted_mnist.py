"""Permuted MNIST: all ten digits under 10 fixed pixel permutations (task 1 the
identity); 400 iterations per task.

    ngm-jax run --config experiments/configs/permuted_mnist.py --data-dir DIR [--num-tasks 5]

Not measured end to end. Extrapolated from one optimizer (NGM-SGD) over 5 seeds at 40
iterations per task (400 iterations: 310 s, compile included, on this 2-core CPU under a
load of 5-8 from other jobs): about 4 hours for five optimizers × five seeds × 4,000
iterations here; a GPU job.

Every task holds all 60,000 training images (``train_per_task``: None) and the whole
test set; the permutations are drawn from ``permutation_seed`` 0
(:func:`ngm_jax.streams.permuted_mnist`), and all three options are recorded in
run.json's ``benchmark_options``. Rotated MNIST's schedule and η
(:mod:`ngm_jax.benchmarks`); as there, Task-1 accuracy is evaluated every iteration on a
fixed 2,000 of its 10,000 test images (``eval_task1_limit``) to fit this machine's budget,
the only change from the record's config.
"""

import dataclasses

from experiments.configs import ExperimentConfig
from ngm_jax import benchmarks


def get_config() -> ExperimentConfig:
  return ExperimentConfig(
      benchmark="permuted_mnist",
      train=dataclasses.replace(benchmarks.get("permuted_mnist").config, eval_task1_limit=2000),
      options={"num_tasks": 10, "permutation_seed": 0, "train_per_task": None},
  )
