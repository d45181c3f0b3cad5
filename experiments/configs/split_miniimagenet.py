"""Split mini-ImageNet: 84×84 images, tasks of equal size in class order
(default 5 tasks of 10 classes). Slim ResNet-18, head-only gain.

    ngm-jax run --config experiments/configs/split_miniimagenet.py --data-dir DIR \
        [--num-tasks 20 --classes-per-task 5]

DIR holds mini-imagenet-cache-{train,val,test}.pkl. 400 iterations per task,
batch 256, η = 0.1. A GPU job (docs/results.md).
"""

from ngm_jax import benchmarks
from ngm_jax.config import ExperimentConfig


def get_config() -> ExperimentConfig:
  return ExperimentConfig(
      benchmark="split_miniimagenet",
      train=benchmarks.get("split_miniimagenet").config,  # the paper's, in ngm_jax.benchmarks
      options={"num_tasks": 5, "classes_per_task": 10},
  )
