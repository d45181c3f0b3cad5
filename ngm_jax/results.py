"""Run outputs on disk: curves (npz), run metadata and metrics (JSON), tables.

A run directory holds::

    run.json      benchmark, config, optimizers, seeds, timings, versions
    curves.npz    "<optimizer>/<curve>" → [seed, ...] arrays, "iterations/<kind>"
    metrics.json  optimizer → metric → {per_seed, mean, stderr, of_mean_curve}
    table.md      the paper's Table 1, mean ± s.e. over seeds and on the mean curve
    figure.png    the paper's Figure 3 (see :mod:`ngm_jax.plots`)
    log.jsonl     one JSON line per finished optimizer (compile and run time)
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ngm_jax.metrics import TABLE_METRICS, summarize

__all__ = [
    "save_curves",
    "load_curves",
    "write_json",
    "read_json",
    "compute_metrics",
    "metrics_of_kept_seeds",
    "metrics_table",
    "command_line",
]

_METRIC_LABELS = {
    "avg_acc": "avg-ACC (%)",
    "avg_min_acc": "avg-min-ACC (%)",
    "wc_acc": "WC-ACC (%)",
    "avg_sg": "avg-SG (%)",
    "dl_min_acc": "min-ACC (%)",
    "dl_wc_acc": "WC-ACC (%)",
    "dl_final_acc_all": "final ACC, all tasks (%)",
}


def command_line() -> str:
  """The command as typed, for ``run.json`` (``python -m pkg.mod ...`` stays
  that, where ``sys.argv`` would give the module's file path)."""
  return shlex.join(getattr(sys, "orig_argv", sys.argv))


def save_curves(
    path: str | os.PathLike,
    curves: Mapping[str, Mapping[str, Any]],
    iterations: Mapping[str, np.ndarray],
) -> None:
  """Writes ``{optimizer: {curve: [seed, ...]}}`` and the iteration axes.

  Written to a temporary file and renamed, so a crash never leaves a
  half-written file behind.
  """
  arrays = {f"iterations/{k}": np.asarray(v) for k, v in iterations.items()}
  for opt, per_curve in curves.items():
    for name, value in per_curve.items():
      arrays[f"{opt}/{name}"] = np.asarray(value)
  path = Path(path)
  tmp = path.with_name(path.name + ".tmp.npz")
  np.savez_compressed(tmp, **arrays)
  os.replace(tmp, path)


def load_curves(
    path: str | os.PathLike,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
  """Inverse of :func:`save_curves`: ``(curves, iterations)``, optimizers in
  the order they were saved."""
  curves: dict[str, dict[str, np.ndarray]] = {}
  iterations: dict[str, np.ndarray] = {}
  with np.load(path) as data:
    for key in data.files:
      group, name = key.split("/", 1)
      target = iterations if group == "iterations" else curves.setdefault(group, {})
      target[name] = data[key]
  return curves, iterations


def write_json(path: str | os.PathLike, obj: Any) -> None:
  path = Path(path)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")
  os.replace(tmp, path)


def read_json(path: str | os.PathLike) -> Any:
  return json.loads(Path(path).read_text())


def compute_metrics(
    curves: Mapping[str, Mapping[str, np.ndarray]],
    iterations: Mapping[str, np.ndarray],
    num_tasks: int,
    iterations_per_task: int,
) -> dict[str, dict]:
  """:func:`ngm_jax.metrics.summarize` for every optimizer."""
  return {
      opt: summarize(c, num_tasks, iterations_per_task, iterations["tasks"])
      for opt, c in curves.items()
  }


def metrics_of_kept_seeds(
    curves: Mapping[str, Mapping[str, np.ndarray]],
    failed: Mapping[str, Any],
    iterations: Mapping[str, np.ndarray],
    num_tasks: int,
    iterations_per_task: int,
) -> dict[str, dict]:
  """:func:`compute_metrics` over the seeds that did not fail, for every
  optimizer where some, but not all, seeds failed.

  Args:
    curves: ``{optimizer: {curve: [S, ...]}}``.
    failed: ``{optimizer: [S] bool}`` (:func:`ngm_jax.analysis.failed_seeds`).
    iterations, num_tasks, iterations_per_task: as for :func:`compute_metrics`.
  """
  out = {}
  for opt, bad in failed.items():
    bad = np.asarray(bad, bool)
    if bad.any() and not bad.all():
      kept = {name: np.asarray(v)[~bad] for name, v in curves[opt].items()}
      out[opt] = compute_metrics({opt: kept}, iterations, num_tasks, iterations_per_task)[opt]
  return out


def _fmt(entry: Mapping[str, Any], key: str) -> str:
  value = entry[key]
  return "n/a" if value is None else f"{100 * value:.2f}"


def metrics_table(
    metrics: Mapping[str, Mapping[str, Any]],
    num_seeds: int,
    failed: Mapping[str, Any] | None = None,
    without_failed: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
  """Markdown tables in the form of the paper's Table 1, plus De Lange et al.'s
  per-task metrics.

  Values are percentages. The first table is mean ± standard error over
  seeds (each metric computed per seed); the second computes each metric
  once on the seed-averaged Task-1 curve, as the paper's scripts did.

  Args:
    metrics: ``{optimizer: metrics}`` from :func:`compute_metrics`.
    num_seeds: S, for the captions.
    failed: ``{optimizer: [S] bool}``, the seeds whose training failed
      (:func:`ngm_jax.analysis.failed_seeds`); adds a "failed seeds" column
      to the first table, which names them.
    without_failed: ``{optimizer: metrics}`` over the seeds that did not
      fail; each adds a row "↳ ..." under its optimizer's in the first table.
  """
  failed, without_failed = failed or {}, without_failed or {}

  def failed_cell(opt):
    bad = np.flatnonzero(np.asarray(failed.get(opt, []), bool))
    return f"{bad.size}/{num_seeds}" + (f" (seed index {', '.join(map(str, bad))})"
                                       if bad.size else "")

  def table(columns, cell, flag=False):
    flag = flag and bool(failed)
    head = ("| optimizer | " + " | ".join(_METRIC_LABELS[c] for c in columns)
            + (" | failed seeds" if flag else "") + " |")
    rule = "|---|" + "---:|" * len(columns) + ("---:|" if flag else "")
    rows = []
    for opt, m in metrics.items():
      rows.append(f"| {opt} | " + " | ".join(cell(m[c]) for c in columns)
                  + (f" | {failed_cell(opt)}" if flag else "") + " |")
      if flag and opt in without_failed:
        kept = num_seeds - int(np.sum(failed[opt]))
        rows.append(f"| ↳ {opt}, the {kept} seeds that did not fail | "
                    + " | ".join(cell(without_failed[opt][c]) for c in columns) + " | 0 |")
    return "\n".join([head, rule, *rows])

  mean_se = lambda e: f"{_fmt(e, 'mean')} ± {_fmt(e, 'stderr')}"
  of_mean = lambda e: _fmt(e, "of_mean_curve")
  per_task = ("dl_min_acc", "dl_wc_acc", "dl_final_acc_all")
  return "\n\n".join([
      f"**Task-1 metrics, mean ± standard error over {num_seeds} seeds** (each"
      " metric computed on each seed's curve, then averaged):",
      table(TABLE_METRICS, mean_se, flag=True),
      "**Task-1 metrics of the seed-averaged curve** (the curve averaged over"
      " seeds first, then each metric computed once, as the paper's scripts"
      " did; dips at different iterations in different seeds partly cancel,"
      " so the gap looks smaller here):",
      table(TABLE_METRICS, of_mean),
      f"**De Lange et al.'s per-task metrics, mean ± standard error over"
      f" {num_seeds} seeds** (min-ACC over all old tasks, on the coarser"
      " per-task evaluation grid):",
      table(per_task, mean_se),
  ]) + "\n"
