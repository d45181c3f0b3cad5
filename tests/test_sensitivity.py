"""The sensitivity report from a tiny saved sweep: its tables, its figure, and
a caption that states the machine the record says the sweep ran on."""

import numpy as np
import pytest

from experiments import sensitivity
from ngm_jax import results


#: Task-1 dip after the task boundary, per (η, γ) cell: avg-SG is exactly this.
DIPS = [[0.30, 0.20],   # η 0.1: γ 0.9, γ 0.95
        [0.10, 0.04]]   # η 0.4


def _saved_sweep(out, record_extra, task1=None):
  """A saved sweep of 2 η x 2 γ x 2 seeds, 2 tasks x 3 points. By default the
  Task-1 curves are hand-made: Task 1 ends at 1.0, Task 2 dips to 1 - DIPS[i][j]
  and recovers to 0.99, both seeds alike (avg-SG = the dip, s.e. 0)."""
  etas, gammas, seeds, k, points = [0.1, 0.4], [0.9, 0.95], 2, 2, 3
  if task1 is None:
    task1 = np.array([[[[0.5, 0.9, 1.0, 1.0 - d, 0.99, 0.99]] * seeds for d in row]
                      for row in DIPS])
  out.mkdir()
  results.save_curves(out / "curves.npz",
                      {"sweep": {"task1_acc": task1, "task_acc": task1[..., None],
                                 "etas": np.float32(etas), "gammas": np.float32(gammas)}},
                      {"task1": np.arange(1, k * points + 1)})
  record = {"num_tasks": k, "seeds": list(range(seeds)), "default": {"eta": 0.4, "gamma": 0.9},
            "task1_eval_size": 10, "task1_test_size": 20,
            "train": {"learning_rate": 0.01, "g0": 1.0, "batch_size": 8, "eval_every": 1,
                      "iterations_per_task": points, "task_eval_every": 1},
            "timing": {"sweep": {"wall_s": 3.0, "compile_s": 1.0, "run_s": 2.0,
                                 "load_avg_1min": [0.5, 3.25]}},
            **record_extra}
  results.write_json(out / "sensitivity.json", record)
  return out


def test_report_states_the_recorded_machine(tmp_path):
  out = _saved_sweep(tmp_path / "s", {"device": "gpu: NVIDIA H200", "cpu_count": 16})
  record = sensitivity.write_report(out)
  table = (out / "table.md").read_text()
  assert ("**Wall time** (gpu: NVIDIA H200, 16 CPU cores, 1-min load average 0.5 before the"
          " sweep, 3.2 after):") in table
  assert "shared" not in table
  assert (out / "heatmaps.png").stat().st_size > 0


def test_report_finds_the_cells_and_tabulates_the_hand_made_gaps(tmp_path):
  # Each cell's avg-SG is its dip (DIPS): the lowest is η 0.4, γ 0.95 (4 %),
  # the highest η 0.1, γ 0.9 (30 %); no other cell holds either value.
  record = sensitivity.write_report(_saved_sweep(tmp_path / "s", {}))
  np.testing.assert_allclose(record["metrics"]["avg_sg"]["mean"], DIPS, atol=1e-6)
  best, worst = record["best_avg_sg"], record["worst_avg_sg"]
  assert (best["eta"], best["gamma"]) == (0.4, 0.95)
  assert (worst["eta"], worst["gamma"]) == (0.1, 0.9)
  assert best["mean"] == pytest.approx(0.04, abs=1e-6) and best["stderr"] == 0
  assert worst["mean"] == pytest.approx(0.30, abs=1e-6)
  table = (tmp_path / "s" / "table.md").read_text()
  assert "Lowest avg-SG: η 0.4, γ 0.95 (4.00 ± 0.00 %); highest: η 0.1, γ 0.9" in table
  # The avg-SG table: rows η, columns γ, in %.
  assert "| 0.1 | 30.00 ± 0.00 | 20.00 ± 0.00 |" in table
  assert "| 0.4 | 10.00 ± 0.00 | 4.00 ± 0.00 |" in table


def test_report_of_a_record_without_the_machine(tmp_path):
  task1 = np.random.default_rng(0).uniform(0.5, 1.0, (2, 2, 2, 6))  # any curves
  out = _saved_sweep(tmp_path / "s", {}, task1)
  sensitivity.write_report(out)
  assert "**Wall time** (device not recorded, CPU count not recorded, 1-min load" in (
      out / "table.md").read_text()


def test_a_one_seed_sweep_reports_without_standard_errors(tmp_path):
  # One seed has no standard error: the record holds null (JSON has no NaN),
  # the table the mean alone.
  task1 = np.array([[[[0.5, 0.9, 1.0, 1.0 - d, 0.99, 0.99]] for d in row] for row in DIPS])
  out = _saved_sweep(tmp_path / "s", {"seeds": [0]}, task1=task1)
  record = sensitivity.write_report(out)
  assert record["best_avg_sg"]["stderr"] is None
  assert record["best_avg_sg"]["mean"] == pytest.approx(0.04, abs=1e-6)
  assert results.read_json(out / "sensitivity.json")["worst_avg_sg"]["stderr"] is None
  assert "4.00" in (out / "table.md").read_text() and "4.00 ±" not in (out / "table.md").read_text()
