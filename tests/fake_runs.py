"""Saved-run shapes for the tests of the ablation and gain-readout commands and
their figures: curves of :func:`ngm_jax.train.make_train`'s shapes, older
``run.json`` records, metrics entries."""

import dataclasses
import math

import numpy as np

from ngm_jax import results
from ngm_jax.train import TrainConfig, curve_iterations

FAST = ["--iterations-per-task", "4", "--batch-size", "8", "--task-eval-every", "2",
        "--no-progress"]
FAST_CONFIG = TrainConfig(iterations_per_task=4, batch_size=8, task_eval_every=2)


def old_meta(config=FAST_CONFIG, optimizers=("ngm_sgd", "g0_sgd"), seeds=(0, 1)):
  """A run.json as written before labelled variants and newer config fields."""
  train = dataclasses.asdict(config)
  del train["eval_batch_size"], train["backbone_momentum"]
  return {"benchmark": "split_mnist", "num_tasks": 5, "train": train,
          "optimizers": list(optimizers), "seeds": list(seeds), "task1_eval_size": 12}


PROTOCOL = {"benchmark": "split_mnist", "seeds": [0, 1], "task1_eval_size": 12,
            "benchmark_options": {}, "test_subset_per_task": None, "model": "MLP",
            "augment": False}


def fake_curves(num_seeds=2, num_tasks=5, config=FAST_CONFIG, gain=None, seed=0):
  """Curves of :func:`ngm_jax.train.make_train`'s shapes, with a given gain."""
  rng = np.random.default_rng(seed)
  its = curve_iterations(config, num_tasks)
  t, p1, p = len(its["step"]), len(its["task1"]), len(its["tasks"])
  gain = np.ones((num_seeds, t)) if gain is None else np.asarray(gain, np.float64)
  return {
      "task1_acc": rng.uniform(0.5, 1.0, (num_seeds, p1)),
      "task1_loss": rng.uniform(0.1, 1.0, (num_seeds, p1)),
      "gain": gain, "entropy": rng.uniform(0, 1, (num_seeds, t)),
      "train_loss": rng.uniform(0.1, 1, (num_seeds, t)),
      "task_acc": rng.uniform(0.5, 1.0, (num_seeds, p, num_tasks)),
      "task_loss": rng.uniform(0.1, 1.0, (num_seeds, p, num_tasks)),
  }, its


def write_run(folder, meta, curves, iterations):
  folder.mkdir(parents=True)
  results.save_curves(folder / "curves.npz", curves, iterations)
  results.write_json(folder / "run.json", meta)


def metric_entry(values):
  values = np.asarray(values, np.float64)
  return {"per_seed": values.tolist(), "mean": float(values.mean()),
          "stderr": float(values.std(ddof=1) / math.sqrt(len(values))), "of_mean_curve": None}
