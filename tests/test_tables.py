"""The run table: avg-SG over defined transitions, stated in the table."""

import numpy as np

from ngm_jax.metrics import summarize
from ngm_jax.tables import metrics_table


def _metrics(task1_acc):
  task1_acc = np.asarray(task1_acc, np.float64)
  task_acc = task1_acc[:, 1::2, None].repeat(3, -1)  # K = 3, P = 2
  return summarize({"task1_acc": task1_acc, "task_acc": task_acc}, 3, 2, np.arange(2, 7, 2))


def test_per_seed_and_seed_averaged_avg_sg_both_show_a_number_and_say_how_many():
  # Seed 1's Task-1 accuracy is 0 at the end of task 1: its SG_1 is undefined.
  ok = _metrics([[1.0, 1.0, 0.5, 1.0, 1.0, 1.0],
                 [1.0, 1.0, 0.8, 1.0, 0.9, 1.0]])
  partial = _metrics([[1.0, 1.0, 0.5, 1.0, 1.0, 1.0],
                      [0.5, 0.0, 0.6, 0.8, 0.4, 0.9]])
  table = metrics_table({"full": ok, "partial": partial}, 2)
  per_seed, of_mean, _ = table.split("**")[2::2]
  row = next(line for line in per_seed.splitlines() if line.startswith("| partial |"))
  cells = [c.strip() for c in row.split("|")]
  # SG per seed: seed 0 (0.5 + 0)/2 = 25 %, seed 1 0.5 (SG_2 only): mean 37.5 %.
  assert cells[5] == "37.50 ± 12.50 †"
  assert "n/a" not in per_seed
  assert ("† avg-SG averages only the defined transitions (SG_k is undefined where Task-1"
          " accuracy is 0 at the end of task k): partial: 3 of 4 transitions defined over 2"
          " seeds (seed index 1: 1 of 2).") in per_seed
  assert "| full |" in per_seed and "full:" not in per_seed  # every transition defined
  # The seed-averaged curve's Task-1 accuracy is 0.5 at the end of task 1: both defined.
  assert "†" not in of_mean
  every_seed_zero = _metrics([[0.5, 0.0, 0.5, 0.8, 0.4, 0.9]] * 2)
  of_mean = metrics_table({"z": every_seed_zero}, 2).split("**")[4]
  assert "50.00 †" in of_mean and "z: 1 of 2 transitions defined" in of_mean
