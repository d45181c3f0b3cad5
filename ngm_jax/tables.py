"""Markdown tables of a run's metrics, in the form of the paper's Table 1."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ngm_jax.metrics import METRIC_LABELS, TABLE_METRICS

__all__ = ["metrics_table", "run_summary", "SUMMARY_METRICS"]


def _fmt(entry: Mapping[str, Any], key: str) -> str:
  value = entry[key]
  return "n/a" if value is None else f"{100 * value:.2f}"


def _transitions(m: Mapping[str, Any]) -> int | None:
  """K − 1, the transitions of a metrics entry (None if it has no ``sg``)."""
  sg = m.get("sg", {}).get("of_mean_curve")
  return len(sg) if isinstance(sg, list) else None


def _undefined_per_seed(m: Mapping[str, Any]) -> str | None:
  """How many SG_k were defined, when some seed lacks one; else None."""
  total, counts = _transitions(m), m.get("sg_defined", {}).get("per_seed")
  if total is None or counts is None or all(c == total for c in counts):
    return None
  counts = [int(c) for c in counts]
  short = ", ".join(f"{s}: {c} of {total}" for s, c in enumerate(counts) if c < total)
  text = (f"{sum(counts)} of {total * len(counts)} transitions defined over {len(counts)}"
          f" seeds (seed index {short})")
  seeds = m.get("avg_sg", {}).get("seeds_defined")
  if seeds is not None:
    text += (f"; the mean is over the {seeds} seeds with at least one")
  return text


def _undefined_of_mean(m: Mapping[str, Any]) -> str | None:
  total, count = _transitions(m), m.get("sg_defined", {}).get("of_mean_curve")
  if total is None or count is None or int(count) == total:
    return None
  return f"{int(count)} of {total} transitions defined"


def metrics_table(
    metrics: Mapping[str, Mapping[str, Any]],
    num_seeds: int,
    failed: Mapping[str, Any] | None = None,
    without_failed: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
  """Markdown tables in the form of the paper's Table 1, plus De Lange et al.'s
  per-task metrics.

  Values are percentages. The first table is mean ± standard error over
  seeds (each metric computed per seed), with the final accuracy over all
  tasks (plasticity) beside the Task-1 gap metrics (stability); the second computes each metric
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

  def table(columns, cell, flag=False, partial=None):
    flag = flag and bool(failed)
    head = ("| optimizer | " + " | ".join(f"{METRIC_LABELS[c]} (%)" for c in columns)
            + (" | failed seeds" if flag else "") + " |")
    rule = "|---|" + "---:|" * len(columns) + ("---:|" if flag else "")
    rows = []

    def cells(m):
      marked = partial is not None and partial(m) is not None
      return " | ".join(cell(m[c]) + (" †" if c == "avg_sg" and marked else "")
                        for c in columns)

    for opt, m in metrics.items():
      rows.append(f"| {opt} | " + cells(m) + (f" | {failed_cell(opt)}" if flag else "") + " |")
      if flag and opt in without_failed:
        kept = num_seeds - int(np.sum(failed[opt]))
        rows.append(f"| ↳ {opt}, the {kept} seeds that did not fail | "
                    + cells(without_failed[opt]) + " | 0 |")
    notes = []
    if partial is not None:
      for opt, m in [(o, m) for o, m in metrics.items()] + [
          (f"↳ {o}", m) for o, m in without_failed.items()]:
        if partial(m) is not None:
          notes.append(f"{opt}: {partial(m)}")
    if notes:
      rows.append("\n† avg-SG averages only the defined transitions (SG_k is undefined where"
                  " Task-1 accuracy is 0 at the end of task k): " + "; ".join(notes) + ".")
    return "\n".join([head, rule, *rows])

  mean_se = lambda e: f"{_fmt(e, 'mean')} ± {_fmt(e, 'stderr')}"
  of_mean = lambda e: _fmt(e, "of_mean_curve")
  per_task = ("dl_min_acc", "dl_wc_acc", "dl_final_acc_all")
  return "\n\n".join([
      f"**Task-1 metrics, mean ± standard error over {num_seeds} seeds** (each"
      " metric computed on each seed's curve, then averaged):",
      table(TABLE_METRICS + ("dl_final_acc_all",), mean_se, flag=True,
            partial=_undefined_per_seed),
      "**Task-1 metrics of the seed-averaged curve** (the curve averaged over"
      " seeds first, then each metric computed once, as the paper's scripts"
      " did; dips at different iterations in different seeds partly cancel,"
      " so the gap looks smaller here):",
      table(TABLE_METRICS, of_mean, partial=_undefined_of_mean),
      f"**De Lange et al.'s per-task metrics, mean ± standard error over"
      f" {num_seeds} seeds** (min-ACC over all old tasks, on the coarser"
      " per-task evaluation grid):",
      table(per_task, mean_se),
  ]) + "\n"


#: The end-of-run summary's columns: stability (Task 1) beside plasticity.
SUMMARY_METRICS = ("avg_sg", "wc_acc", "avg_min_acc", "dl_wc_acc", "dl_final_acc_all")


def run_summary(metrics: Mapping[str, Mapping[str, Any]], timings: Mapping[str, Any],
                title: str, out: str | None = None) -> str:
  """The terminal summary of a finished run: per optimizer the Task-1 gap
  metrics beside the accuracy over all tasks (mean ± standard error over
  seeds, in %), its compile and run seconds, and where the files are.

  Args:
    metrics: ``{optimizer: metrics}`` (:func:`ngm_jax.metrics.summarize`).
    timings: ``{optimizer: {"compile_s", "run_s", ...}}`` (``run.json``).
    title: the first line.
    out: the run's folder, or None.
  """
  names = {"wc_acc": "WC-ACC (Task 1)", "dl_wc_acc": "WC-ACC (all tasks)"}
  head = ["optimizer"] + [names.get(m, METRIC_LABELS[m]) for m in SUMMARY_METRICS] + [
      "compile s", "run s"]
  rows = []
  for label, m in metrics.items():
    t = timings.get(label, {})
    rows.append([label] + [f"{_fmt(m[c], 'mean')} ± {_fmt(m[c], 'stderr')}"
                           for c in SUMMARY_METRICS]
                + [str(t.get("compile_s", "")), str(t.get("run_s", ""))])
  widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
  line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths)))
  text = [title + " (mean ± standard error over seeds, %)", line(head)] + [line(r) for r in rows]
  if out is not None:
    text.append(f"Files in {out}/: table.md, figure.png, metrics.json, metrics.csv, curves.npz,"
                " run.json")
  return "\n".join(text)
