"""experiments/bench.py on tiny data: the rows file, the sizes, the curve
comparison, and one --compare (the per-step Python loop against the program
sharded over 2 fake devices, each in a subprocess)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import bench  # pylint: disable=g-import-not-at-top
from tests.conftest import fake_mnist, write_mnist_idx


def test_rows_file_is_rewritten_after_every_row(tmp_path):
  path = tmp_path / "sub" / "rows.json"
  rows = bench.Rows(str(path), {"benchmark": "x"})
  first = json.loads(path.read_text())
  assert first == {"benchmark": "x", "complete": False, "wall_s": first["wall_s"], "rows": []}
  rows.add({"a": 1})
  assert json.loads(path.read_text())["rows"] == [{"a": 1}]
  rows.add({"a": 2})
  rows.close()
  record = json.loads(path.read_text())
  assert record["complete"] and record["rows"] == [{"a": 1}, {"a": 2}]
  assert 0 <= first["wall_s"] <= record["wall_s"]  # the command's wall time so far


def _args(*argv):
  parser_args = dict(compare=False, full=False, benchmark="split_mnist", seeds=None,
                     runs=None, repeats=None, modes=None, iterations=None, batch_size=None,
                     test_subset=None, eval_task1_limit=None, iterations_per_task=None)
  args = type("Args", (), parser_args)()
  for k, v in zip(argv[::2], argv[1::2]):
    setattr(args, k, v)
  bench._apply_sizes(args)  # pylint: disable=protected-access
  return args


def test_sizes_cpu_default_full_and_overrides():
  cpu = _args("benchmark", "split_cifar10")
  assert (cpu.seeds, cpu.batch_size, cpu.test_subset, cpu.repeats) == ("2", 32, 100, 1)
  assert cpu.modes.split(",") == ["chunked:sequential", "chunked:vmap", "scan:vmap"]
  full = _args("benchmark", "split_cifar10", "full", True)
  assert (full.seeds, full.batch_size, full.test_subset, full.repeats) == ("1,5", None, None, 2)
  assert len(full.modes.split(",")) == 6
  assert _args("benchmark", "split_cifar10", "batch_size", 8).batch_size == 8
  conv = _args("benchmark", "split_cifar10", "compare", True)
  assert "scan:vmap@2" in conv.runs.split(",")  # one device per seed
  mnist = _args("compare", True)
  assert mnist.runs.split(",")[0] == "scan:vmap@1" and mnist.iterations_per_task is None


def test_parse_run():
  assert bench.parse_run("scan:vmap@4", 5) == ("scan", "vmap", 4)
  assert bench.parse_run("chunked:sequential", 5) == ("chunked", "sequential", 1)
  assert bench.parse_run("python@1", 5) == ("python", "sequential", 1)
  assert bench.parse_run("scan:vmap@S", 3) == ("scan", "vmap", 3)
  assert bench.parse_run("chunked:shard@2", 2) == ("chunked", "shard", 2)
  with pytest.raises(ValueError, match="loop:seed_axis@devices"):
    bench.parse_run("scan:pmap@2", 2)


def test_compare_curves():
  ref = {"train_loss": np.array([[1.0, 2.0, 3.0]]), "task1_loss": np.array([[0.5, 0.5, 0.5]])}
  same = bench.compare_curves(dict(ref), ref)
  assert same["training_bitwise"] and same["all_bitwise"] and same["max_abs_diff"] == 0
  assert same["first_training_difference"] is None
  late = {**ref, "train_loss": np.array([[1.0, 2.0, 3.5]])}
  got = bench.compare_curves(late, ref)
  assert not got["training_bitwise"] and got["first_training_difference"] == 3
  assert got["max_abs_diff"] == 0.5
  loss_only = bench.compare_curves({**ref, "task1_loss": ref["task1_loss"] + 1e-7}, ref)
  assert loss_only["training_bitwise"] and not loss_only["all_bitwise"]


@pytest.mark.slow  # subprocesses
def test_compare_runs_each_way_in_a_subprocess(tmp_path, capsys):
  """The Python loop and the program sharded over 2 fake devices, each in its
  own process, on tiny data: the same curves within float rounding (bitwise
  equality is not asserted: it depends on how XLA batches the seeds)."""
  data_dir = write_mnist_idx(tmp_path / "mnist", fake_mnist(n_train_per_class=4,
                                                              n_test_per_class=2))
  out = tmp_path / "compare.json"
  assert bench.main(["--compare", "--data-dir", str(data_dir), "--iterations-per-task", "2",
                     "--batch-size", "4", "--seeds", "3", "--runs", "python@1,scan:vmap@2",
                     "--json", str(out)]) == 0
  record = json.loads(out.read_text())
  assert record["complete"]
  loop, sharded = record["rows"]
  assert (loop["device_count"], sharded["device_count"]) == (1, 2)
  assert loop["loop"] == "python" and loop["run_vs_first"] == 1.0
  assert sharded["runs_computed"] == 4  # 3 seeds padded to a multiple of 2 devices
  assert sharded["max_abs_diff"] <= 1e-5
  assert loop["device_bytes"] > 0 and sharded["device_bytes"] > 0
  assert sharded["peak_rss_mb"] > 0
  saved = sorted(p.name for p in (tmp_path / "compare_curves").iterdir())
  assert saved == ["0_python_on_1.npz", "1_scan_vmap_on_2.npz"]
  assert "| scan:vmap@2 | 2 | 4 |" in capsys.readouterr().out


@pytest.mark.slow
def test_checkpoint_cost_times_every_save_and_compares_the_curves(tmp_path):
  from experiments import checkpoint_cost
  data = write_mnist_idx(tmp_path / "mnist", fake_mnist(n_train_per_class=4, n_test_per_class=2))
  out = tmp_path / "ck.json"
  assert checkpoint_cost.main(["--data-dir", str(data), "--seeds", "2",
                               "--iterations-per-task", "10", "--json", str(out)]) == 0
  record = json.loads(out.read_text())
  assert record["curves_bit_identical"] is True
  saves = record["with_checkpoints"]["checkpoints"]
  assert len(saves) >= 5 and all(s["s"] > 0 and s["bytes"] > 0 for s in saves)  # a task end each
  assert record["without_checkpoints"]["checkpoints"] == []
  assert record["with_checkpoints"]["run_s"] > 0


@pytest.mark.slow  # compiles the runs, the FLOP counts and a matmul (~20 s here)
def test_rows_give_flops_per_second_fraction_of_peak_and_a_profile(tmp_path, capsys):
  data_dir = write_mnist_idx(tmp_path / "mnist", fake_mnist(n_train_per_class=4,
                                                              n_test_per_class=2))
  out, profile = tmp_path / "rows.json", tmp_path / "profile"
  assert bench.main(["--data-dir", str(data_dir), "--iterations-per-task", "2", "--seeds", "1",
                     "--repeats", "1", "--json", str(out), "--profile", str(profile)]) == 0
  record = json.loads(out.read_text())
  peak = record["peaks"]["fp32"]["measured"]
  assert set(record["peaks"]) == {"fp32"} and peak > 1e8  # CPU: fp32 only
  counts = record["flops"]
  every_iteration, at_task_ends = record["rows"]  # Task-1 evaluation every 1 / 2 iterations
  for row, config in ((every_iteration, (1, 2)), (at_task_ends, (2, 2))):
    per_iteration = (counts["train_step"] + counts["task1_eval"] / config[0]
                     + counts["all_tasks_eval"] / config[1])
    assert row["mflop_per_iteration"] == pytest.approx(per_iteration / 1e6, abs=0.01)
    achieved = per_iteration * row["seed_iterations_per_s"]
    assert row["achieved_gflop_per_s"] == pytest.approx(achieved / 1e9, rel=1e-3)
    assert row["peak"] == "fp32"
    assert row["fraction_of_peak"] == pytest.approx(achieved / peak, rel=2e-3)
  costs = record["profile"]["top_costs"]
  assert costs and any(c["name"].startswith("jit_train/") for c in costs)
  printed = capsys.readouterr().out
  assert "| GFLOP/s | of peak |" in printed and "Top costs of the first row's profile" in printed
  assert list(profile.glob("plugins/profile/*/perfetto_trace.json.gz"))
