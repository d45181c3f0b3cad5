"""The ablation variants of NGM, their paired comparisons, and their tables.

The registry of :mod:`experiments.ablations`: each label names an optimizer
of :data:`ngm_jax.optimizers.OPTIMIZER_NAMES`, a display name and what the
variant isolates; :func:`ablation_variants` turns labels into the
``{label: (optimizer, TrainConfig)}`` that
:func:`ngm_jax.experiment.run_benchmark` trains. The tables are markdown of
the paper's Task-1 metrics (percent): one row per variant (mean ± s.e. over
seeds), and paired differences ``a − b`` over the same seeds with Student-t
intervals (:func:`ngm_jax.stats.paired_difference`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from ngm_jax.metrics import METRIC_LABELS, TABLE_METRICS
from ngm_jax.stats import paired_difference
from ngm_jax.train import TrainConfig

__all__ = ["ABLATIONS", "ABLATION_COMPARISONS", "ablation_variants", "ablation_table",
           "comparison_table"]


class _Ablation(NamedTuple):
  optimizer: str
  name: str  # for tables and legends
  tests: str  # what the variant isolates


#: The ablation variants by label, in table order. ``g0_sgd_mean`` holds the
#: gain at NGM-SGD's time-averaged gain ``ḡ`` (see :func:`ablation_variants`).
ABLATIONS: dict[str, _Ablation] = {
    "ngm_sgd": _Ablation("ngm_sgd", "NGM-SGD", "the full mechanism"),
    "g0_sgd_1": _Ablation("g0_sgd", "constant gain g0 = 1", "no gain dynamics, resting gain"),
    "g0_sgd_mean": _Ablation("g0_sgd", "constant gain g0 = ḡ",
                             "no gain dynamics, NGM's average gain"),
    "entropy_lr_sgd": _Ablation("entropy_lr_sgd", "entropy-driven lr (lr·g²)",
                                "NGM's step-size rule without W_eff = g·W"),
    "replayed_lr_sgd": _Ablation("replayed_lr_sgd", "NGM's lr·g² replayed",
                                 "NGM's exact step sizes without W_eff = g·W"),
    "sgd": _Ablation("sgd", "SGD", "baseline"),
    "msgd": _Ablation("msgd", "MSGD", "baseline"),
    "msgd_reset": _Ablation("msgd_reset", "MSGD + reset (oracle)",
                            "momentum reset at task boundaries (uses task identity)"),
    "ngm_msgd": _Ablation("ngm_msgd", "NGM-MSGD", "the gain on top of momentum"),
    "adam": _Ablation("adam", "Adam", "baseline"),
    "adam_reset": _Ablation("adam_reset", "Adam + reset (oracle)",
                            "Adam state reset at task boundaries (uses task identity)"),
    "ngm_adam": _Ablation("ngm_adam", "NGM-Adam", "the gain on top of Adam"),
}

#: Paired comparisons ``(a, b, question)``: the metric of ``a`` minus that of ``b``.
ABLATION_COMPARISONS = (
    ("ngm_sgd", "g0_sgd_mean", "gain dynamics vs the same average gain held constant"),
    ("ngm_sgd", "g0_sgd_1", "NGM vs constant resting gain"),
    ("entropy_lr_sgd", "sgd", "entropy-driven step size alone vs SGD"),
    ("ngm_sgd", "entropy_lr_sgd", "W_eff = g·W on top of the same step-size rule"),
    ("replayed_lr_sgd", "sgd", "NGM's own step sizes alone vs SGD"),
    ("ngm_sgd", "replayed_lr_sgd", "W_eff = g·W on top of NGM's own step sizes"),
    ("ngm_msgd", "msgd", "gain on top of momentum"),
    ("msgd_reset", "msgd", "oracle momentum reset"),
    ("ngm_adam", "adam", "gain on top of Adam"),
    ("adam_reset", "adam", "oracle Adam reset"),
)


def ablation_variants(
    train_config: TrainConfig,
    mean_gain: float | None = None,
    labels: Sequence[str] | None = None,
) -> dict[str, tuple[str, TrainConfig]]:
  """``{label: (optimizer, config)}`` of the ablations, for ``run_benchmark``.

  Every variant uses ``train_config``; ``g0_sgd_1`` sets ``const_gain = 1``
  and ``g0_sgd_mean`` sets ``const_gain = mean_gain`` (``ḡ``).
  ``replayed_lr_sgd`` also needs each seed's NGM gain schedule
  (:func:`ngm_jax.gain_analysis.gain_schedule`), passed to ``run_benchmark`` as
  ``seed_hyperparams={"replayed_lr_sgd": {"schedule": ...}}``.

  Args:
    train_config: the benchmark's training config.
    mean_gain: ``ḡ``, needed when ``g0_sgd_mean`` is among ``labels``.
    labels: which of :data:`ABLATIONS` (default all), kept in
      :data:`ABLATIONS`' order.

  Raises:
    ValueError: an unknown label, or ``g0_sgd_mean`` without a positive
      finite ``mean_gain``.
  """
  labels = list(ABLATIONS) if labels is None else list(labels)
  unknown = [l for l in labels if l not in ABLATIONS]
  if unknown:
    raise ValueError(f"Unknown ablation variant(s) {', '.join(map(repr, unknown))};"
                     f" choose from {', '.join(ABLATIONS)}.")
  out = {}
  for label in ABLATIONS:
    if label not in labels:
      continue
    config = train_config
    if label == "g0_sgd_1":
      config = dataclasses.replace(train_config, const_gain=1.0)
    elif label == "g0_sgd_mean":
      if mean_gain is None or not (math.isfinite(mean_gain) and mean_gain > 0):
        raise ValueError("g0_sgd_mean needs NGM-SGD's time-averaged gain; got"
                         f" mean_gain={mean_gain!r}.")
      config = dataclasses.replace(train_config, const_gain=float(mean_gain))
    out[label] = (ABLATIONS[label].optimizer, config)
  return out


def _cell(entry: Mapping[str, Any]) -> str:
  mean, se = entry["mean"], entry["stderr"]
  if mean is None:
    return "n/a"
  return f"{100 * mean:.2f} ± {'n/a' if se is None else f'{100 * se:.2f}'}"




def ablation_table(
    metrics: Mapping[str, Mapping[str, Any]],
    sources: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
    failed: Mapping[str, Any] | None = None,
    without_failed: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
  """Markdown: one row per variant, the paper's Task-1 metrics as mean ± s.e.

  Args:
    metrics: ``{label: metrics}`` from :func:`ngm_jax.results.compute_metrics`.
    sources: ``{label: where its curves come from}`` (a last column).
    names: display names (default :data:`ABLATIONS`' names, else the label).
    failed: ``{label: [S] bool}`` from :func:`ngm_jax.failures.failed_seeds`; adds a column
      counting them.
    without_failed: ``{label: metrics}`` over a variant's seeds that did not
      fail; each adds a row under its variant's.
  """
  names, failed, without_failed = names or {}, failed or {}, without_failed or {}
  head = ("| variant | optimizer | tests | "
          + " | ".join(f"{METRIC_LABELS[c]} (%)" for c in TABLE_METRICS)
          + (" | failed seeds" if failed else "") + (" | curves |" if sources else " |"))
  rule = ("|---|---|---|" + "---:|" * len(TABLE_METRICS) + ("---:|" if failed else "")
          + ("---|" if sources else ""))
  rows = []
  for label, m in metrics.items():
    info = ABLATIONS.get(label)
    name = names.get(label, info.name if info else label)
    cells = [name, f"`{info.optimizer if info else label}`", info.tests if info else ""]
    cells += [_cell(m[c]) for c in TABLE_METRICS]
    bad = np.asarray(failed.get(label, []), bool)
    if failed:
      cells.append(f"{int(bad.sum())}/{bad.size}" if bad.size else "")
    if sources:
      cells.append(sources.get(label, ""))
    rows.append("| " + " | ".join(cells) + " |")
    if label in without_failed:
      cells = [f"↳ {name}, the {int((~bad).sum())} seeds that did not fail", "", ""]
      cells += [_cell(without_failed[label][c]) for c in TABLE_METRICS]
      cells += ["0"] * bool(failed) + [""] * bool(sources)
      rows.append("| " + " | ".join(cells) + " |")
  return "\n".join([head, rule, *rows]) + "\n"


def comparison_table(
    metrics: Mapping[str, Mapping[str, Any]],
    comparisons: Sequence[tuple[str, str, str]] = ABLATION_COMPARISONS,
    level: float = 0.95,
    names: Mapping[str, str] | None = None,
    failed: Mapping[str, Any] | None = None,
) -> str:
  """Markdown: paired differences ``a − b`` of each Task-1 metric (percentage
  points), mean [``level`` CI] over seeds; comparisons with a variant missing
  from ``metrics`` are left out.

  Args:
    metrics: ``{label: metrics}`` with ``per_seed`` values on the same seeds.
    comparisons: ``(a, b, question)`` triples.
    level: confidence level.
    names: display names (default :data:`ABLATIONS`' names).
    failed: ``{label: [S] bool}`` (:func:`ngm_jax.failures.failed_seeds`): a seed where either
      variant failed is left out of that comparison; a column gives the
      seeds used.
  """
  names, failed = names or {}, failed or {}
  name = lambda l: names.get(l, ABLATIONS[l].name if l in ABLATIONS else l)
  pct = int(round(100 * level))
  head = ("| a − b | question | seeds | "
          + " | ".join(f"Δ{METRIC_LABELS[c]} (pp) [{pct}% CI]" for c in TABLE_METRICS) + " |")
  rows = [head, "|---|---|---:|" + "---:|" * len(TABLE_METRICS)]
  for a, b, question in comparisons:
    if a not in metrics or b not in metrics:
      continue
    n_all = len(metrics[a][TABLE_METRICS[0]]["per_seed"])
    keep = np.ones(n_all, bool)
    for label in (a, b):
      if label in failed:
        keep &= ~np.asarray(failed[label], bool)
    cells = []
    for c in TABLE_METRICS:
      if not keep.any():
        cells.append("n/a")
        continue
      per_a = np.asarray(metrics[a][c]["per_seed"], np.float64)[keep]
      per_b = np.asarray(metrics[b][c]["per_seed"], np.float64)[keep]
      ci = paired_difference(per_a, per_b, level)
      if math.isnan(ci["half_width"]):
        cells.append(f"{100 * ci['mean']:+.2f}")
      else:
        cells.append(f"{100 * ci['mean']:+.2f} [{100 * ci['low']:+.2f}, {100 * ci['high']:+.2f}]")
    rows.append(f"| {name(a)} − {name(b)} | {question} | {int(keep.sum())}/{n_all} | "
                + " | ".join(cells) + " |")
  return "\n".join(rows) + "\n"
