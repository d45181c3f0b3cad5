"""The sensitivity report from a tiny saved sweep: its tables, its figure, and
a caption that states the machine the record says the sweep ran on."""

import numpy as np

from experiments import sensitivity
from ngm_jax import results


def _saved_sweep(out, record_extra):
  rng = np.random.default_rng(0)
  etas, gammas, seeds, k, points = [0.1, 0.4], [0.9, 0.95], 2, 2, 3
  task1 = rng.uniform(0.5, 1.0, (len(etas), len(gammas), seeds, k * points))
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
  assert "| 0.4 | " in table and record["best_avg_sg"]["eta"] in (0.1, 0.4)
  assert (out / "heatmaps.png").stat().st_size > 0


def test_report_of_a_record_without_the_machine(tmp_path):
  out = _saved_sweep(tmp_path / "s", {})
  sensitivity.write_report(out)
  assert "**Wall time** (device not recorded, CPU count not recorded, 1-min load" in (
      out / "table.md").read_text()
