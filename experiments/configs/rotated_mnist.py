"""Rotated MNIST: all ten digits rotated by 0°, 80°, 160°; 400 iterations per task.

    python -m experiments.run run --benchmark rotated_mnist --data-dir DIR

Rotation is nearest-neighbour, pixel for pixel torchvision's ``rotate`` (Pillow's
``Image.rotate(angle, resample=NEAREST)``: about the image centre, no expansion, fill
0); ``--rotation-interpolation bilinear`` gives the bilinear rotation of the runs
saved before this option existed (their run.json has no ``interpolation``). The
option is recorded in run.json's ``benchmark_options``. Task-1 accuracy is
evaluated every iteration on a fixed 2,000 of its 10,000 test images
(``eval_task1_limit``), as in the saved run.

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
          eval_task1_limit=2000,
      ),
      options={"interpolation": "nearest"},
  )
