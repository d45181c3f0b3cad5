"""Figures of variants' training curves: the ablation figure (accuracy over the
seen tasks, Task-1 accuracy and the gain, one column per group of variants)
and the gain readout (mean gain per task block against the task index).

Curves are those of :func:`ngm_jax.train.make_train` (leading axis: seeds).
Figures are made outside pyplot (:func:`ngm_jax.plots.new_figure`): drawing
never touches the process's matplotlib backend.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from ngm_jax.metrics import seen_tasks_accuracy
from ngm_jax.plots import COLOURS, LABELS, finish, mean_band, new_figure, without_diverged_seeds

__all__ = ["plot_ablation", "plot_gain_readout"]

_NGM = COLOURS["ngm_sgd"]


def plot_ablation(
    curves: Mapping[str, Mapping[str, np.ndarray]],
    iterations: Mapping[str, np.ndarray],
    num_tasks: int,
    iterations_per_task: int,
    groups: Mapping[str, Sequence[str]],
    names: Mapping[str, str] | None = None,
    styles: Mapping[str, tuple[str | None, str]] | None = None,
    constant_gain: Sequence[str] = (),
    title: str = "",
    path: str | os.PathLike | None = None,
    failed: Mapping[str, np.ndarray] | None = None,
):
  """The paper's ablation figure: one column per group of variants, three rows.

  Top, the test accuracy over all tasks seen so far (%, from ``task_acc``
  ``[S, P, K]``, :func:`ngm_jax.metrics.seen_tasks_accuracy`); middle,
  Task-1 test accuracy (%), each column zoomed on its own dips; bottom, the
  gain ``g`` (variants whose gain is identically 1 are left out of this row,
  except those in ``constant_gain``). Lines are the mean over
  seeds, bands ± one standard error; dotted lines mark task boundaries. Seeds
  whose training loss became non-finite are left out of the mean, and the
  legend counts the ``failed`` seeds of a variant.

  Args:
    curves: ``{label: {"task_acc", "task1_acc", "gain": [S, ...]}}``.
    iterations: ``{"tasks": [P], "task1": [P1], "step": [T]}``.
    num_tasks, iterations_per_task: K and I.
    groups: ``{column title: [labels]}``; labels missing from ``curves`` are
      skipped.
    names: legend names (default :data:`ngm_jax.plots.LABELS`, else the
      label).
    styles: ``{label: (colour, line style)}`` (default the paper's colour of
      :data:`ngm_jax.plots.COLOURS`, solid).
    constant_gain: labels whose gain is drawn even when identically 1 (a
      constant-gain ablation at g0 = 1).
    title: figure title.
    path: if given, the figure is saved there (:func:`ngm_jax.plots.finish`).
    failed: ``{label: [S] bool}`` (:func:`ngm_jax.failures.failed_seeds`),
      counted in the legend.

  Returns:
    The :class:`~matplotlib.figure.Figure` (``None`` when saved to ``path``).

  Raises:
    ValueError: no group has a label present in ``curves``.
  """
  names, styles, failed = names or {}, styles or {}, failed or {}
  groups = {t: [l for l in ls if l in curves] for t, ls in groups.items()}
  groups = {t: ls for t, ls in groups.items() if ls}
  if not groups:
    raise ValueError(f"plot_ablation: no group names a variant of the curves ({', '.join(curves)}).")
  cols = len(groups)
  fig = new_figure(figsize=(4.6 * cols + 0.6, 8))
  axes = fig.subplots(3, cols, sharex=True, height_ratios=(1.1, 1.4, 0.8), squeeze=False)
  for col, (group, labels) in enumerate(groups.items()):
    ax_seen, ax_t1, ax_gain = axes[:, col]
    lowest = 1.0e9
    for label in labels:
      colour, ls = styles.get(label, (COLOURS.get(label), "-"))
      name = names.get(label, LABELS.get(label, label))
      c, name = without_diverged_seeds(curves[label], name, int(np.sum(failed.get(label, 0))))
      if c is None:
        continue
      seen = 100 * seen_tasks_accuracy(c["task_acc"], iterations["tasks"], iterations_per_task)
      mean_band(ax_seen, iterations["tasks"], seen, colour, name, ls=ls, alpha=0.2)
      acc = 100 * np.asarray(c["task1_acc"], np.float64)
      mean, se = mean_band(ax_t1, iterations["task1"], acc, colour, name, ls=ls, alpha=0.2)
      settled = iterations["task1"] > iterations_per_task / 5
      lowest = min(lowest, float(np.min((mean - np.nan_to_num(se))[settled])))
      gain = np.asarray(c["gain"], np.float64)
      if label in constant_gain or not np.all(gain == 1.0):
        mean_band(ax_gain, iterations["step"], gain, colour, name, ls=ls, alpha=0.2)
    ax_seen.set_title(group, fontsize=10)
    ax_t1.set_ylim(max(0.0, lowest - 2.0), 100.5)
    ax_t1.legend(loc="lower left", fontsize=7)
    ax_gain.set_xlabel("iteration")
    for ax in (ax_seen, ax_t1, ax_gain):
      for k in range(1, num_tasks):
        ax.axvline(k * iterations_per_task, color="k", ls=":", lw=0.8)
      ax.grid(alpha=0.2)
  axes[0, 0].set_ylabel("accuracy, seen tasks (%)")
  axes[1, 0].set_ylabel("Task-1 test accuracy (%)")
  axes[2, 0].set_ylabel("gain g")
  if title:
    fig.suptitle(title, fontsize=10)
  return finish(fig, path)


def plot_gain_readout(
    entries: Sequence[Mapping[str, Any]],
    title: str = "",
    path: str | os.PathLike | None = None,
):
  """Mean block gain ``ḡ_k`` against the task index ``k``, one panel per run.

  Each panel shows every seed's block gains (small dots), their mean ± one
  standard error (error bars) and the fitted line ``a + b·k`` (mean
  intercept and slope over seeds), titled with the slope and its confidence
  interval. An entry with a second readout under ``settled`` (the gain of
  each block without its first iterations, :func:`ngm_jax.gain_analysis.gain_trend`
  with ``skip``) adds it in open squares with a dashed line.

  Args:
    entries: dicts with ``benchmark``, ``kind``, ``optimizer``, a
      :func:`ngm_jax.gain_analysis.gain_trend` result under ``trend`` and
      optionally another under ``settled``; class-incremental runs are best
      listed before domain-incremental ones.
    title: figure title.
    path: if given, the figure is saved there (:func:`ngm_jax.plots.finish`).

  Returns:
    The :class:`~matplotlib.figure.Figure` (``None`` when saved to ``path``).
  """
  if not entries:
    raise ValueError("plot_gain_readout: no runs to plot.")
  fig = new_figure(figsize=(4.6 * len(entries) + 0.6, 4.4))
  axes = fig.subplots(1, len(entries), squeeze=False)
  for ax, e in zip(axes[0], entries):
    lines = [f"{e['benchmark']} ({e['kind']})"]
    readouts = [("whole block", e["trend"], "o", "-", 0.0)]
    if e.get("settled") is not None:
      skip = e["settled"]["skip"]
      end = e.get("iterations_per_task", "I")
      readouts.append((f"its {skip + 1}-{end} of each block", e["settled"], "s", "--", 0.08))
    for name, tr, marker, ls, dx in readouts:
      blocks = np.asarray(tr["block_gain"], np.float64)
      k = np.arange(1, blocks.shape[1] + 1)
      for row in blocks:
        ax.plot(k + dx, row, marker, color=_NGM, alpha=0.3, ms=3, mfc="none" if dx else None)
      se = np.nan_to_num(np.asarray(tr["block_stderr"], np.float64))
      ax.errorbar(k + dx, tr["block_mean"], yerr=se, fmt=marker, color=_NGM, ms=6, capsize=4,
                  mfc="none" if dx else _NGM,
                  label=f"{name}: mean ± s.e. ({blocks.shape[0]} seeds)")
      s = tr["slope"]
      ax.plot(k + dx, tr["intercept"] + s["mean"] * k, ls=ls, color="k", lw=1,
              label=f"{name}: fitted line")
      ci = ("" if np.isnan(s["half_width"])
            else f" ± {s['half_width']:.3f} ({int(round(100 * tr['level']))}% CI)")
      lines.append(f"{name.replace(' of each block', '')}: slope {s['mean']:+.3f}{ci}/task")
    ax.set_title("\n".join(lines), fontsize=8)
    ax.set_xticks(k)
    ax.set_xlabel("task k")
    ax.grid(alpha=0.2)
    ax.legend(loc="best", fontsize=6)
  axes[0, 0].set_ylabel(f"mean gain in task block, ḡ_k ({entries[0]['optimizer']})")
  if title:
    fig.suptitle(title, fontsize=10)
  return finish(fig, path)
