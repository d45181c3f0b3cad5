"""The ablation registry, the reuse of saved variants, the ablation tables,
and the ablations command end to end on tiny data."""

import dataclasses
import json
import math
import re

import numpy as np
import pytest

from experiments import ablation_registry, saved_runs
from experiments import ablations as ablations_cli
from ngm_jax import results
from ngm_jax.gain_analysis import time_averaged_gain
from ngm_jax.metrics import TABLE_METRICS
from ngm_jax.train import TrainConfig
from tests.fake_runs import (FAST, FAST_CONFIG, PROTOCOL, fake_curves, metric_entry, old_meta,
                             write_run)


# ----------------------------------------------------------------------------
# Variants, reuse, tables


def test_ablation_variants_set_the_constant_gains():
  cfg = TrainConfig(eta=0.5)
  v = ablation_registry.ablation_variants(cfg, mean_gain=1.37)
  assert list(v) == list(ablation_registry.ABLATIONS)
  assert v["g0_sgd_1"] == ("g0_sgd", dataclasses.replace(cfg, const_gain=1.0))
  assert v["g0_sgd_mean"] == ("g0_sgd", dataclasses.replace(cfg, const_gain=1.37))
  assert v["entropy_lr_sgd"] == ("entropy_lr_sgd", cfg)
  assert v["replayed_lr_sgd"] == ("replayed_lr_sgd", cfg)
  assert list(ablation_registry.ablation_variants(cfg, labels=["sgd", "ngm_sgd"])) == ["ngm_sgd", "sgd"]
  with pytest.raises(ValueError, match="'rmsprop'"):
    ablation_registry.ablation_variants(cfg, labels=["rmsprop"])
  with pytest.raises(ValueError, match="time-averaged gain"):
    ablation_registry.ablation_variants(cfg, labels=["g0_sgd_mean"])


def test_find_reusable_matches_identical_variants_of_an_older_run():
  meta = old_meta()
  assert saved_runs.find_reusable(meta, "ngm_sgd", FAST_CONFIG, PROTOCOL) == ("ngm_sgd", "")
  g0_1 = dataclasses.replace(FAST_CONFIG, const_gain=1.0)
  assert saved_runs.find_reusable(meta, "g0_sgd", g0_1, PROTOCOL) == ("g0_sgd", "")
  label, why = saved_runs.find_reusable(meta, "sgd", FAST_CONFIG, PROTOCOL)
  assert label is None and why == "no sgd variant"


@pytest.mark.parametrize("change, match", [
    (dict(eta=0.5), "eta=0.4 \\(not 0.5\\)"),
    (dict(eval_task1_limit=2000), "eval_task1_limit=None \\(not 2000\\)"),
    (dict(const_gain=1.3), "const_gain=1.0"),
])
def test_find_reusable_names_the_differing_config_field(change, match):
  label, why = saved_runs.find_reusable(
      old_meta(), "g0_sgd", dataclasses.replace(FAST_CONFIG, **change), PROTOCOL)
  assert label is None
  assert why.startswith("g0_sgd: ") and re.search(match, why)


@pytest.mark.parametrize("key, value, match", [
    ("seeds", [0, 1, 2], "seeds is \\[0, 1\\], not \\[0, 1, 2\\]"),
    ("task1_eval_size", 2000, "task1_eval_size is 12, not 2000"),
    ("benchmark", "rotated_mnist", "benchmark is 'split_mnist'"),
    ("test_subset_per_task", 100, "test_subset_per_task is None"),
])
def test_find_reusable_requires_the_same_protocol(key, value, match):
  label, why = saved_runs.find_reusable(old_meta(), "ngm_sgd", FAST_CONFIG,
                                      {**PROTOCOL, key: value})
  assert label is None and re.search(match, why)


def test_find_reusable_skips_variants_with_per_seed_hyperparameters():
  meta = {**old_meta(optimizers=("replayed_lr_sgd",)),
          "seed_hyperparams": {"replayed_lr_sgd": {"schedule": [2, 30]}}}
  label, why = saved_runs.find_reusable(meta, "replayed_lr_sgd", FAST_CONFIG, PROTOCOL)
  assert label is None and why == "replayed_lr_sgd: trained with per-seed schedule"


def test_find_reusable_reads_labelled_variants():
  g0 = dataclasses.replace(FAST_CONFIG, const_gain=1.234)
  meta = {**old_meta(), "optimizers": ["g0=1", "g0=mean"], "model": "MLP",
          "variants": {"g0=1": {"optimizer": "g0_sgd", "train": dataclasses.asdict(FAST_CONFIG)},
                       "g0=mean": {"optimizer": "g0_sgd", "train": dataclasses.asdict(g0)}}}
  assert saved_runs.find_reusable(meta, "g0_sgd", g0, PROTOCOL) == ("g0=mean", "")
  assert saved_runs.find_reusable({**meta, "model": "SlimResNet18"}, "g0_sgd", g0,
                                PROTOCOL)[1] == "model is 'SlimResNet18', not 'MLP'"
  with pytest.raises(ValueError, match="unknown protocol key 'device'"):
    saved_runs.find_reusable(meta, "g0_sgd", g0, {"device": "cpu"})


def test_ablation_and_comparison_tables():
  metrics = {
      "ngm_sgd": {c: metric_entry([0.9, 0.8]) for c in ("avg_acc", "avg_min_acc", "wc_acc")}
                 | {"avg_sg": metric_entry([0.1, 0.2])},
      "g0_sgd_mean": {c: metric_entry([0.7, 0.8]) for c in ("avg_acc", "avg_min_acc", "wc_acc")}
                     | {"avg_sg": metric_entry([0.3, 0.3])},
  }
  table = ablation_registry.ablation_table(metrics, {"ngm_sgd": "reused: r"},
                                  {"g0_sgd_mean": "constant gain g0 = ḡ = 1.5"})
  lines = table.splitlines()
  assert lines[0].startswith("| variant | optimizer | tests | avg-ACC (%)") and "curves" in lines[0]
  assert lines[2] == ("| NGM-SGD | `ngm_sgd` | the full mechanism | 85.00 ± 5.00 | 85.00 ± 5.00 |"
                      " 85.00 ± 5.00 | 15.00 ± 5.00 | reused: r |")
  assert lines[3].startswith("| constant gain g0 = ḡ = 1.5 | `g0_sgd` |")
  comp = ablation_registry.comparison_table(metrics).splitlines()
  assert len(comp) == 3  # header, rule, the one comparison whose variants are present
  # avg-SG differences 0.1 − 0.3 = −0.2 and 0.2 − 0.3 = −0.1: mean −15 pp, se 5 pp;
  # t(0.975, 1) = tan(0.475·π) = 12.7062.
  half = 100 * 0.05 * math.tan(0.475 * math.pi)
  assert comp[2].endswith(f"| {-15:+.2f} [{-15 - half:+.2f}, {-15 + half:+.2f}] |")
  assert comp[2].startswith("| NGM-SGD − constant gain g0 = ḡ | gain dynamics vs the same"
                            " average gain held constant | 2/2 |")
  # A failed seed is left out of the pairs (one seed left: no interval).
  comp = ablation_registry.comparison_table(metrics, failed={"g0_sgd_mean": [False, True]})
  assert comp.splitlines()[2].endswith("| 1/2 | +20.00 | +20.00 | +20.00 | -20.00 |")  # seed 0
  comp = ablation_registry.comparison_table(metrics, failed={"ngm_sgd": [True, True]})
  assert comp.splitlines()[2].endswith("| 0/2 | n/a | n/a | n/a | n/a |")
  # The failed-seeds column and a row without the failed seeds.
  table = ablation_registry.ablation_table(
      metrics, failed={"ngm_sgd": np.array([False, True]), "g0_sgd_mean": np.zeros(2, bool)},
      without_failed={"ngm_sgd": {c: metric_entry([0.9, 0.9]) for c in TABLE_METRICS}})
  lines = table.splitlines()
  assert lines[0].endswith("| failed seeds |") and lines[2].endswith("| 15.00 ± 5.00 | 1/2 |")
  assert lines[3].startswith("| ↳ NGM-SGD, the 1 seeds that did not fail |  |  | 90.00 ± 0.00 |")
  assert lines[4].endswith("| 0/2 |")


# ----------------------------------------------------------------------------
# The command


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  from tests.conftest import fake_mnist, write_mnist_idx
  return write_mnist_idx(tmp_path_factory.mktemp("abl") / "data", fake_mnist())


@pytest.mark.slow
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
  g_bar = time_averaged_gain(curves["ngm_sgd"]["gain"]).mean
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


def test_ablations_command_reuses_identical_variants(data_dir, tmp_path, capsys):
  gain = np.stack([np.linspace(1.0, 2.0, 20), np.full(20, 1.7)])  # ḡ = (1.5 + 1.7) / 2
  g_bar = time_averaged_gain(gain).mean
  ngm, its = fake_curves(gain=gain)
  reset, _ = fake_curves(seed=3)
  const, _ = fake_curves(gain=np.full((2, 20), g_bar), seed=4)
  # An older run holds NGM-SGD; a labelled-variants run (unfinished) the reset
  # ablation, the constant gain at ḡ, and a constant gain at ḡ with another η.
  main = tmp_path / "main"
  write_run(main, {**old_meta(optimizers=("ngm_sgd",)), "wall_s": 1.0},
             {"ngm_sgd": ngm}, its)
  other = tmp_path / "other"
  at_mean = dataclasses.replace(FAST_CONFIG, const_gain=g_bar)
  variants = {"msgd_reset": ("msgd_reset", FAST_CONFIG),
              "g0 other eta": ("g0_sgd", dataclasses.replace(at_mean, eta=0.3)),
              "g0 at mean": ("g0_sgd", at_mean)}
  write_run(other, {**old_meta(optimizers=variants),
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
    (["--variants", "ngm_sgd,rmsprop"], "unknown variant(s) rmsprop; choose from ngm_sgd,"),
    (["--eval-task1-limit", "0"], "--eval-task1-limit '0': an integer >= 1, or 'all'"),
])
def test_ablations_usage_errors(argv, expected, capsys):
  with pytest.raises(SystemExit) as exit_info:
    ablations_cli.main(["--benchmark", "split_mnist", *argv])
  assert exit_info.value.code == 2
  assert expected in capsys.readouterr().err
