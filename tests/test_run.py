"""The command line end to end on tiny IDX fixtures: files, reload, errors."""

import json

import numpy as np
import pytest

from experiments import run as cli
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
                   "--seeds", "2", "--data-dir", str(data_dir), "--out", str(out), *FAST])
  assert code == 0
  return out, data_dir


def test_run_writes_reloadable_outputs(run_dir):
  out, _ = run_dir
  for name in ("run.json", "curves.npz", "metrics.json", "table.md", "figure.png", "log.jsonl"):
    assert (out / name).stat().st_size > 0, name
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
  for name in ("train_loss", "gain"):  # seed 1 of sgd diverges half way
    curves["sgd"][name][1, 10:] = np.nan
  results.save_curves(copy / "curves.npz", curves, iterations)
  assert cli.main(["report", str(copy)]) == 0
  table = (copy / "table.md").read_text()
  assert "| sgd |" in table and "1/2 (seed index 1)" in table
  assert "| ngm_sgd |" in table and "0/2 |" in table
  assert "↳ sgd, the 1 seeds that did not fail" in table and "diverged" in table
  assert json.loads((copy / "failed_seeds.json").read_text()) == {
      "ngm_sgd": [False, False], "sgd": [False, True]}
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
    (["run", "--benchmark", "split_mnist", "--eval-every", "3"], "eval_every=3 must divide"),
    (["run", "--benchmark", "split_mnist", "--seeds", "0"], "--seeds 0"),
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


def test_two_seed_vmapped_cifar_run_through_the_cli(tmp_path):
  from tests.conftest import write_cifar10_pickles
  write_cifar10_pickles(tmp_path / "data" / "cifar-10-batches-py", n_train_per_class=4,
                        n_test_per_class=2)
  out = tmp_path / "out"
  code = cli.main(["run", "--benchmark", "split_cifar10", "--data-dir", str(tmp_path / "data"),
                   "--optimizers", "ngm_sgd,msgd", "--seeds", "2", "--seed-axis", "vmap",
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
  assert "Each task's test set limited to a fixed random subset of 3" in (out / "table.md").read_text()


def test_variants_of_one_optimizer_run_side_by_side(tmp_path):
  import dataclasses
  from ngm_jax.experiment import run_benchmark
  from ngm_jax.streams import split_mnist
  from ngm_jax.train import TrainConfig
  from tests.conftest import fake_mnist
  config = TrainConfig(iterations_per_task=4, batch_size=8, task_eval_every=2)
  variants = {"g0=1": ("g0_sgd", config),
              "g0=2": ("g0_sgd", dataclasses.replace(config, const_gain=2.0)),
              "msgd_reset": ("msgd_reset", config)}
  out = run_benchmark(split_mnist(fake_mnist()), variants, config, 1, tmp_path / "v",
                      show_progress=False)
  curves, _ = results.load_curves(out / "curves.npz")
  np.testing.assert_allclose(curves["g0=1"]["gain"], 1.0)
  np.testing.assert_allclose(curves["g0=2"]["gain"], 2.0)
  assert "msgd_reset reset the optimizer state" in (out / "table.md").read_text()
  bad = {"x": ("sgd", dataclasses.replace(config, eval_every=2))}
  with pytest.raises(ValueError, match="eval_every=2 differs"):
    run_benchmark(split_mnist(fake_mnist()), bad, config, 1, tmp_path / "b")
