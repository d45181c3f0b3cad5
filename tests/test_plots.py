"""Figures: what each draws, the log-scale band, the sensitivity layout, and
that drawing never touches pyplot or the process's matplotlib backend."""

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest

from ngm_jax import plots, plots_analysis
from ngm_jax import two_timescale as tt
from ngm_jax.gain_analysis import gain_trend
from ngm_jax.plots_ablation import plot_ablation, plot_gain_readout
from ngm_jax.train import TrainConfig
from tests.fake_runs import fake_curves

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  env.pop("MPLBACKEND", None)
  return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)


def test_drawing_never_loads_pyplot_or_changes_the_backend(tmp_path):
  code = f"""
import sys, matplotlib
matplotlib.use("svg")
import numpy as np
from ngm_jax import plots, plots_analysis, plots_ablation
from ngm_jax import two_timescale as tt
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
plots_analysis.plot_proof_of_principle(tt.simulate(20), path={str(tmp_path / 'p.png')!r})
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
print("ok")
"""
  done = _python(code)
  assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
  assert (tmp_path / "p.png").stat().st_size > 0


def test_the_analysis_modules_never_import_matplotlib():
  # The package's __init__ is left out: what it imports is not these modules' doing.
  code = f"""
import sys, types
package = types.ModuleType("ngm_jax")
package.__path__ = [{str(ROOT / 'ngm_jax')!r}]
sys.modules["ngm_jax"] = package
import ngm_jax.stats, ngm_jax.metrics, ngm_jax.gain_analysis, ngm_jax.failures, ngm_jax.analysis
loaded = sorted(m for m in sys.modules if m.startswith(("matplotlib", "scipy")))
print(",".join(loaded) or "none")
"""
  done = _python(code)
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip() == "none"  # scipy.stats too: only a confidence interval loads it


def test_mean_band_keeps_a_log_axis_lower_edge_positive():
  x = np.arange(4)
  # Seeds [0, 0, 5.1] at x = 0: mean − s.e. is 0 exactly, but computes as 2.2e-16;
  # a seed far above two equal ones at x = 1, 2; all equal at x = 3 (s.e. 0).
  values = np.array([[0.0, 1e-3, 0.02, 0.2],
                     [0.0, 1e-3, 0.02, 0.2],
                     [5.1, 1e3, 40.0, 0.2]])
  fig = plots.new_figure()
  ax = fig.subplots()
  ax.set_yscale("log")
  mean, se = plots.mean_band(ax, x, values, "k", "loss")
  np.testing.assert_allclose(mean, values.mean(axis=0))
  low = ax.collections[0].get_paths()[0].vertices[:, 1]
  assert low.min() == pytest.approx(1e-3, rel=1e-6)  # the lowest seed's value at x = 1
  lin = plots.new_figure().subplots()  # a linear axis draws mean − s.e. as it is
  plots.mean_band(lin, x, values, "k", "loss")
  assert lin.collections[0].get_paths()[0].vertices[:, 1].min() == pytest.approx(
      float(np.min(mean - se)), abs=1e-12)
  fig.draw_without_rendering()
  assert ax.get_ylim()[0] > 1e-4  # before: ~1e-16


def test_stability_gap_loss_axis_is_not_stretched_by_a_zero_loss():
  ngm, its = fake_curves(gain=np.full((3, 20), 1.5), num_seeds=3)
  ngm["task1_loss"][:2, 3] = 0.0  # two seeds reach a loss of exactly 0 (float32 underflow)
  ngm["task1_loss"][2, 3] = 5.1  # mean − s.e. computes as 2.2e-16, not 0
  fig = plots.plot_stability_gap({"ngm_sgd": ngm}, its, 5, 4)
  fig.draw_without_rendering()
  bottom = fig.axes[1].get_ylim()[0]
  assert bottom >= 0.5 * ngm["task1_loss"][ngm["task1_loss"] > 0].min()


def _two_minima_below_the_axis():
  """SGD and its identical twin g0_sgd, NGM-SGD settled high, and MSGD and Adam
  both collapsing right after the first boundary (two labels there)."""
  config = TrainConfig(iterations_per_task=40, batch_size=8, task_eval_every=10)
  sgd, its = fake_curves(config=config, seed=1)
  ngm, _ = fake_curves(config=config, gain=np.full_like(sgd["gain"], 1.5), seed=2)
  msgd, _ = fake_curves(config=config, seed=3)
  adam, _ = fake_curves(config=config, seed=4)
  for c in (sgd, ngm, msgd, adam):
    c["task1_acc"][:] = 0.97
  msgd["task1_acc"][:, 41] = 0.0  # Task 1 collapses right after the first boundary
  adam["task1_acc"][:, 42] = 0.4
  curves = {"ngm_sgd": ngm, "sgd": sgd, "msgd": msgd, "adam": adam,
            "g0_sgd": {k: v.copy() for k, v in sgd.items()}}
  return curves, its


def test_stability_gap_legend_names_coinciding_curves_and_the_markers():
  curves, its = _two_minima_below_the_axis()
  fig = plots.plot_stability_gap(curves, its, 5, 40, title="Split MNIST (2 seeds)")
  legend = fig.legends[0]
  assert legend.get_title().get_text() == "Split MNIST (2 seeds)"
  texts = [t.get_text() for t in legend.get_texts()]
  assert texts[:4] == ["NGM-SGD", "SGD", "MSGD", "Adam"]
  assert texts[4] == "constant gain (= SGD, same curves)"  # drawn dashed over SGD's
  assert texts[5:] == ["Task-1 minimum after each task switch",
                       "minimum below the axis (value written)"]
  g0_line = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("constant")]
  assert g0_line[0].get_linestyle() == "--"


def test_stability_gap_gives_every_optimizer_its_own_colour():
  curves, its = _two_minima_below_the_axis()
  curves["ema_sgd"] = {k: v + 0.01 for k, v in curves["sgd"].items()}
  curves["warmup_sgd"] = {k: v + 0.02 for k, v in curves["sgd"].items()}
  fig = plots.plot_stability_gap(curves, its, 5, 40)
  lines = [line for line in fig.axes[0].get_lines() if line.get_marker() == "None"
           and not line.get_label().startswith("_")]
  colours = [matplotlib.colors.to_hex(line.get_color()) for line in lines]
  assert len(lines) == 7 and len(set(colours)) == 7, colours


def test_stability_gap_labels_overlap_neither_each_other_nor_a_marker():
  curves, its = _two_minima_below_the_axis()
  fig = plots.plot_stability_gap(curves, its, 5, 40)
  fig.draw_without_rendering()
  ax = fig.axes[0]
  labels = [t for t in ax.texts if t.get_text().startswith("min ")]
  assert sorted(t.get_text() for t in labels) == ["min 0%", "min 40%"]
  boxes = [t.get_bbox_patch().get_window_extent() for t in labels]
  assert not boxes[0].overlaps(boxes[1])
  markers = [line for line in ax.get_lines() if line.get_marker() in ("o", "v")]
  assert markers
  for line in markers:
    x, y = ax.transData.transform(np.column_stack(line.get_data()))[0]
    size = line.get_markersize() * fig.dpi / 72  # the marker's extent in pixels
    for box in boxes:
      assert (box.x1 < x - size / 2 or box.x0 > x + size / 2
              or box.y1 < y - size / 2 or box.y0 > y + size / 2), (line, box)


def test_the_run_title_is_the_benchmarks_display_name():
  from ngm_jax.results import display_name
  assert display_name({"benchmark": "split_mnist"}) == "Split MNIST"
  assert display_name({"benchmark": "split_mnist", "benchmark_label": "Fashion"}) == "Fashion"
  assert display_name({"benchmark": "my_stream", "benchmark_label": None}) == "my_stream"


def _blank_border(path):
  image = matplotlib.image.imread(path)[..., :3]
  border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
  return bool(np.all(border > 0.99))


def test_sensitivity_heatmap_keeps_its_title_and_labels_inside(tmp_path):
  # A 2 x 2 grid makes a narrow figure, narrower than its title.
  rng = np.random.default_rng(0)
  grids = {m: {"mean": rng.uniform(0, 1, (2, 2)), "stderr": rng.uniform(0, 0.01, (2, 2))}
           for m in ("avg_sg", "avg_acc")}
  fig = plots_analysis.plot_sensitivity(grids, [0.1, 0.4], [0.9, 0.95], default=(0.4, 0.9),
                                        title="a long title " * 8)
  assert len(fig.axes) == 4  # two heatmaps, two colour bars
  assert len(fig.axes[0].patches) == 1  # the default (η, γ) boxed
  plots_analysis.plot_sensitivity(grids, [0.1, 0.4], [0.9, 0.95], title="a long title " * 8,
                                  path=tmp_path / "h.png")
  assert _blank_border(tmp_path / "h.png")  # nothing runs off the edge of the image


def test_proof_of_principle_and_curvature_figures(tmp_path):
  fig = plots_analysis.plot_proof_of_principle(tt.simulate(40))
  assert len(fig.axes) == 3
  points = [{"iteration": b + d, "boundary": b, "lambda_raw": 4.0 * (1 + d),
             "lambda_eff": 1.0 * (1 + d), "gain": 2.0} for b in (4, 8) for d in (0, 1, 2)]
  fig = plots_analysis.plot_curvature(points, np.full(12, 2.0), 4, learning_rate=0.1,
                                      title="t")
  assert len(fig.axes) == 4
  assert fig.axes[0].get_title() == "task 1 → 2" and fig.axes[1].get_title() == "task 2 → 3"
  assert plots_analysis.plot_curvature(points, np.full(12, 2.0), 4,
                                       path=tmp_path / "c.png") is None
  assert _blank_border(tmp_path / "c.png")


def test_plot_ablation_has_three_rows_per_group():
  ngm, its = fake_curves(gain=np.full((2, 20), 1.5))
  sgd, _ = fake_curves(seed=1)
  curves = {"ngm_sgd": ngm, "sgd": sgd}
  fig = plot_ablation(curves, its, 5, 4,
                       {"a": ["ngm_sgd", "sgd"], "b": ["sgd", "adam"]})
  assert len(fig.axes) == 6
  # The gain row: NGM-SGD's gain, not SGD's (identically 1), and 4 boundaries.
  assert len(fig.axes[4].lines) == 1 + 4 and len(fig.axes[5].lines) == 4
  with pytest.raises(ValueError, match="no group names a variant"):
    plot_ablation(curves, its, 5, 4, {"c": ["adam"]})
  # A diverged seed is left out of the mean; the legend counts the failed seeds.
  ngm["train_loss"][1, -1] = np.nan
  ngm["gain"][1, -1] = np.nan
  fig = plot_ablation(curves, its, 5, 4, {"a": ["ngm_sgd"]},
                       failed={"ngm_sgd": np.array([False, True])})
  assert np.all(np.isfinite(fig.axes[2].lines[0].get_ydata()))
  assert fig.axes[1].get_legend().get_texts()[0].get_text() == (
      "NGM-SGD (1/2 seeds failed; mean of 1)")
  # Names, styles, and a constant gain of 1 drawn in the gain row.
  g0, _ = fake_curves(seed=2)
  fig = plot_ablation({"g0": g0, "sgd": sgd}, its, 5, 4, {"a": ["g0", "sgd"]},
                      names={"g0": "constant gain g0 = 1"}, styles={"g0": ("tab:purple", "--")},
                      constant_gain=["g0"])
  assert len(fig.axes[2].lines) == 1 + 4
  line = fig.axes[1].lines[0]
  assert line.get_label() == "constant gain g0 = 1" and line.get_linestyle() == "--"
  assert fig.axes[1].lines[1].get_label() == "SGD"


def test_plot_gain_readout_one_panel_per_run():
  gain = np.repeat([[1.0, 2.0, 3.0], [1.0, 3.0, 5.0]], 2, axis=1)
  entry = {"benchmark": "rotated_mnist", "kind": "domain-incremental", "optimizer": "ngm_sgd",
           "trend": gain_trend(gain, 3)}
  fig = plot_gain_readout([entry, entry])
  assert len(fig.axes) == 2
  assert "whole block: slope +1.500 ± 6.353 (95% CI)/task" in fig.axes[0].get_title()
  fig = plot_gain_readout(
      [{**entry, "iterations_per_task": 2, "settled": gain_trend(gain, 3, skip=1)}])
  assert "its 2-2: slope +1.500" in fig.axes[0].get_title()
