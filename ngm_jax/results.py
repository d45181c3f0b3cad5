"""A run's results: the :class:`Result` of arrays, and its files on disk.

Computing returns a :class:`Result`; writing it is a separate step.
:func:`save_result` writes the arrays and the record, :func:`write_report`
the derived files, :func:`load_result` reads a folder back into the same
object. A run folder holds::

    run.json           benchmark, config, optimizers, seeds, timings, versions
    curves.npz         "<label>/<curve>" → [seed, ...] arrays, "iterations/<kind>"
    log.jsonl          one JSON line per finished optimizer (compile and run time)
    metrics.json       label → metric → {per_seed, mean, stderr, of_mean_curve}
    failed_seeds.json  label → indices of the seeds that diverged or collapsed
    table.md           the paper's Table 1, mean ± s.e. over seeds and on the mean curve
    figure.png         the paper's Figure 3 (see :mod:`ngm_jax.plots`)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ngm_jax.metrics import summarize

__all__ = [
    "Result",
    "RUN_FILES",
    "save_result",
    "load_result",
    "write_report",
    "report",
    "prepare_out",
    "append_log",
    "save_curves",
    "load_curves",
    "write_json",
    "read_json",
    "compute_metrics",
    "metrics_of_kept_seeds",
    "command_line",
]



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



#: The files a finished run folder holds (``curves.npz`` and ``run.json`` are
#: the run; the others are derived from them by :func:`write_report`).
RUN_FILES = ("run.json", "curves.npz", "log.jsonl", "metrics.json", "failed_seeds.json",
             "table.md", "figure.png")


@dataclasses.dataclass
class Result:
  """A run's curves and record, as returned by :func:`ngm_jax.run_benchmark`.

  Attributes:
    curves: ``{label: {curve: NumPy [num_seeds, ...]}}``: ``task1_acc`` and
      ``task1_loss`` ``[S, T / eval_every]`` (fraction, nats), ``gain``,
      ``entropy`` and ``train_loss`` ``[S, T]``, ``task_acc`` and
      ``task_loss`` ``[S, T / task_eval_every, K]``.
    iterations: the iteration (1-based) of each point: ``"step"`` ``[T]``,
      ``"task1"``, ``"tasks"``.
    meta: the run's record (``run.json``): benchmark, config, variants,
      seeds, sizes, device, timings.
  """

  curves: dict[str, dict[str, np.ndarray]]
  iterations: dict[str, np.ndarray]
  meta: dict[str, Any]

  @property
  def labels(self) -> list[str]:
    return list(self.curves)

  @property
  def num_seeds(self) -> int:
    return len(self.meta["seeds"])

  @property
  def config(self):
    """The run's :class:`ngm_jax.train.TrainConfig`."""
    from ngm_jax.train import TrainConfig  # results does not otherwise need the trainer
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in self.meta["train"].items() if k in fields})

  @functools.cached_property
  def metrics(self) -> dict[str, dict]:
    """``{label: {metric: {per_seed, mean, stderr, of_mean_curve}}}``
    (:func:`ngm_jax.metrics.summarize`)."""
    return compute_metrics(self.curves, self.iterations, self.meta["num_tasks"],
                           self.meta["train"]["iterations_per_task"])

  @functools.cached_property
  def failed(self) -> dict[str, np.ndarray]:
    """``{label: [S] bool}``: seeds that diverged or collapsed
    (:func:`ngm_jax.analysis.failed_seeds`)."""
    from ngm_jax.analysis import failed_seeds
    return {label: failed_seeds(c, self.meta.get("num_classes"))
            for label, c in self.curves.items()}


def prepare_out(out: str | os.PathLike, overwrite: bool) -> Path:
  """``out`` as a folder ready for a new run.

  Raises:
    ValueError: ``out`` is a file, or already holds a run and ``overwrite``
      is False.
  """
  out = Path(out)
  if out.exists() and not out.is_dir():
    raise ValueError(f"out={str(out)!r} is a file, not a folder; choose a folder for the run.")
  if (out / "curves.npz").exists() and not overwrite:
    raise ValueError(f"{out} already holds a run; pass overwrite=True or choose another folder.")
  out.mkdir(parents=True, exist_ok=True)
  (out / "log.jsonl").unlink(missing_ok=True)
  return out


def append_log(out: str | os.PathLike, record: Mapping[str, Any]) -> None:
  """One JSON line appended to ``out/log.jsonl``."""
  with open(Path(out) / "log.jsonl", "a") as log:
    log.write(json.dumps(dict(record)) + "\n")


def save_result(result: Result, out: str | os.PathLike) -> Path:
  """Writes ``out/curves.npz`` and ``out/run.json`` (each atomically)."""
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  save_curves(out / "curves.npz", result.curves, result.iterations)
  write_json(out / "run.json", result.meta)
  return out


def load_result(out: str | os.PathLike) -> Result:
  """The :class:`Result` saved in ``out`` by :func:`save_result`.

  Raises:
    ValueError: ``out`` holds no saved run.
  """
  out = Path(out)
  if not (out / "curves.npz").exists() or not (out / "run.json").exists():
    raise ValueError(f"{out} holds no saved run (no curves.npz and run.json).")
  curves, iterations = load_curves(out / "curves.npz")
  return Result(curves, iterations, read_json(out / "run.json"))


def write_report(result: Result, out: str | os.PathLike) -> dict:
  """``metrics.json``, ``failed_seeds.json``, ``table.md`` and ``figure.png``
  of ``result`` in ``out``; returns the metrics. Matplotlib is imported here,
  only when a figure is drawn."""
  from ngm_jax import plots  # pylint: disable=g-import-not-at-top
  from ngm_jax.analysis import failed_seeds_note  # pylint: disable=g-import-not-at-top
  from ngm_jax.tables import metrics_table  # pylint: disable=g-import-not-at-top

  out = Path(out)
  meta, curves, iterations = result.meta, result.curves, result.iterations
  k, i = meta["num_tasks"], meta["train"]["iterations_per_task"]
  metrics = result.metrics
  write_json(out / "metrics.json", metrics)
  failed = result.failed
  for label, bad in failed.items():
    if bad.any():
      print(f"  warning: {label}: {int(bad.sum())}/{bad.size} seeds failed"
            f" (seed index {', '.join(map(str, np.flatnonzero(bad)))})", flush=True)
  write_json(out / "failed_seeds.json",
             {label: np.flatnonzero(bad).tolist() for label, bad in failed.items()})
  notes = [
      f"Task-1 accuracy evaluated every {meta['train']['eval_every']} iteration(s) on"
      f" {meta['task1_eval_size']} of {meta['task1_test_size']} Task-1 test images.",
  ]
  options = {k_: v for k_, v in (meta.get("benchmark_options") or {}).items() if v is not None}
  if options:
    notes.append("Benchmark options: " + ", ".join(f"{k_}={v}" for k_, v in options.items())
                 + ".")
  if meta.get("test_subset_per_task"):
    notes.append(f"Each task's test set limited to a fixed random subset of"
                 f" {meta['test_subset_per_task']} images (seed"
                 f" {meta.get('test_subset_seed', 0)}).")
  variants = meta.get("variants", {})
  resets = [label for label in meta["optimizers"]
            if variants.get(label, {}).get("reset_at_task_boundaries",
                                           variants.get(label, {}).get("optimizer", label)
                                           .endswith("_reset"))]
  if resets:
    notes.append(f"{', '.join(resets)} reset the optimizer state at every task"
                 " boundary: the only place task identity is used (an oracle).")
  no_gain = [label for label, v in variants.items() if v.get("has_gain") is False]
  if no_gain:
    notes.append(f"{', '.join(no_gain)}: no gain in the optimizer state (no"
                 " gain_modulation); recorded as gain 1, the raw weights are trained.")
  note = failed_seeds_note(failed, meta.get("num_classes"))
  notes += [note] if note else []
  num_seeds = result.num_seeds
  header = (f"# {meta['benchmark']}: {num_seeds} seeds, {k} tasks x {i} iterations\n\n"
            + "\n".join(notes) + "\n\n")
  without_failed = metrics_of_kept_seeds(curves, failed, iterations, k, i)
  tmp = out / "table.md.tmp"
  tmp.write_text(header + metrics_table(metrics, num_seeds, failed, without_failed))
  os.replace(tmp, out / "table.md")
  plots.plot_stability_gap(
      curves, iterations, k, i,
      title=f"{meta['benchmark']} ({num_seeds} seeds, mean ± s.e.)",
      path=out / "figure.png",
      failed=failed,
  )
  return metrics


def report(out: str | os.PathLike) -> Result:
  """Re-makes the derived files of the run saved in ``out`` and returns it
  (:func:`load_result`, then :func:`write_report`)."""
  result = load_result(out)
  write_report(result, out)
  return result
