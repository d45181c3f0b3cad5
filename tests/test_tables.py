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


def test_run_summary_puts_the_gap_beside_the_accuracy_over_all_tasks():
  from ngm_jax.tables import run_summary  # pylint: disable=import-outside-toplevel
  e = lambda mean, se: {"mean": mean, "stderr": se}
  metrics = {"ngm_sgd": {"avg_sg": e(0.0287, 0.0032), "wc_acc": e(0.9672, 0.0025),
                         "avg_min_acc": e(0.96, 0.002), "dl_wc_acc": e(0.91, 0.01),
                         "dl_final_acc_all": e(0.9457, 0.001)}}
  text = run_summary(metrics, {"ngm_sgd": {"compile_s": 5.1, "run_s": 60.2}}, "split_mnist",
                     out="results/x")
  lines = text.splitlines()
  assert lines[0] == "split_mnist (mean ± standard error over seeds, %)"
  assert lines[1].split()[:3] == ["optimizer", "avg-SG", "WC-ACC"]
  assert lines[2].split() == ["ngm_sgd", "2.87", "±", "0.32", "96.72", "±", "0.25", "96.00", "±",
                              "0.20", "91.00", "±", "1.00", "94.57", "±", "0.10", "5.1", "60.2"]
  assert lines[3] == ("Files in results/x/: table.md, figure.png, metrics.json, metrics.csv,"
                     " curves.npz, run.json")
