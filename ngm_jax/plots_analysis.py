"""Figures of the mechanism analyses: the proof of principle (the scalar
model), the curvature around task boundaries, and NGM-SGD's sensitivity to
η and γ.

Figures are made outside pyplot (:func:`ngm_jax.plots.new_figure`): drawing
never touches the process's matplotlib backend.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from matplotlib.patches import Rectangle
import numpy as np

from ngm_jax.metrics import METRIC_LABELS
from ngm_jax.plots import COLOURS, finish, new_figure
from ngm_jax.two_timescale import loss_landscape

__all__ = ["plot_proof_of_principle", "plot_curvature", "plot_sensitivity"]

_NGM = COLOURS["ngm_sgd"]
_SLOW = COLOURS["sgd"]


def plot_proof_of_principle(
    result: Mapping[str, Any],
    path: str | os.PathLike | None = None,
    span: float | None = None,
):
  """The paper's Figure 2 from :func:`ngm_jax.two_timescale.simulate`.

  Left, the output ``y`` against step for the gain-modulated learner
  (``y = g·w·x``), the fast + slow model (``y = (w_fast + w_slow)·x``, dashed:
  it lies on the gain-modulated line) and the slow-only learner, with the two
  components ``w_slow·x`` and ``w_fast·x``, the target ``T`` (the steps after
  the switch to ``T2`` shaded) and the step of peak gain (dashed); below it,
  the gain ``g``. Right, at the step of peak gain, the loss
  ``½·(T − y)²`` as a function of the raw weight ``W`` (``y = g·W·x``) and as
  a function of ``W_eff`` (``y = W_eff·x``), each over its own coordinate
  ``± span`` around the current point (dots), annotated with both curvatures
  and their ratio ``d²L/dW_eff² / d²L/dW² = 1/g²``.

  Args:
    result: the dict returned by :func:`~ngm_jax.two_timescale.simulate`.
    path: if given, the figure is saved there (:func:`ngm_jax.plots.finish`).
    span: half-width of the right panel's weight ranges (default
      ``1.5·|T2 − T1| / |x|``, or ``1.5 / |x|`` when ``T1 = T2``).

  Returns:
    The :class:`~matplotlib.figure.Figure` (``None`` when saved to ``path``).
  """
  s = result["settings"]
  gm, fs, so = (_to_np(result[k]) for k in ("gain_modulated", "fast_slow", "slow_only"))
  target = np.asarray(result["target"])
  steps = np.arange(len(target))
  switch, peak = int(result["switch_step"]), int(result["peak_gain_step"])
  x = float(s["x"])

  fig = new_figure(figsize=(11, 4.6))
  grid = fig.add_gridspec(2, 2, height_ratios=(3, 1), width_ratios=(1.35, 1))
  ax_y = fig.add_subplot(grid[0, 0])
  ax_g = fig.add_subplot(grid[1, 0], sharex=ax_y)
  ax_l = fig.add_subplot(grid[:, 1])

  for ax in (ax_y, ax_g):
    ax.axvspan(switch - 0.5, steps[-1] + 0.5, color="k", alpha=0.07, lw=0,
               label=f"after the switch, T = T2 = {s['t2']:g}")
    ax.axvline(peak, color=_NGM, ls="--", lw=1, label=f"peak gain (step {peak})")
    ax.grid(alpha=0.2)
  ax_y.plot(steps, target, color="k", lw=1, drawstyle="steps-mid", label="target T")
  ax_y.plot(steps, so["y"], color=_SLOW, lw=1.6, label="slow only (g = g0)")
  ax_y.plot(steps, gm["y"], color=_NGM, lw=2.2, label="gain-modulated, g·w·x")
  ax_y.plot(steps, fs["y"], color="k", lw=1.1, ls=(0, (4, 3)),
            label="fast + slow, (w_fast + w_slow)·x")
  ax_y.plot(steps, fs["w_slow"] * x, color="tab:brown", lw=0.9, ls=":",
            label="slow part w_slow·x = g0·w·x")
  ax_y.plot(steps, fs["w_fast"] * x, color=_NGM, lw=0.9, ls=":",
            label="fast part w_fast·x = (g − g0)·w·x")
  ax_y.set_ylabel("output y")
  ax_y.legend(loc="upper left", fontsize=7, framealpha=0.9)
  ax_y.set_title("scalar model y = W_eff·x, target switch at step"
                 f" {switch}", fontsize=10)
  ax_y.tick_params(labelbottom=False)
  ax_g.plot(steps, gm["gain"], color=_NGM, lw=1.5)
  ax_g.axhline(s["g0"], color="k", lw=0.7, ls=":")
  ax_g.set_ylabel("gain g")
  ax_g.set_xlabel("step")
  ax_g.set_xlim(steps[0], steps[-1])

  g, w, t_peak = float(gm["gain"][peak]), float(gm["w"][peak]), float(target[peak])
  if span is None:
    span = 1.5 * (abs(s["t2"] - s["t1"]) or 1.0) / abs(x)
  land = _to_np(loss_landscape(w, g, x=x, target=t_peak, span=span))
  ax_l.plot(land["w_grid"], land["loss_w"], color=_NGM, lw=2,
            label="L against raw W  (y = g·W·x)")
  ax_l.plot(land["w_eff_grid"], land["loss_w_eff"], color="k", lw=1.5,
            label="L against W_eff  (y = W_eff·x)")
  ax_l.plot([land["w"]], [land["loss"]], "o", color=_NGM, ms=6)
  ax_l.plot([land["w_eff"]], [land["loss"]], "o", color="k", ms=5)
  c_w, c_eff = float(land["curvature_w"]), float(land["curvature_w_eff"])
  ax_l.text(
      0.03, 0.97,
      f"at peak gain (step {peak}): g = {g:.3f}, T = {t_peak:g}\n"
      f"d²L/dW² = g²·x² = {c_w:.3f}\n"
      f"d²L/dW_eff² = x² = {c_eff:.3f}\n"
      f"W_eff curvature / W curvature = 1/g² = {c_eff / c_w:.3f}",
      transform=ax_l.transAxes, va="top", fontsize=8,
      bbox=dict(boxstyle="round", fc="white", ec="0.7"))
  ax_l.set_xlabel("weight value (W or W_eff); dots: current point")
  ax_l.set_ylabel("loss ½(T − y)²")
  ax_l.set_ylim(0, None)
  ax_l.legend(loc="upper right", fontsize=8, bbox_to_anchor=(1.0, 0.72))
  ax_l.grid(alpha=0.2)
  ax_l.set_title("loss seen in W and in W_eff at peak gain", fontsize=10)
  return finish(fig, path)


def _to_np(tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """A flat dict of arrays → the same dict of NumPy float64 arrays."""
  return {k: np.asarray(v, np.float64) for k, v in tree.items()}


def plot_curvature(
    points: Sequence[Mapping[str, float]],
    gain: np.ndarray,
    iterations_per_task: int,
    learning_rate: float | None = None,
    title: str = "",
    path: str | os.PathLike | None = None,
):
  """Top Hessian eigenvalues around each task boundary, with the gain.

  One column per task boundary ``b``, zoomed on the measured iterations
  around it. Top (log scale): ``λ_W``, the top eigenvalue in the raw params
  (filled dots); ``g²·λ_Weff`` (open circles, on the dots when
  ``λ_W = g²·λ_Weff``); ``λ_Weff``, in the effective params (squares); and
  ``2/lr`` (dashed), above which a step of ``lr`` on ``W`` is unstable along
  the top direction. Bottom: ``g²`` after every iteration (line) and the
  measured ratio ``λ_W/λ_Weff`` (dots). The dotted line is the boundary: the
  first step of the new task is iteration ``b + 1``.

  Args:
    points: one mapping per measurement with ``iteration``, ``boundary``,
      ``lambda_raw``, ``lambda_eff`` and ``gain``.
    gain: ``[T]`` the gain after each iteration ``1..T``.
    iterations_per_task: I (the boundaries are multiples of it).
    learning_rate: if given, the ``2/lr`` line is drawn.
    title: figure title.
    path: if given, the figure is saved there (:func:`ngm_jax.plots.finish`).

  Returns:
    The :class:`~matplotlib.figure.Figure` (``None`` when saved to ``path``).
  """
  field = lambda name: np.array([p[name] for p in points], np.float64)
  it, bound = field("iteration"), field("boundary")
  lam_w, lam_eff, g2 = field("lambda_raw"), field("lambda_eff"), field("gain") ** 2
  gain = np.asarray(gain, np.float64)
  boundaries = sorted(set(bound.astype(int).tolist()))
  fig = new_figure(figsize=(3.1 * len(boundaries) + 1, 5.6))
  axes = fig.subplots(2, len(boundaries), sharey="row", sharex="col", height_ratios=(1.5, 1),
                      squeeze=False)
  for col, b in enumerate(boundaries):
    ax_l, ax_g = axes[0, col], axes[1, col]
    sel = bound == b
    lo, hi = int(it[sel].min()) - 3, int(it[sel].max()) + 3
    ax_l.plot(it[sel], lam_w[sel], "o-", color=_NGM, ms=5, lw=0.8, label="λ_W (raw W)")
    ax_l.plot(it[sel], g2[sel] * lam_eff[sel], "o", mfc="none", mec="k", ms=9,
              label="g²·λ_Weff")
    ax_l.plot(it[sel], lam_eff[sel], "s-", color="tab:blue", ms=4, lw=0.8,
              label="λ_Weff (W_eff)")
    if learning_rate:
      ax_l.axhline(2.0 / learning_rate, color="k", ls="--", lw=0.8,
                   label=f"2/lr = {2.0 / learning_rate:g}")
    window = np.arange(max(lo, 1), min(hi, len(gain)) + 1)
    ax_g.plot(window, gain[window - 1] ** 2, color=_NGM, lw=1.2, label="g²")
    ax_g.plot(it[sel], lam_w[sel] / lam_eff[sel], ".", color="k", ms=7,
              label="λ_W / λ_Weff")
    for ax in (ax_l, ax_g):
      ax.axvline(b + 0.5, color="k", ls=":", lw=0.8)
      ax.set_xlim(lo, hi)
      ax.grid(alpha=0.2)
    k = b // iterations_per_task
    ax_l.set_title(f"task {k} → {k + 1}", fontsize=9)
    ax_g.set_xlabel("iteration")
  axes[0, 0].set_yscale("log")
  axes[0, 0].set_ylabel("top Hessian eigenvalue")
  axes[1, 0].set_ylabel("g²")
  axes[0, 0].legend(loc="lower right", fontsize=7)
  axes[1, 0].legend(loc="lower right", fontsize=7)
  if title:
    fig.suptitle(title, fontsize=10)
  return finish(fig, path)


# ----------------------------------------------------------------------------
# Sensitivity of NGM-SGD to η and γ (grids of ngm_jax.sweep.grid_metrics)

#: Metrics where lower is better get the reversed colour map, so that bright
#: always means better.
_LOWER_IS_BETTER = ("avg_sg",)


def plot_sensitivity(
    grids: Mapping[str, Mapping[str, np.ndarray]],
    etas: Sequence[float],
    gammas: Sequence[float],
    metrics: Sequence[str] = ("avg_sg", "avg_acc"),
    default: tuple[float, float] | None = None,
    title: str = "",
    path: str | os.PathLike | None = None,
):
  """Heatmaps of Task-1 metrics over the (η, γ) grid, one panel per metric.

  Rows are η (the gain added per nat of entropy, increasing downwards),
  columns γ (the gain's retention per step). The colour is the mean over
  seeds in percent (viridis; reversed for avg-SG, so bright is better in
  every panel); each cell reads ``mean ± s.e.``. The boxed cell is
  ``default``, the benchmark's own (η, γ).

  Args:
    grids: ``{metric: {"mean": [E, G], "stderr": [E, G]}}`` in fractions, as
      from :func:`ngm_jax.sweep.grid_metrics`.
    etas: η values ``[E]``; gammas: γ values ``[G]``.
    metrics: which metrics to draw, in order.
    default: ``(η, γ)`` to box, if it is on the grid.
    title: figure title.
    path: if given, the figure is saved there (:func:`ngm_jax.plots.finish`).

  Returns:
    The :class:`~matplotlib.figure.Figure` (``None`` when saved to ``path``).
  """
  etas, gammas = list(etas), list(gammas)
  # Constrained layout keeps the title, the colour bars and the γ labels inside.
  fig = new_figure(figsize=(0.95 * len(gammas) * len(metrics) + 2.2, 0.5 * len(etas) + 1.8),
                   layout="constrained")
  axes = fig.subplots(1, len(metrics), squeeze=False)
  for ax, name in zip(axes[0], metrics):
    mean = 100 * np.asarray(grids[name]["mean"], np.float64)
    se = 100 * np.asarray(grids[name]["stderr"], np.float64)
    cmap = "viridis_r" if name in _LOWER_IS_BETTER else "viridis"
    image = ax.imshow(mean, cmap=cmap, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    lo, hi = np.nanmin(mean), np.nanmax(mean)
    for i in range(len(etas)):
      for j in range(len(gammas)):
        shade = (mean[i, j] - lo) / (hi - lo) if hi > lo else 0.5
        bright = shade > 0.5 if name not in _LOWER_IS_BETTER else shade < 0.5
        text = f"{mean[i, j]:.2f}" + ("" if np.isnan(se[i, j]) else f"\n± {se[i, j]:.2f}")
        ax.text(j, i, text, ha="center", va="center", fontsize=7,
                color="k" if bright else "w")
    if default is not None and default[0] in etas and default[1] in gammas:
      i, j = etas.index(default[0]), gammas.index(default[1])
      ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="tab:red", lw=2))
    ax.set_xticks(range(len(gammas)), [f"{g:g}" for g in gammas])
    ax.set_yticks(range(len(etas)), [f"{e:g}" for e in etas])
    ax.set_xlabel("γ (gain retention per step)")
    ax.set_ylabel("η (gain per nat of entropy)")
    ax.set_title(f"{METRIC_LABELS[name]} (%)" if name in METRIC_LABELS else name, fontsize=10)
  if title:
    fig.suptitle(title, fontsize=10)
  return finish(fig, path, tight=False)
