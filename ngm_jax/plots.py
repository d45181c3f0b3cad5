"""Figures in the paper's form: the stability-gap figure, and the pieces every
figure shares (colours, the mean ± s.e. band, the figure itself).

Figures are :class:`matplotlib.figure.Figure` objects made without
``matplotlib.pyplot``: drawing never selects or changes the process's
backend, opens a window, or leaves figures in pyplot's registry, and saving
a PNG needs no screen. A returned figure shows itself in Jupyter once the
inline backend is on (``%matplotlib inline``); save it with
``fig.savefig(path)``.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from matplotlib.figure import Figure
import numpy as np

from ngm_jax.files import atomic_path
from ngm_jax.metrics import task_blocks
from ngm_jax.stats import mean_and_stderr

__all__ = ["COLOURS", "LABELS", "colours_for", "new_figure", "finish", "mean_band", "without_diverged_seeds",
           "plot_stability_gap"]

#: The paper's colours.
COLOURS = {
    "ngm_sgd": "tab:orange",
    "msgd": "tab:blue",
    "adam": "tab:green",
    "sgd": "tab:grey",
    "g0_sgd": "tab:purple",
}
LABELS = {
    "ngm_sgd": "NGM-SGD",
    "msgd": "MSGD",
    "adam": "Adam",
    "sgd": "SGD",
    "g0_sgd": "constant gain",
}


#: Colours for labels :data:`COLOURS` does not name, in this order.
EXTRA_COLOURS = ("tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "black", "gold",
                 "navy", "lime", "teal", "magenta", "darkred")


def colours_for(labels: Sequence[str]) -> dict[str, str]:
  """``{label: colour}``: :data:`COLOURS`' for the paper's optimizers, the
  others in turn from :data:`EXTRA_COLOURS` (then grey), so that no two
  labels of one figure share a colour (up to twelve others)."""
  spare = iter(EXTRA_COLOURS)
  return {label: COLOURS.get(label) or next(spare, "grey") for label in labels}


def new_figure(**kwargs) -> Figure:
  """A figure outside pyplot (``kwargs`` as for :class:`~matplotlib.figure.Figure`)."""
  return Figure(**kwargs)


def finish(fig: Figure, path: str | os.PathLike | None, tight: bool = True):
  """Saves ``fig`` to ``path`` (PNG at 150 dpi, cropped to everything drawn,
  so no title or label is clipped; written under a temporary name and
  renamed) and returns None; without a path, returns
  ``fig``. ``tight``: apply :meth:`~matplotlib.figure.Figure.tight_layout`
  first (leave False for a figure made with a layout engine)."""
  if tight:
    fig.tight_layout()
  if path is None:
    return fig
  # A temporary name, then a rename: a stopped run never leaves half a figure.
  with atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=150, bbox_inches="tight")
  return None


def mean_band(ax, x, values, colour, label, ls="-", alpha=0.25):
  """The mean over seeds (axis 0) of ``values`` ``[S, len(x)]`` as a line, with
  a ± one standard error band (for two or more seeds); returns ``(mean, se)``.

  On a log-scale axis (set before calling) the band's lower edge stays
  positive, so the axis is not stretched down to ~1e-17. ``mean − s.e.`` is
  never below the lowest seed's value (with ``y_i = x_i − min_j x_j >= 0``,
  ``(Σ y_i)² >= Σ y_i²`` gives ``mean(y) >= s.e.(y)``), but rounding can put
  it there, or leave a ~1e-16 remainder where the lowest seed is at 0 (a
  loss of exactly 0): the edge is raised to the lowest seed's value, and
  where it is then within rounding of 0, drawn at the smallest positive
  value of the band.
  """
  mean, se = mean_and_stderr(values, axis=0)
  ax.plot(x, mean, color=colour, ls=ls, lw=1.2, label=label)
  if values.shape[0] > 1:
    low, high = mean - se, mean + se
    if ax.get_yscale() == "log":
      low = np.maximum(low, np.min(values, axis=0))
      zero = low <= 64 * np.finfo(np.float64).eps * np.abs(high)  # rounding of mean − s.e.
      shown = np.concatenate([low[~zero], mean, high])
      shown = shown[np.isfinite(shown) & (shown > 0)]
      if shown.size:
        low = np.where(zero, shown.min(), low)
    ax.fill_between(x, low, high, color=colour, alpha=alpha, lw=0)
  return mean, se


def without_diverged_seeds(curves, label, num_failed=0):
  """One curve set ``{name: [S, ...]}`` without the seeds whose ``train_loss``
  is non-finite (they would turn the mean into NaN), and its legend label.

  Returns:
    ``(curves, label)``, the label counting ``num_failed`` failed seeds when
    any; ``(None, label)`` when every seed diverged (nothing to draw).
  """
  finite = np.all(np.isfinite(np.asarray(curves["train_loss"], np.float64)), axis=1)
  if not finite.any():
    return None, label
  if num_failed:
    label += f" ({num_failed}/{finite.size} seeds failed; mean of {int(finite.sum())})"
  return {name: np.asarray(v)[finite] for name, v in curves.items()}, label


def _same_curves(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
  """Whether two optimizers' drawn curves (Task-1 accuracy and loss, gain) are equal."""
  return all(np.array_equal(np.asarray(a[name]), np.asarray(b[name]))
             for name in ("task1_acc", "task1_loss", "gain"))


def _draw_minima(ax, minima, bottom: float) -> bool:
  """Dots at the minima ``[(x, y, colour, boundary)]`` at or above ``bottom``;
  below it, a triangle on the lower edge labelled with the value, the labels
  at one boundary stacked above the triangles, each on a white box, so that
  no label covers another or a marker. Returns whether a triangle was drawn."""
  stacked: dict[int, int] = {}
  below = False
  for x, y, colour, boundary in minima:
    if y >= bottom:
      ax.plot(x, y, "o", color=colour, ms=4, zorder=4)
      continue
    below = True
    row = stacked[boundary] = stacked.get(boundary, -1) + 1
    ax.plot(x, bottom, "v", color=colour, ms=6, clip_on=False, zorder=4)
    ax.annotate(f"min {y:.0f}%", (x, bottom), xytext=(6, 8 + 11 * row),
                textcoords="offset points", color=colour, fontsize=7, zorder=5,
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85})
  return below


def _marker_handles(below: bool) -> list:
  """Legend entries for the minimum markers (grey: every optimizer's in its colour)."""
  from matplotlib.lines import Line2D  # pylint: disable=import-outside-toplevel
  handles = [Line2D([], [], ls="", marker="o", ms=4, color="0.35",
                    label="Task-1 minimum after each task switch")]
  if below:
    handles.append(Line2D([], [], ls="", marker="v", ms=6, color="0.35",
                          label="minimum below the axis (value written)"))
  return handles


def plot_stability_gap(
    curves: Mapping[str, Mapping[str, np.ndarray]],
    iterations: Mapping[str, np.ndarray],
    num_tasks: int,
    iterations_per_task: int,
    title: str = "",
    path: str | os.PathLike | None = None,
    optimizers: Sequence[str] | None = None,
    failed: Mapping[str, np.ndarray] | None = None,
):
  """The paper's Figure 3 for one benchmark: three rows against iteration.

  Top, Task-1 test accuracy (%) zoomed on the dips, with a dot at each later
  task's minimum of the mean curve (a triangle on the lower edge, labelled
  with its value, for a minimum below the zoomed axis; both explained in the
  legend); middle, Task-1 test loss; bottom, the gain (optimizers
  without a gain, whose gain is identically 1, are left out of this row).
  Lines are the mean over seeds, bands ± one standard error; dotted vertical
  lines mark task boundaries. Seeds whose training loss became non-finite
  (diverged) are left out of the mean, and the legend counts the ``failed``
  seeds of an optimizer. An optimizer whose curves equal an earlier one's
  (``g0_sgd`` at g0 = 1 is SGD) is drawn dashed over it, and its legend
  entry names the other ("constant gain (= SGD, same curves)").

  Args:
    curves: ``{optimizer: {"task1_acc", "task1_loss", "gain": [seed, ...]}}``.
    iterations: ``{"task1": [P], "step": [T]}`` iteration of each point.
    num_tasks, iterations_per_task: K and I.
    title: figure title (the run's :func:`ngm_jax.results.display_name`).
    path: if given, the figure is saved there (:func:`finish`).
    optimizers: which optimizers to draw, in order (default: all).
    failed: ``{optimizer: [S] bool}``, failed seeds
      (:func:`ngm_jax.failures.failed_seeds`), counted in the legend.

  Returns:
    The :class:`~matplotlib.figure.Figure` (``None`` when saved to ``path``).
  """
  optimizers = list(optimizers or curves)
  # Constrained layout places the legend (over several rows for many
  # optimizers) above the axes, where nothing overlaps or is cut off.
  fig = new_figure(figsize=(7, 8.3), layout="constrained")
  ax_acc, ax_loss, ax_gain = fig.subplots(3, 1, sharex=True, height_ratios=(1.4, 1, 0.8))
  ax_loss.set_yscale("log")  # before the bands: mean_band keeps their lower edge positive
  x_eval, x_step = iterations["task1"], iterations["step"]
  settled_values, minima, drawn = [], [], {}
  failed = failed or {}
  palette = colours_for(optimizers)
  for opt in optimizers:
    c = curves[opt]
    colour = palette[opt]
    label = LABELS.get(opt, opt)
    if "train_loss" in c:
      c, label = without_diverged_seeds(c, label, int(np.sum(failed.get(opt, 0))))
      if c is None:
        continue
    same = next((other for other, o in drawn.items() if _same_curves(c, o)), None)
    drawn[opt] = c
    ls = "-"
    if same is not None:  # drawn dashed on top, so that both stay visible
      ls = (0, (3, 3))
      label += f" (= {LABELS.get(same, same)}, same curves)"
    acc = 100 * np.asarray(c["task1_acc"], np.float64)
    mean, se = mean_band(ax_acc, x_eval, acc, colour, label, ls=ls)
    # A dot at each later task's minimum of the mean curve.
    blocks = task_blocks(mean, num_tasks)
    points = blocks.shape[-1]
    for k in range(1, num_tasks):
      j = int(np.argmin(blocks[k]))
      minima.append((x_eval[k * points + j], blocks[k, j], colour, k))
    # The zoom ignores the first fifth of Task 1, where the network is untrained.
    settled_values.append((mean - np.nan_to_num(se))[x_eval > iterations_per_task / 5])
    mean_band(ax_loss, x_eval, np.asarray(c["task1_loss"], np.float64), colour, label, ls=ls)
    gain = np.asarray(c["gain"], np.float64)
    if not np.all(gain == 1.0):
      mean_band(ax_gain, x_step, gain, colour, label, ls=ls)

  # Zoom on the dips: the y-axis starts just below the 1st percentile of the
  # settled curves, so a brief collapse (MSGD's, say) does not flatten every
  # other curve; minima below the axis are drawn on its edge with their value.
  settled = np.concatenate(settled_values) if settled_values else np.zeros(1)
  bottom = max(0.0, float(np.percentile(settled, 1)) - 3.0)
  ax_acc.set_ylim(bottom, 100.5)
  below = _draw_minima(ax_acc, minima, bottom)
  ax_acc.set_ylabel("Task-1 test accuracy (%)")
  ax_loss.set_ylabel("Task-1 test loss (nats)")
  ax_gain.set_ylabel("gain g")
  ax_gain.set_xlabel("iteration")
  for ax in (ax_acc, ax_loss, ax_gain):
    for k in range(1, num_tasks):
      ax.axvline(k * iterations_per_task, color="k", ls=":", lw=0.8)
    ax.grid(alpha=0.2)
  handles, labels = ax_acc.get_legend_handles_labels()
  if labels:  # the title heads the legend (a suptitle would overlap an outside legend)
    markers = _marker_handles(below) if minima else []
    fig.legend(handles + markers, labels + [m.get_label() for m in markers],
               loc="outside upper center", ncol=min(len(labels), 3), fontsize=8,
               frameon=False, title=title or None, title_fontsize=12)
  elif title:
    fig.suptitle(title)
  return finish(fig, path, tight=False)
