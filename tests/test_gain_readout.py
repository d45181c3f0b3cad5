"""The gain-readout command: its helpers, its table, and the command end to end
on saved runs."""

import dataclasses
import json

import numpy as np
import pytest

from experiments import gain_readout as readout_cli
from ngm_jax.gain_analysis import gain_trend
from tests.fake_runs import FAST_CONFIG, fake_curves, old_meta, write_run


def test_benchmark_kind_from_the_record_or_the_registry():
  kind = readout_cli.benchmark_kind
  assert kind({"benchmark": "split_mnist"}) == "class-incremental"
  assert kind({"benchmark": "split_cifar10"}) == "class-incremental"
  assert kind({"benchmark": "rotated_mnist"}) == "domain-incremental"
  assert kind({"benchmark": "domain_cifar100"}) == "domain-incremental"
  assert kind({"benchmark": "my_stream", "kind": "domain-incremental"}) == "domain-incremental"
  assert kind({"benchmark": "permuted_mnist"}) == "domain-incremental"
  with pytest.raises(ValueError, match="my_other_stream"):
    kind({"benchmark": "my_other_stream"})


def test_gain_trend_table_row():
  gain = np.repeat([[1.0, 2.0, 3.0], [1.0, 3.0, 5.0]], 2, axis=1)
  entry = {"benchmark": "rotated_mnist", "kind": "domain-incremental", "optimizer": "ngm_sgd",
           "seeds": 2, "num_tasks": 3, "iterations_per_task": 2, "eta": 0.5,
           "trend": gain_trend(gain, 3)}
  settled = {**entry, "trend": gain_trend(gain, 3, skip=1)}
  rows = readout_cli.gain_trend_table([entry, settled]).splitlines()
  assert rows[2].startswith("| rotated_mnist | domain-incremental | `ngm_sgd` | 0.5 | 3 × 2 | 2 |"
                            " whole block | 1.000 ± 0.000, 2.500 ± 0.500, 4.000 ± 1.000 |"
                            " +1.5000 | ± 6.3531")
  assert rows[2].endswith("| 2.500 |")
  assert "| iterations 2..2 of each block |" in rows[3]


def _readout_run(folder, benchmark, num_tasks, block_gains, optimizer="ngm_sgd"):
  """A saved run whose NGM gain is constant within each block."""
  config = dataclasses.replace(FAST_CONFIG, eta=0.5)
  gain = np.repeat(np.asarray(block_gains, np.float64), config.iterations_per_task, axis=1)
  curves, its = fake_curves(num_seeds=len(block_gains), num_tasks=num_tasks, config=config,
                             gain=gain)
  meta = {**old_meta(config, optimizers=(optimizer,)), "benchmark": benchmark,
          "num_tasks": num_tasks, "wall_s": 1.0}
  write_run(folder, meta, {optimizer: curves}, its)
  return folder


def test_gain_readout_command(tmp_path, capsys):
  rot = _readout_run(tmp_path / "rot", "rotated_mnist", 3, [[1, 2, 3], [1, 3, 5]])
  split = _readout_run(tmp_path / "split", "split_mnist", 5,
                       [[1, 1, 1, 1, 1], [1, 1.5, 2, 2.5, 3], [2, 2, 2, 2, 2]])
  out = tmp_path / "readout"
  assert readout_cli.main(["--runs", str(rot), str(split), "--out", str(out)]) == 0
  capsys.readouterr()
  record = json.loads((out / "gain_readout.json").read_text())
  # Class-incremental first, then domain-incremental.
  assert [r["benchmark"] for r in record["runs"]] == ["split_mnist", "rotated_mnist"]
  split_slope, rot_slope = (r["trend"]["slope"] for r in record["runs"])
  assert split_slope["mean"] == pytest.approx(0.5 / 3)  # slopes 0, 0.5, 0
  assert rot_slope["mean"] == pytest.approx(1.5)
  assert rot_slope["half_width"] == pytest.approx(12.70620474 * 0.5)
  assert record["runs"][1]["trend"]["block_gain"] == [[1, 2, 3], [1, 3, 5]]
  # The settled readout leaves out half of each block (constant gains: the same slope).
  assert record["runs"][1]["settled"]["skip"] == 2
  assert record["runs"][1]["settled"]["slope"]["mean"] == pytest.approx(1.5)
  table = (out / "table.md").read_text()
  assert "| split_mnist | class-incremental |" in table
  assert ("| rotated_mnist | domain-incremental | `ngm_sgd` | 0.5 | 3 × 4 | 2 |"
          " iterations 3..4 of each block |") in table
  assert readout_cli.main(["--runs", str(rot), "--out", str(out), "--skip-fraction", "0"]) == 0
  record = json.loads((out / "gain_readout.json").read_text())
  assert record["runs"][0]["settled"] is None
  assert "of each block" not in (out / "table.md").read_text()
  assert (out / "figure.png").stat().st_size > 0


def test_gain_readout_errors_name_the_problem(tmp_path, capsys):
  run = _readout_run(tmp_path / "r", "rotated_mnist", 3, [[1, 2, 3], [1, 3, 5]])
  flat = _readout_run(tmp_path / "f", "split_mnist", 3, [[1, 1, 1]], optimizer="g0_sgd")
  cases = [
      (["--runs", str(run), "--optimizer", "adam"], "no 'adam' curves; it holds ngm_sgd"),
      (["--runs", str(flat), "--optimizer", "g0_sgd"], "is constant (1)"),
      (["--runs", str(tmp_path / "none")], "holds no saved run"),
      (["--runs", str(run), "--level", "1.2"], "--level 1.2"),
      (["--runs", str(run), "--skip-fraction", "1"], "--skip-fraction 1.0"),
  ]
  for argv, expected in cases:
    assert readout_cli.main(argv + ["--out", str(tmp_path / "o")]) == 2
    assert expected in capsys.readouterr().err
