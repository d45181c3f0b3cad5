"""The analyses on hand-computed arrays, and the ablation and gain-readout
commands end to end on tiny data."""

import dataclasses
import json
import math
import re

import numpy as np
import pytest

from experiments import ablations as ablations_cli
from experiments import gain_readout as readout_cli
from ngm_jax import analysis, plots_analysis, results
from ngm_jax.train import TrainConfig, curve_iterations

FAST = ["--iterations-per-task", "4", "--batch-size", "8", "--task-eval-every", "2",
        "--no-progress"]
FAST_CONFIG = TrainConfig(iterations_per_task=4, batch_size=8, task_eval_every=2)


# ----------------------------------------------------------------------------
# Gain


def test_time_averaged_gain_is_the_mean_over_iterations_and_seeds():
  avg = analysis.time_averaged_gain([[1.0, 2.0, 3.0], [3.0, 3.0, 3.0]])
  assert avg.mean == 2.5
  np.testing.assert_allclose(avg.per_seed, [2.0, 3.0])
  assert avg.stderr == pytest.approx(0.5)  # std([2, 3], ddof=1) / sqrt(2)
  assert math.isnan(analysis.time_averaged_gain([[1.0, 2.0]]).stderr)


@pytest.mark.parametrize("gain, match", [
    ([1.0, 2.0], r"\[seeds, iterations\]"),
    ([[1.0, np.nan]], "non-finite"),
])
def test_time_averaged_gain_rejects_bad_curves(gain, match):
  with pytest.raises(ValueError, match=match):
    analysis.time_averaged_gain(gain)


def test_gain_schedule_is_the_gain_each_step_used():
  schedule = analysis.gain_schedule([[1.5, 2.0, 1.2], [3.0, 2.5, 2.0]], g0=1.0)
  np.testing.assert_array_equal(schedule, [[1.0, 1.5, 2.0], [1.0, 3.0, 2.5]])
  assert schedule.dtype == np.float32
  with pytest.raises(ValueError, match="g0=0.0"):
    analysis.gain_schedule([[1.0]], g0=0.0)
  with pytest.raises(ValueError, match="non-finite"):
    analysis.gain_schedule([[1.0, np.nan]], g0=1.0)


def test_block_mean_gain_averages_each_task_block():
  gain = [[1, 1, 2, 4, 3, 5], [0, 2, 2, 2, 6, 6]]
  np.testing.assert_allclose(analysis.block_mean_gain(gain, 3), [[1, 3, 4], [1, 2, 6]])
  np.testing.assert_allclose(analysis.block_mean_gain(gain, 3, skip=1), [[1, 4, 5], [2, 2, 6]])
  with pytest.raises(ValueError, match="cannot be cut into 4"):
    analysis.block_mean_gain(gain, 4)
  with pytest.raises(ValueError, match=r"skip=2: must be an integer in \[0, 2\)"):
    analysis.block_mean_gain(gain, 3, skip=2)


def test_seen_tasks_accuracy_averages_tasks_one_to_k():
  task_acc = np.array([[[0.9, 0.1, 0.0], [0.8, 0.5, 0.2], [0.7, 0.6, 0.3], [0.6, 0.7, 0.9]]])
  # I = 2: iterations 1, 2 are task 1; 3 is task 2; 6 is task 3.
  seen = analysis.seen_tasks_accuracy(task_acc, [1, 2, 3, 6], 2)
  np.testing.assert_allclose(seen, [[0.9, 0.8, 0.65, (0.6 + 0.7 + 0.9) / 3]])
  with pytest.raises(ValueError, match="len\\(iterations\\)"):
    analysis.seen_tasks_accuracy(task_acc, [1, 2, 3], 2)


def test_failed_seeds_flags_divergence_and_collapse():
  loss = np.array([[2.0, 1.0, 0.5, 0.4],
                   [2.0, np.nan, np.nan, np.nan],  # diverged
                   [2.3, 2.3, 2.31, 2.302],         # no better than guessing among 10
                   [2.3, 2.3, 2.0, 2.2]])           # last quarter 2.2 < 0.99·ln 10
  np.testing.assert_array_equal(analysis.failed_seeds({"train_loss": loss}),
                                [False, True, False, False])
  np.testing.assert_array_equal(analysis.failed_seeds({"train_loss": loss}, 10, tail=0.25),
                                [False, True, True, False])
  np.testing.assert_array_equal(analysis.failed_seeds({"train_loss": loss}, 10, tail=0.5),
                                [False, True, True, False])
  with pytest.raises(ValueError, match="tail=0"):
    analysis.failed_seeds({"train_loss": loss}, tail=0)


# ----------------------------------------------------------------------------
# Statistics


@pytest.mark.parametrize("p, df, expected", [
    (0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 4, 2.7764), (0.975, 9, 2.2622),
    (0.975, 30, 2.0423), (0.95, 4, 2.1318), (0.995, 10, 3.1693), (0.9, 7, 1.4149),
])
def test_student_t_quantile_matches_the_tables(p, df, expected):
  assert analysis.student_t_quantile(p, df) == pytest.approx(expected, abs=1e-4)


def test_student_t_quantile_closed_forms_symmetry_and_limit():
  for p in (0.6, 0.9, 0.975):
    assert analysis.student_t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)
    assert analysis.student_t_quantile(p, 2) == pytest.approx(
        (2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-10)
  assert analysis.student_t_quantile(0.025, 4) == -analysis.student_t_quantile(0.975, 4)
  assert analysis.student_t_quantile(0.5, 3) == 0.0
  assert analysis.student_t_quantile(0.975, 100_000) == pytest.approx(1.959964, abs=1e-4)


@pytest.mark.parametrize("p, df, match", [
    (0.975, 0, "df=0"), (0.975, 2.5, "df=2.5"), (1.0, 3, "p=1.0"), (0.0, 3, "p=0.0"),
])
def test_student_t_quantile_rejects_bad_arguments(p, df, match):
  with pytest.raises(ValueError, match=match):
    analysis.student_t_quantile(p, df)


def test_confidence_interval_is_mean_plus_minus_t_times_stderr():
  ci = analysis.confidence_interval([1.0, 2.0])
  assert ci["mean"] == 1.5 and ci["stderr"] == pytest.approx(0.5) and ci["n"] == 2
  assert ci["t"] == pytest.approx(12.7062, abs=1e-4)
  assert ci["half_width"] == pytest.approx(0.5 * 12.70620474)
  assert ci["low"] == pytest.approx(1.5 - ci["half_width"])
  assert ci["high"] == pytest.approx(1.5 + ci["half_width"])
  one = analysis.confidence_interval([3.0])
  assert one["mean"] == 3.0 and math.isnan(one["half_width"])
  with pytest.raises(ValueError, match="level=1.5"):
    analysis.confidence_interval([1.0, 2.0], level=1.5)


def test_linear_fit_per_row():
  slope, intercept = analysis.linear_fit([[1, 2, 3], [1, 3, 5]])
  np.testing.assert_allclose(slope, [1, 2])
  np.testing.assert_allclose(intercept, [0, -1], atol=1e-12)
  slope, intercept = analysis.linear_fit([2, 5], x=[0, 1])
  assert slope == pytest.approx(3) and intercept == pytest.approx(2)
  with pytest.raises(ValueError, match="constant"):
    analysis.linear_fit([1, 2], x=[1, 1])
  with pytest.raises(ValueError, match="K >= 2"):
    analysis.linear_fit([1.0])


def test_gain_trend_fits_each_seed_then_averages():
  # Two seeds, 3 tasks of 2 iterations; block gains [1, 2, 3] and [1, 3, 5].
  gain = np.repeat([[1.0, 2.0, 3.0], [1.0, 3.0, 5.0]], 2, axis=1)
  trend = analysis.gain_trend(gain, 3)
  np.testing.assert_allclose(trend["block_gain"], [[1, 2, 3], [1, 3, 5]])
  np.testing.assert_allclose(trend["block_mean"], [1, 2.5, 4])
  np.testing.assert_allclose(trend["block_stderr"], [0, 0.5, 1])
  np.testing.assert_allclose(trend["slope_per_seed"], [1, 2])
  assert trend["slope"]["mean"] == pytest.approx(1.5)
  assert trend["slope"]["half_width"] == pytest.approx(12.70620474 * 0.5)
  assert trend["intercept"] == pytest.approx(-0.5)
  assert trend["time_averaged"] == pytest.approx(2.5) and trend["skip"] == 0
  # Leaving out each block's first iteration: block gains [2, 3, 4] and [1, 3, 5] + ramp.
  ramp = gain + np.tile([1.0, 0.0], 3)
  settled = analysis.gain_trend(ramp, 3, skip=1)
  np.testing.assert_allclose(settled["block_gain"], [[1, 2, 3], [1, 3, 5]])
  assert settled["skip"] == 1 and settled["time_averaged"] == pytest.approx(3.0)
  with pytest.raises(ValueError, match="at least 2 tasks"):
    analysis.gain_trend(gain, 1)


def test_paired_difference_is_the_interval_of_seedwise_differences():
  d = analysis.paired_difference([0.1, 0.3], [0.0, 0.1])
  assert d["mean"] == pytest.approx(0.15) and d["stderr"] == pytest.approx(0.05)
  with pytest.raises(ValueError, match="differ"):
    analysis.paired_difference([0.1], [0.0, 0.1])


def test_benchmark_kind():
  assert analysis.benchmark_kind("split_mnist") == "class-incremental"
  assert analysis.benchmark_kind("split_cifar10") == "class-incremental"
  assert analysis.benchmark_kind("rotated_mnist") == "domain-incremental"
  assert analysis.benchmark_kind("domain_cifar100") == "domain-incremental"
  with pytest.raises(ValueError, match="permuted_mnist"):
    analysis.benchmark_kind("permuted_mnist")


# ----------------------------------------------------------------------------
# Ablation variants and reuse


def test_ablation_variants_set_the_constant_gains():
  cfg = TrainConfig(eta=0.5)
  v = analysis.ablation_variants(cfg, mean_gain=1.37)
  assert list(v) == list(analysis.ABLATIONS)
  assert v["g0_sgd_1"] == ("g0_sgd", dataclasses.replace(cfg, const_gain=1.0))
  assert v["g0_sgd_mean"] == ("g0_sgd", dataclasses.replace(cfg, const_gain=1.37))
  assert v["entropy_lr_sgd"] == ("entropy_lr_sgd", cfg)
  assert v["replayed_lr_sgd"] == ("replayed_lr_sgd", cfg)
  assert list(analysis.ablation_variants(cfg, labels=["sgd", "ngm_sgd"])) == ["ngm_sgd", "sgd"]
  with pytest.raises(ValueError, match="'rmsprop'"):
    analysis.ablation_variants(cfg, labels=["rmsprop"])
  with pytest.raises(ValueError, match="time-averaged gain"):
    analysis.ablation_variants(cfg, labels=["g0_sgd_mean"])


def _old_meta(config=FAST_CONFIG, optimizers=("ngm_sgd", "g0_sgd"), seeds=(0, 1)):
  """A run.json as written before labelled variants and newer config fields."""
  train = dataclasses.asdict(config)
  del train["eval_batch_size"], train["backbone_momentum"]
  return {"benchmark": "split_mnist", "num_tasks": 5, "train": train,
          "optimizers": list(optimizers), "seeds": list(seeds), "task1_eval_size": 12}


PROTOCOL = {"benchmark": "split_mnist", "seeds": [0, 1], "task1_eval_size": 12,
            "benchmark_options": {}, "test_subset_per_task": None, "model": "MLP",
            "augment": False}


def test_find_reusable_matches_identical_variants_of_an_older_run():
  meta = _old_meta()
  assert analysis.find_reusable(meta, "ngm_sgd", FAST_CONFIG, PROTOCOL) == ("ngm_sgd", "")
  g0_1 = dataclasses.replace(FAST_CONFIG, const_gain=1.0)
  assert analysis.find_reusable(meta, "g0_sgd", g0_1, PROTOCOL) == ("g0_sgd", "")
  label, why = analysis.find_reusable(meta, "sgd", FAST_CONFIG, PROTOCOL)
  assert label is None and why == "no sgd variant"


@pytest.mark.parametrize("change, match", [
    (dict(eta=0.5), "eta=0.4 \\(not 0.5\\)"),
    (dict(eval_task1_limit=2000), "eval_task1_limit=None \\(not 2000\\)"),
    (dict(const_gain=1.3), "const_gain=1.0"),
])
def test_find_reusable_names_the_differing_config_field(change, match):
  label, why = analysis.find_reusable(
      _old_meta(), "g0_sgd", dataclasses.replace(FAST_CONFIG, **change), PROTOCOL)
  assert label is None
  assert why.startswith("g0_sgd: ") and re.search(match, why)


@pytest.mark.parametrize("key, value, match", [
    ("seeds", [0, 1, 2], "seeds is \\[0, 1\\], not \\[0, 1, 2\\]"),
    ("task1_eval_size", 2000, "task1_eval_size is 12, not 2000"),
    ("benchmark", "rotated_mnist", "benchmark is 'split_mnist'"),
    ("test_subset_per_task", 100, "test_subset_per_task is None"),
])
def test_find_reusable_requires_the_same_protocol(key, value, match):
  label, why = analysis.find_reusable(_old_meta(), "ngm_sgd", FAST_CONFIG,
                                      {**PROTOCOL, key: value})
  assert label is None and re.search(match, why)


def test_find_reusable_skips_variants_with_per_seed_hyperparameters():
  meta = {**_old_meta(optimizers=("replayed_lr_sgd",)),
          "seed_hyperparams": {"replayed_lr_sgd": {"schedule": [2, 30]}}}
  label, why = analysis.find_reusable(meta, "replayed_lr_sgd", FAST_CONFIG, PROTOCOL)
  assert label is None and why == "replayed_lr_sgd: trained with per-seed schedule"


def test_find_reusable_reads_labelled_variants():
  g0 = dataclasses.replace(FAST_CONFIG, const_gain=1.234)
  meta = {**_old_meta(), "optimizers": ["g0=1", "g0=mean"], "model": "MLP",
          "variants": {"g0=1": {"optimizer": "g0_sgd", "train": dataclasses.asdict(FAST_CONFIG)},
                       "g0=mean": {"optimizer": "g0_sgd", "train": dataclasses.asdict(g0)}}}
  assert analysis.find_reusable(meta, "g0_sgd", g0, PROTOCOL) == ("g0=mean", "")
  assert analysis.find_reusable({**meta, "model": "SlimResNet18"}, "g0_sgd", g0,
                                PROTOCOL)[1] == "model is 'SlimResNet18', not 'MLP'"
  with pytest.raises(ValueError, match="unknown protocol key 'device'"):
    analysis.find_reusable(meta, "g0_sgd", g0, {"device": "cpu"})


def _metric(values):
  values = np.asarray(values, np.float64)
  return {"per_seed": values.tolist(), "mean": float(values.mean()),
          "stderr": float(values.std(ddof=1) / math.sqrt(len(values))), "of_mean_curve": None}


def test_ablation_and_comparison_tables():
  metrics = {
      "ngm_sgd": {c: _metric([0.9, 0.8]) for c in ("avg_acc", "avg_min_acc", "wc_acc")}
                 | {"avg_sg": _metric([0.1, 0.2])},
      "g0_sgd_mean": {c: _metric([0.7, 0.8]) for c in ("avg_acc", "avg_min_acc", "wc_acc")}
                     | {"avg_sg": _metric([0.3, 0.3])},
  }
  table = analysis.ablation_table(metrics, {"ngm_sgd": "reused: r"},
                                  {"g0_sgd_mean": "constant gain g0 = ḡ = 1.5"})
  lines = table.splitlines()
  assert lines[0].startswith("| variant | optimizer | tests | avg-ACC (%)") and "curves" in lines[0]
  assert lines[2] == ("| NGM-SGD | `ngm_sgd` | the full mechanism | 85.00 ± 5.00 | 85.00 ± 5.00 |"
                      " 85.00 ± 5.00 | 15.00 ± 5.00 | reused: r |")
  assert lines[3].startswith("| constant gain g0 = ḡ = 1.5 | `g0_sgd` |")
  comp = analysis.comparison_table(metrics).splitlines()
  assert len(comp) == 3  # header, rule, the one comparison whose variants are present
  # avg-SG differences 0.1 − 0.3 = −0.2 and 0.2 − 0.3 = −0.1: mean −15 pp, se 5 pp.
  half = 100 * 0.05 * analysis.student_t_quantile(0.975, 1)
  assert comp[2].endswith(f"| {-15:+.2f} [{-15 - half:+.2f}, {-15 + half:+.2f}] |")
  assert comp[2].startswith("| NGM-SGD − constant gain g0 = ḡ | gain dynamics vs the same"
                            " average gain held constant | 2/2 |")
  # A failed seed is left out of the pairs (one seed left: no interval).
  comp = analysis.comparison_table(metrics, failed={"g0_sgd_mean": [False, True]})
  assert comp.splitlines()[2].endswith("| 1/2 | +20.00 | +20.00 | +20.00 | -20.00 |")  # seed 0
  comp = analysis.comparison_table(metrics, failed={"ngm_sgd": [True, True]})
  assert comp.splitlines()[2].endswith("| 0/2 | n/a | n/a | n/a | n/a |")
  # The failed-seeds column and a row without the failed seeds.
  table = analysis.ablation_table(
      metrics, failed={"ngm_sgd": np.array([False, True]), "g0_sgd_mean": np.zeros(2, bool)},
      without_failed={"ngm_sgd": {c: _metric([0.9, 0.9]) for c in analysis.TABLE_METRICS}})
  lines = table.splitlines()
  assert lines[0].endswith("| failed seeds |") and lines[2].endswith("| 15.00 ± 5.00 | 1/2 |")
  assert lines[3].startswith("| ↳ NGM-SGD, the 1 seeds that did not fail |  |  | 90.00 ± 0.00 |")
  assert lines[4].endswith("| 0/2 |")


def test_gain_trend_table_row():
  gain = np.repeat([[1.0, 2.0, 3.0], [1.0, 3.0, 5.0]], 2, axis=1)
  entry = {"benchmark": "rotated_mnist", "kind": "domain-incremental", "optimizer": "ngm_sgd",
           "seeds": 2, "num_tasks": 3, "iterations_per_task": 2, "eta": 0.5,
           "trend": analysis.gain_trend(gain, 3)}
  settled = {**entry, "trend": analysis.gain_trend(gain, 3, skip=1)}
  rows = analysis.gain_trend_table([entry, settled]).splitlines()
  assert rows[2].startswith("| rotated_mnist | domain-incremental | `ngm_sgd` | 0.5 | 3 × 2 | 2 |"
                            " whole block | 1.000 ± 0.000, 2.500 ± 0.500, 4.000 ± 1.000 |"
                            " +1.5000 | ± 6.3531")
  assert rows[2].endswith("| 2.500 |")
  assert "| iterations 2..2 of each block |" in rows[3]


# ----------------------------------------------------------------------------
# Figures


def _fake_curves(num_seeds=2, num_tasks=5, config=FAST_CONFIG, gain=None, seed=0):
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


def test_plot_ablation_has_three_rows_per_group():
  ngm, its = _fake_curves(gain=np.full((2, 20), 1.5))
  sgd, _ = _fake_curves(seed=1)
  curves = {"ngm_sgd": ngm, "sgd": sgd}
  fig = plots_analysis.plot_ablation(curves, its, 5, 4,
                                     {"a": ["ngm_sgd", "sgd"], "b": ["sgd", "adam"]})
  assert len(fig.axes) == 6
  # The gain row: NGM-SGD's gain, not SGD's (identically 1), and 4 boundaries.
  assert len(fig.axes[4].lines) == 1 + 4 and len(fig.axes[5].lines) == 4
  with pytest.raises(ValueError, match="no group names a variant"):
    plots_analysis.plot_ablation(curves, its, 5, 4, {"c": ["adam"]})
  # A diverged seed is left out of the mean; the legend counts the failed seeds.
  ngm["train_loss"][1, -1] = np.nan
  ngm["gain"][1, -1] = np.nan
  fig = plots_analysis.plot_ablation(curves, its, 5, 4, {"a": ["ngm_sgd"]},
                                     failed={"ngm_sgd": np.array([False, True])})
  assert np.all(np.isfinite(fig.axes[2].lines[0].get_ydata()))
  assert fig.axes[1].get_legend().get_texts()[0].get_text() == (
      "NGM-SGD (1/2 seeds failed; mean of 1)")


def test_plot_gain_readout_one_panel_per_run():
  gain = np.repeat([[1.0, 2.0, 3.0], [1.0, 3.0, 5.0]], 2, axis=1)
  entry = {"benchmark": "rotated_mnist", "kind": "domain-incremental", "optimizer": "ngm_sgd",
           "trend": analysis.gain_trend(gain, 3)}
  fig = plots_analysis.plot_gain_readout([entry, entry])
  assert len(fig.axes) == 2
  assert "whole block: slope +1.500 ± 6.353 (95% CI)/task" in fig.axes[0].get_title()
  fig = plots_analysis.plot_gain_readout(
      [{**entry, "iterations_per_task": 2, "settled": analysis.gain_trend(gain, 3, skip=1)}])
  assert "its 2-2: slope +1.500" in fig.axes[0].get_title()


# ----------------------------------------------------------------------------
# The commands


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  from tests.conftest import fake_mnist, write_mnist_idx
  return write_mnist_idx(tmp_path_factory.mktemp("abl") / "data", fake_mnist())


def test_ablations_command_trains_ngm_then_the_variants_built_from_it(data_dir, tmp_path,
                                                                      capsys):
  out = tmp_path / "abl"
  code = ablations_cli.main(["--benchmark", "split_mnist", "--data-dir", str(data_dir),
                             "--variants", "g0_sgd_mean,replayed_lr_sgd", "--seeds", "2",
                             "--out", str(out), *FAST])
  printed = capsys.readouterr().out
  assert code == 0, printed
  assert "adding ngm_sgd" in printed
  for name in ("ablations.md", "ablations.json", "ablation.png", "ablation_variants.png",
               "table.md", "figure.png", "metrics.json", "curves.npz", "run.json"):
    assert (out / name).stat().st_size > 0, name
  meta = json.loads((out / "run.json").read_text())
  curves, _ = results.load_curves(out / "curves.npz")
  assert list(curves) == meta["optimizers"] == ["ngm_sgd", "g0_sgd_mean", "replayed_lr_sgd"]
  g_bar = analysis.time_averaged_gain(curves["ngm_sgd"]["gain"]).mean
  assert meta["mean_gain"]["value"] == g_bar > 1.0
  assert meta["variants"]["g0_sgd_mean"]["train"]["const_gain"] == g_bar
  np.testing.assert_allclose(curves["g0_sgd_mean"]["gain"], g_bar, rtol=1e-6)
  # Each seed replays its own NGM gain: the gain after each step (but the
  # last, which no step used) is NGM's, and the runs part from NGM's.
  ngm_gain = curves["ngm_sgd"]["gain"]
  assert not np.allclose(ngm_gain[0], ngm_gain[1])
  np.testing.assert_allclose(curves["replayed_lr_sgd"]["gain"][:, :-1], ngm_gain[:, :-1],
                             rtol=1e-6)
  assert meta["seed_hyperparams"] == {"replayed_lr_sgd": {"schedule": [2, 20]}}
  assert meta["sources"] == {"ngm_sgd": "trained here", "g0_sgd_mean": "trained here",
                             "replayed_lr_sgd": "trained here"}
  assert meta["train"]["eval_task1_limit"] is None and meta["task1_eval_size"] == 12
  for folder in ("trained", "trained_mean_gain", "trained_replayed"):
    assert (out / folder / "curves.npz").exists(), folder
  text = (out / "ablations.md").read_text()
  assert f"constant gain g0 = ḡ = {g_bar:.3f}" in text
  assert "NGM's lr·g² replayed" in text and "W_eff = g·W on top of NGM's own step sizes" in text


def _write_run(folder, meta, curves, iterations):
  folder.mkdir(parents=True)
  results.save_curves(folder / "curves.npz", curves, iterations)
  results.write_json(folder / "run.json", meta)


def test_ablations_command_reuses_identical_variants(data_dir, tmp_path, capsys):
  gain = np.stack([np.linspace(1.0, 2.0, 20), np.full(20, 1.7)])  # ḡ = (1.5 + 1.7) / 2
  g_bar = analysis.time_averaged_gain(gain).mean
  ngm, its = _fake_curves(gain=gain)
  reset, _ = _fake_curves(seed=3)
  const, _ = _fake_curves(gain=np.full((2, 20), g_bar), seed=4)
  # An older run holds NGM-SGD; a labelled-variants run (unfinished) the reset
  # ablation, the constant gain at ḡ, and a constant gain at ḡ with another η.
  main = tmp_path / "main"
  _write_run(main, {**_old_meta(optimizers=("ngm_sgd",)), "wall_s": 1.0},
             {"ngm_sgd": ngm}, its)
  other = tmp_path / "other"
  at_mean = dataclasses.replace(FAST_CONFIG, const_gain=g_bar)
  variants = {"msgd_reset": ("msgd_reset", FAST_CONFIG),
              "g0 other eta": ("g0_sgd", dataclasses.replace(at_mean, eta=0.3)),
              "g0 at mean": ("g0_sgd", at_mean)}
  _write_run(other, {**_old_meta(optimizers=variants),
                     "variants": {l: {"optimizer": n, "train": dataclasses.asdict(c)}
                                  for l, (n, c) in variants.items()}},
             {"msgd_reset": reset, "g0 other eta": const, "g0 at mean": const}, its)
  out = tmp_path / "abl"
  argv = ["--benchmark", "split_mnist", "--data-dir", str(data_dir), "--variants",
          "ngm_sgd,g0_sgd_mean,msgd_reset", "--seeds", "2", "--out", str(out),
          "--reuse", str(main), str(other), *FAST]
  assert ablations_cli.main(argv) == 0
  printed = capsys.readouterr().out
  assert f"ngm_sgd         reused: {main} (ngm_sgd)" in printed
  assert f"msgd_reset      reused: {other} (msgd_reset; that run was still in progress)" in printed
  assert f"g0_sgd_mean     reused: {other} (g0 at mean;" in printed
  assert "ḡ = 1.600000" in printed
  meta = json.loads((out / "run.json").read_text())
  assert meta["mean_gain"]["value"] == g_bar == pytest.approx(1.6)
  assert meta["variants"]["g0_sgd_mean"]["train"]["const_gain"] == g_bar
  curves, _ = results.load_curves(out / "curves.npz")
  for label, source in (("ngm_sgd", ngm), ("msgd_reset", reset), ("g0_sgd_mean", const)):
    np.testing.assert_array_equal(curves[label]["task1_acc"], source["task1_acc"])
  assert not (out / "trained").exists() and not (out / "trained_mean_gain").exists()
  text = (out / "ablations.md").read_text()
  assert "task identity" in text and "Curves reused" in text
  assert "msgd_reset reset the optimizer state" in (out / "table.md").read_text()
  # The output now holds a run: a second call refuses without --overwrite.
  assert ablations_cli.main(argv) == 2
  assert "--overwrite" in capsys.readouterr().err
  # --remake makes tables and figures again from the saved curves alone.
  (out / "ablations.md").unlink()
  (out / "ablation.png").unlink()
  assert ablations_cli.main(["--remake", str(out)]) == 0
  assert (out / "ablations.md").read_text() == text and (out / "ablation.png").exists()


@pytest.mark.parametrize("argv, expected", [
    (["--benchmark", "split_cifar"], "Unknown benchmark 'split_cifar'"),
    (["--benchmark", "split_mnist", "--reuse", "/nonexistent/run"], "holds no saved run"),
    (["--benchmark", "split_mnist", "--seeds", "0"], "--seeds 0"),
    (["--seeds", "2"], "give --benchmark (to train) or --remake DIR"),
    (["--remake", "/nonexistent/abl"], "holds no saved ablations"),
])
def test_ablations_bad_input_gives_one_clear_line(argv, expected, capsys, tmp_path):
  assert ablations_cli.main(argv + ["--out", str(tmp_path / "o")]) == 2
  err = capsys.readouterr().err
  assert expected in err and "Traceback" not in err


@pytest.mark.parametrize("argv, expected", [
    (["--variants", "ngm_sgd,rmsprop"], "unknown variant(s) ['rmsprop']; choose from ngm_sgd,"),
    (["--eval-task1-limit", "0"], "--eval-task1-limit '0': an integer >= 1, or 'all'"),
])
def test_ablations_usage_errors(argv, expected, capsys):
  with pytest.raises(SystemExit) as exit_info:
    ablations_cli.main(["--benchmark", "split_mnist", *argv])
  assert exit_info.value.code == 2
  assert expected in capsys.readouterr().err


def _readout_run(folder, benchmark, num_tasks, block_gains, optimizer="ngm_sgd"):
  """A saved run whose NGM gain is constant within each block."""
  config = dataclasses.replace(FAST_CONFIG, eta=0.5)
  gain = np.repeat(np.asarray(block_gains, np.float64), config.iterations_per_task, axis=1)
  curves, its = _fake_curves(num_seeds=len(block_gains), num_tasks=num_tasks, config=config,
                             gain=gain)
  meta = {**_old_meta(config, optimizers=(optimizer,)), "benchmark": benchmark,
          "num_tasks": num_tasks, "wall_s": 1.0}
  _write_run(folder, meta, {optimizer: curves}, its)
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
