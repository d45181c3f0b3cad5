"""The command line end to end on tiny IDX fixtures: files, reload, errors."""

import json

import numpy as np
import pytest

from ngm_jax import cli
from ngm_jax import results
from ngm_jax.plots import plot_stability_gap

FAST = ["--iterations-per-task", "4", "--batch-size", "8", "--task-eval-every", "2",
        "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  from tests.conftest import fake_mnist, write_mnist_idx
  root = tmp_path_factory.mktemp("cli")
  data_dir = write_mnist_idx(root / "data", fake_mnist())
  out = root / "out"
  code = cli.main(["run", "--benchmark", "split_mnist", "--optimizers", "ngm_sgd,sgd",
                   "--seeds", "2", "--data-dir", str(data_dir), "--out", str(out), *FAST,
                   "--log", "csv,tensorboard"])
  assert code == 0
  return out, data_dir


def test_run_writes_reloadable_outputs(run_dir):
  out, _ = run_dir
  for name in ("run.json", "curves.npz", "metrics.json", "table.md", "figure.png", "log.jsonl",
               "metrics.csv"):
    assert (out / name).stat().st_size > 0, name
  assert sorted(p.name for p in (out / "tensorboard").iterdir()) == ["ngm_sgd", "sgd"]
  meta = json.loads((out / "run.json").read_text())
  assert meta["optimizers"] == ["ngm_sgd", "sgd"] and meta["seeds"] == [0, 1]
  assert meta["train"]["iterations_per_task"] == 4
  assert meta["task1_eval_size"] == meta["task1_test_size"] == 12
  assert set(meta["timings"]) == {"ngm_sgd", "sgd"}
  curves, iterations = results.load_curves(out / "curves.npz")
  assert list(curves) == ["ngm_sgd", "sgd"]
  assert curves["ngm_sgd"]["task1_acc"].shape == (2, 20)
  np.testing.assert_array_equal(iterations["tasks"], np.arange(2, 21, 2))
  metrics = json.loads((out / "metrics.json").read_text())
  assert len(metrics["sgd"]["avg_sg"]["per_seed"]) == 2
  table = (out / "table.md").read_text()
  for column in ("avg-ACC", "avg-min-ACC", "WC-ACC", "avg-SG", "seed-averaged curve"):
    assert column in table
  assert "| ngm_sgd |" in table and "±" in table
  lines = (out / "log.jsonl").read_text().splitlines()
  assert [json.loads(line)["optimizer"] for line in lines] == ["ngm_sgd", "sgd"]


def test_report_remakes_from_saved_curves(run_dir):
  out, _ = run_dir
  before = json.loads((out / "metrics.json").read_text())
  (out / "metrics.json").unlink()
  (out / "figure.png").unlink()
  (out / "table.md").unlink()
  assert cli.main(["report", str(out)]) == 0
  assert json.loads((out / "metrics.json").read_text()) == before
  assert (out / "figure.png").exists() and (out / "table.md").exists()


def test_report_flags_a_diverged_seed(run_dir, tmp_path):
  out, _ = run_dir
  copy = tmp_path / "run"
  copy.mkdir()
  (copy / "run.json").write_text((out / "run.json").read_text())
  curves, iterations = results.load_curves(out / "curves.npz")
  before = (out / "table.md").read_text()
  assert "| sgd |" in before and "0/2 |" in before and "↳" not in before  # none failed
  assert "No seed failed." in before and "at chance" in before  # the rule is stated
  np.testing.assert_array_equal(curves["sgd"]["diverged_at"], [-1, -1])
  for name in ("train_loss", "gain"):  # seed 1 of sgd diverges half way
    curves["sgd"][name][1, 10:] = np.nan
  curves["sgd"]["diverged_at"][1] = 11
  results.save_curves(copy / "curves.npz", curves, iterations)
  assert cli.main(["report", str(copy)]) == 0
  table = (copy / "table.md").read_text()
  assert "| sgd |" in table and "1/2 (seed index 1)" in table
  assert "| ngm_sgd |" in table and "0/2 |" in table
  assert "↳ sgd, the 1 seeds that did not fail" in table
  assert "sgd seed index 1 diverged at iteration 11" in table
  assert json.loads((copy / "failed_seeds.json").read_text()) == {"ngm_sgd": [], "sgd": [1]}
  # A run saved before diverged_at was recorded: read from the curves instead.
  del curves["sgd"]["diverged_at"], curves["ngm_sgd"]["diverged_at"]
  results.save_curves(copy / "curves.npz", curves, iterations)
  assert cli.main(["report", str(copy)]) == 0
  assert "sgd seed index 1 diverged at iteration 11" in (copy / "table.md").read_text()
  fig = plot_stability_gap(curves, iterations, 5, 4,
                           failed={"sgd": np.array([False, True])})
  legend = [t.get_text() for t in fig.legends[0].get_texts()]
  assert "SGD (1/2 seeds failed; mean of 1)" in legend
  assert all(np.all(np.isfinite(line.get_ydata())) for line in fig.axes[0].lines)


def test_refuses_to_overwrite_a_run(run_dir, capsys):
  out, data_dir = run_dir
  code = cli.main(["run", "--benchmark", "split_mnist", "--optimizers", "sgd", "--seeds", "1",
                   "--data-dir", str(data_dir), "--out", str(out), *FAST])
  assert code == 2 and "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["run", "--benchmark", "split_cifar"], "Unknown benchmark 'split_cifar'; choose from"),
    (["run", "--benchmark", "split_mnist", "--eval-every", "3"],
     "--eval-every 3 must divide --task-eval-every 10"),
    (["report", "/nonexistent/run"], "no saved run"),
])
def test_bad_input_gives_one_clear_line(argv, expected, capsys, tmp_path):
  assert cli.main(argv + (["--out", str(tmp_path / "o")] if argv[0] == "run" else [])) == 2
  err = capsys.readouterr().err
  assert expected in err and "Traceback" not in err


def test_replayed_schedule_optimizer_points_to_the_ablations_command(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["run", "--benchmark", "split_mnist", "--optimizers", "ngm_sgd,replayed_lr_sgd"])
  assert exit_info.value.code == 2
  assert "experiments/ablations.py" in capsys.readouterr().err


def test_unknown_optimizer_is_a_usage_error(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["run", "--benchmark", "split_mnist", "--optimizers", "ngm_sgd,rmsprop"])
  assert exit_info.value.code == 2
  assert "rmsprop" in capsys.readouterr().err


def test_missing_data_names_both_ways(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  code = cli.main(["run", "--benchmark", "split_mnist", "--data-dir", str(tmp_path / "empty"),
                   "--out", str(tmp_path / "o"), *FAST])
  err = capsys.readouterr().err
  assert code == 2 and "ngm-jax[tfds]" in err and "--data-dir" in err


def test_plot_returns_figure_with_three_rows(run_dir):
  out, _ = run_dir
  curves, iterations = results.load_curves(out / "curves.npz")
  fig = plot_stability_gap(curves, iterations, 5, 4)
  assert len(fig.axes) == 3
  # NGM-SGD has a gain line; SGD's gain is identically 1 and is not drawn.
  assert len(fig.axes[2].lines) == 1 + 4  # one gain curve, four task boundaries


@pytest.mark.slow  # a ResNet through the CLI, ~75 s
def test_two_seed_vmapped_cifar_run_through_the_cli(tmp_path):
  from tests.conftest import write_cifar10_pickles
  write_cifar10_pickles(tmp_path / "data" / "cifar-10-batches-py", n_train_per_class=4,
                        n_test_per_class=2)
  out = tmp_path / "out"
  code = cli.main(["run", "--benchmark", "split_cifar10", "--data-dir", str(tmp_path / "data"),
                   "--optimizers", "ngm_sgd,msgd", "--seeds", "2", "--seed-axis", "vmap",
                   "--augment",
                   "--iterations-per-task", "2", "--batch-size", "4", "--task-eval-every", "1",
                   "--test-subset", "3", "--out", str(out), "--no-progress"])
  assert code == 0
  meta = json.loads((out / "run.json").read_text())
  assert meta["model"] == "SlimResNet18" and meta["augment"] is True
  assert meta["seed_axis"] == "vmap" and meta["test_sizes"] == [3] * 5
  assert meta["test_subset_per_task"] == 3
  curves, _ = results.load_curves(out / "curves.npz")
  assert curves["ngm_sgd"]["task1_acc"].shape == (2, 10)
  assert curves["msgd"]["task_acc"].shape == (2, 10, 5)
  gain = curves["ngm_sgd"]["gain"]
  assert np.all(gain > 1.0) and np.all(curves["msgd"]["gain"] == 1.0)
  table = (out / "table.md").read_text()
  # Task 1 has 2 test images per class, 4 in all; the subset keeps 3 of them.
  assert meta["test_sizes_full"] == [4] * 5 and meta["task1_test_size"] == 3
  assert ("on 3 of the 3 Task-1 test images in the fixed subset (Task 1 has 4 test images)"
          in table)
  assert ("Each task's test set limited to a fixed random subset of at most 3 images (seed 0):"
          " 3, 3, 3, 3, 3 of 4, 4, 4, 4, 4 test images per task.") in table


@pytest.mark.slow
def test_variants_of_one_optimizer_run_side_by_side(tmp_path):
  import dataclasses
  from ngm_jax.runner import run_benchmark
  from ngm_jax.streams import split_mnist
  from ngm_jax.train import TrainConfig
  from tests.conftest import fake_mnist
  config = TrainConfig(iterations_per_task=4, batch_size=8, task_eval_every=2)
  variants = {"g0=1": ("g0_sgd", config),
              "g0=2": ("g0_sgd", dataclasses.replace(config, const_gain=2.0)),
              "msgd_reset": ("msgd_reset", config)}
  out = tmp_path / "v"
  run_benchmark(split_mnist(fake_mnist()), variants, config, num_seeds=1, out=out,
                show_progress=False)
  curves, _ = results.load_curves(out / "curves.npz")
  np.testing.assert_allclose(curves["g0=1"]["gain"], 1.0)
  np.testing.assert_allclose(curves["g0=2"]["gain"], 2.0)
  assert "msgd_reset reset the optimizer state" in (out / "table.md").read_text()
  bad = {"x": ("sgd", dataclasses.replace(config, eval_every=2))}
  with pytest.raises(ValueError, match="eval_every=2 differs"):
    run_benchmark(split_mnist(fake_mnist()), bad, config, num_seeds=1, out=tmp_path / "b")


def _copy_run(out, to):
  import shutil
  shutil.copytree(out, to)
  return to


@pytest.mark.parametrize("damage, expected", [
    (lambda d: (d / "run.json").unlink(), "run.json is missing"),
    (lambda d: (d / "curves.npz").unlink(), "curves.npz is missing"),
    (lambda d: (d / "curves.npz").write_text("not a zip"), "curves.npz cannot be read"),
    (lambda d: (d / "curves.npz").write_bytes((d / "curves.npz").read_bytes()[:600]),
     "curves.npz cannot be read"),
    (lambda d: (d / "run.json").write_text('{"benchmark": "split_mnist", '),
     "run.json is not valid JSON (Expecting property name"),
    (lambda d: (d / "run.json").write_text("[1, 2]"), "holds a JSON list, not a run's record"),
    (lambda d: (d / "run.json").write_text('{"benchmark": "split_mnist"}'), "run.json lacks"),
])
def test_report_on_a_damaged_folder_names_the_file_and_the_fault(run_dir, tmp_path, capsys,
                                                                damage, expected):
  copy = _copy_run(run_dir[0], tmp_path / "run")
  damage(copy)
  assert cli.main(["report", str(copy)]) == 2
  err = capsys.readouterr().err
  assert expected in err and str(copy) in err and "Traceback" not in err
  assert err.count("\n") == 1  # one line


def test_report_refuses_curves_that_miss_a_variant_run_json_lists(run_dir, tmp_path, capsys):
  copy = _copy_run(run_dir[0], tmp_path / "run")
  curves, iterations = results.load_curves(copy / "curves.npz")
  del curves["sgd"]  # the run stopped after its first optimizer
  results.save_curves(copy / "curves.npz", curves, iterations)
  (copy / "table.md").unlink()
  assert cli.main(["report", str(copy)]) == 2
  err = capsys.readouterr().err
  assert "curves.npz holds ngm_sgd but not sgd, which" in err and "run.json lists" in err
  assert not (copy / "table.md").exists()
  partial = results.load_result(copy, complete=False)
  assert partial.labels == ["ngm_sgd"] and partial.meta["optimizers"] == ["ngm_sgd"]
  curves["ngm_sgd"]["task1_acc"] = curves["ngm_sgd"]["task1_acc"][:1]  # one seed of two
  results.save_curves(copy / "curves.npz", curves, iterations)
  with pytest.raises(ValueError, match="its first axis must be the 2 seeds"):
    results.load_result(copy, complete=False)


def test_report_on_a_file_or_missing_folder(tmp_path, capsys):
  (tmp_path / "f").write_text("x")
  assert cli.main(["report", str(tmp_path / "f")]) == 2
  assert "it is a file, not a run's folder" in capsys.readouterr().err
  (tmp_path / "empty").mkdir()
  assert cli.main(["report", str(tmp_path / "empty")]) == 2
  assert "holds no saved run (no run.json and no curves.npz)" in capsys.readouterr().err


@pytest.mark.parametrize("flags, expected", [
    (["--eta", "-1"], "argument --eta: -1 is not allowed: must be a finite number >= 0"),
    (["--eta", "nan"], "argument --eta: nan is not allowed: must be a finite number >= 0"),
    (["--gamma", "1"], "argument --gamma: 1 is not allowed: must be a finite number in [0, 1)"),
    (["--gamma", "0.5x"], "argument --gamma: '0.5x' is not a number: must be a finite number"),
    (["--g0", "0"], "argument --g0: 0 is not allowed: must be a finite number > 0"),
    (["--const-gain=-inf"], "argument --const-gain: -inf is not allowed"),
    (["--learning-rate", "inf"], "argument --learning-rate: inf is not allowed: must be a"
                                 " finite number > 0"),
    (["--batch-size", "2.5"], "argument --batch-size: '2.5' is not an integer: must be an"
                              " integer >= 1"),
    (["--iterations-per-task", "0"], "argument --iterations-per-task: 0 is not allowed"),
    (["--eval-task1-limit", "-2"], "argument --eval-task1-limit: -2 is not allowed: must be an"
                                   " integer >= 1"),
    (["--seeds", "0"], "argument --seeds: 0 is not allowed: must be an integer >= 1"),
    (["--seeds", "two"], "argument --seeds: two is not allowed"),
    (["--test-subset", "0"], "argument --test-subset: 0 is not allowed"),
    (["--num-tasks", "-1"], "argument --num-tasks: -1 is not allowed"),
    (["--rotation-interpolation", "cubic"], "argument --rotation-interpolation: invalid choice"),
    (["--optimizers", "ngm_sgd,rmsprop"], "unknown optimizer(s) rmsprop"),
    (["--etta", "0.3"], "unrecognized arguments: --etta"),
])
def test_every_bad_value_is_a_usage_error_before_anything_loads(flags, expected, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["run", "--benchmark", "split_mnist", *flags])
  assert exit_info.value.code == 2
  captured = capsys.readouterr()
  assert expected in captured.err and "Traceback" not in captured.err
  assert "Loading" not in captured.out


@pytest.mark.parametrize("flags, expected", [
    (["--eval-every", "3", "--task-eval-every", "4", "--iterations-per-task", "8"],
     "--eval-every 3 must divide --task-eval-every 4."),
    (["--task-eval-every", "7"], "--task-eval-every 7 must divide --iterations-per-task 200."),
    (["--data-dir", "/nonexistent/mnist"], "--data-dir /nonexistent/mnist: no such folder."),
    (["--benchmark", "domain_cifar100", "--num-tasks", "9"],
     "benchmark domain_cifar100: --num-tasks 9; must be an integer in [1, 5]."),
])
def test_values_checked_together_fail_before_the_data_load(flags, expected, tmp_path, capsys):
  argv = ["run", "--benchmark", "split_mnist", "--out", str(tmp_path / "o"), *flags]
  assert cli.main(argv) == 2
  captured = capsys.readouterr()
  assert captured.err == f"error: {expected}\n"
  if "--num-tasks" not in flags:
    assert "Loading" not in captured.out


def test_out_that_is_a_file_or_holds_a_run_is_refused_before_loading(run_dir, tmp_path, capsys):
  out, data_dir = run_dir
  (tmp_path / "file").write_text("x")
  for target, expected in [(tmp_path / "file", "is a file, not a folder"),
                           (tmp_path / "file" / "sub",
                            f"{tmp_path / 'file'} is a file, so no folder can be made"),
                           (out, "already holds a run (curves.npz, run.json); pass"
                                 " --overwrite")]:
    assert cli.main(["run", "--benchmark", "split_mnist", "--data-dir", str(data_dir),
                     "--out", str(target), *FAST]) == 2
    captured = capsys.readouterr()
    assert f"error: --out {target}: {expected}" in captured.err
    assert "Loading" not in captured.out


def test_bad_flag_in_a_fresh_process_exits_2_without_a_traceback(tmp_path):
  import os
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run([sys.executable, "-m", "experiments.run", "run", "--benchmark",
                         "split_mnist", "--eta", "-1"], cwd=root, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 2
  assert "--eta" in proc.stderr and "-1 is not allowed" in proc.stderr
  assert "Traceback" not in proc.stderr and "Loading" not in proc.stdout


_FACTORY = ("import optax\n\n\ndef make_tx(learning_rate):\n"
            "  return optax.sgd(learning_rate)\n")


def _mylab(folder):
  (folder / "mylab").mkdir(parents=True)
  (folder / "mylab" / "__init__.py").write_text("")
  (folder / "mylab" / "opt.py").write_text(_FACTORY)
  return folder


def test_a_factory_is_imported_from_the_current_folder(tmp_path, monkeypatch):
  import sys
  from ngm_jax.cli.run import load_factory
  monkeypatch.chdir(_mylab(tmp_path))
  # As under the installed ngm-jax script: the current folder is not on sys.path.
  monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
  monkeypatch.delitem(sys.modules, "mylab", raising=False)
  monkeypatch.delitem(sys.modules, "mylab.opt", raising=False)
  tx = load_factory("mylab.opt:make_tx", 0.01)
  assert hasattr(tx, "init") and hasattr(tx, "update")
  with pytest.raises(ValueError, match="cannot import module 'nolab.opt' from"):
    load_factory("nolab.opt:make_tx", 0.01)


@pytest.mark.slow
def test_ngm_jax_and_the_checkout_alias_run_a_local_factory_from_another_folder(tmp_path):
  import os
  import subprocess
  import sys
  from pathlib import Path
  from tests.conftest import fake_mnist, write_mnist_idx
  root = Path(__file__).resolve().parents[1]
  script = Path(sys.executable).parent / "ngm-jax"
  if not script.exists():
    pytest.skip("the ngm-jax console script is not installed (pip install -e .)")
  work = _mylab(tmp_path / "work")
  data_dir = write_mnist_idx(tmp_path / "data", fake_mnist(n_train_per_class=4,
                                                          n_test_per_class=2))
  tiny = ["--benchmark", "split_mnist", "--optimizers", "mylab.opt:make_tx", "--seeds", "1",
          "--iterations-per-task", "2", "--batch-size", "4", "--task-eval-every", "2",
          "--no-progress", "--checkpoint-every-s", "0", "--data-dir", str(data_dir)]
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  commands = {
      "ngm-jax": ([str(script)], env),
      # The alias runs from the checkout's code; the folder it is typed in holds mylab.
      "alias": ([sys.executable, "-m", "experiments.run"], {**env, "PYTHONPATH": str(root)}),
  }
  for name, (command, command_env) in commands.items():
    proc = subprocess.run([*command, "run", *tiny, "--out", str(tmp_path / name)], cwd=work,
                          env=command_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (name, proc.stderr[-2000:])
    meta = json.loads((tmp_path / name / "run.json").read_text())
    assert meta["optimizers"] == ["mylab.opt:make_tx"], name
  # The installed package holds no top-level experiments package.
  proc = subprocess.run([sys.executable, "-c", "import experiments"], cwd=work, env=env,
                        capture_output=True, text=True, timeout=60)
  assert proc.returncode == 1 and "No module named 'experiments'" in proc.stderr


_CONFIG = """from ngm_jax.config import ExperimentConfig, TrainConfig


def get_config():
  return ExperimentConfig(benchmark="split_mnist", optimizers=("sgd",), seeds=1,
                          train=TrainConfig(iterations_per_task=2, batch_size=4,
                                            task_eval_every=2, eta=0.3))
"""


def test_a_config_file_replaces_the_registry_config(run_dir, tmp_path, capsys):
  _, data_dir = run_dir
  (tmp_path / "tiny.py").write_text(_CONFIG)
  out = tmp_path / "out"
  assert cli.main(["run", "--config", str(tmp_path / "tiny.py"), "--data-dir", str(data_dir),
                   "--out", str(out), "--no-progress", "--eta", "0.2"]) == 0
  meta = json.loads((out / "run.json").read_text())
  assert meta["optimizers"] == ["sgd"] and meta["seeds"] == [0]
  assert meta["train"]["iterations_per_task"] == 2 and meta["train"]["eta"] == 0.2  # flag wins
  capsys.readouterr()
  for argv, expected in [
      (["--config", str(tmp_path / "none.py")], "--config"),
      (["--config", str(tmp_path / "tiny.py"), "--benchmark", "rotated_mnist"],
       "is for split_mnist; give one of them"),
      ([], "give --benchmark NAME (its registry config) or --config FILE"),
  ]:
    assert cli.main(["run", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1, err


def test_the_default_config_is_the_registry_record(tmp_path):
  from ngm_jax import benchmarks
  from ngm_jax.cli.experiment import default_config
  for name in benchmarks.names():
    config = default_config(name)
    record = benchmarks.get(name)
    assert config.train == record.config and config.options == dict(record.options)
