"""Rotated MNIST: all ten digits rotated by 0°, 80°, 160°; 400 iterations per task.

    ngm-jax run --config experiments/configs/rotated_mnist.py --data-dir DIR

Rotation is nearest-neighbour, pixel for pixel torchvision's ``rotate`` (Pillow's
``Image.rotate(angle, resample=NEAREST)``: about the image centre, no expansion, fill
0); ``--rotation-interpolation bilinear`` gives the bilinear rotation of the runs
saved before this option existed (their run.json has no ``interpolation``). The
option is recorded in run.json's ``benchmark_options``. Task-1 accuracy is
evaluated every iteration on a fixed 2,000 of its 10,000 test images
(``eval_task1_limit``), as in the saved runs: the only change from the paper's
config in :mod:`ngm_jax.benchmarks`, to fit this machine's budget.

Five optimizers × five seeds: 1,605 s on this 2-core CPU (docs/results.md).
"""

import dataclasses

from ngm_jax import benchmarks
from ngm_jax.config import ExperimentConfig


def get_config() -> ExperimentConfig:
  return ExperimentConfig(
      benchmark="rotated_mnist",
      train=dataclasses.replace(benchmarks.get("rotated_mnist").config, eval_task1_limit=2000),
      options={"interpolation": "nearest"},
  )
