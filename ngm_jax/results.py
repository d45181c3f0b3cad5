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
    figure.png         the paper's Figure 3 (see ngm_jax.plots)

and, beside it while a run writes, ``<out>.lock`` (:mod:`ngm_jax.folder_lock`).
The files' schema is checked when they are read (:mod:`ngm_jax.run_files`);
a file the disk refuses is a :class:`ngm_jax.files.WriteError` naming it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ngm_jax import folder_lock
from ngm_jax.files import atomic_path, writing
from ngm_jax.metrics import summarize
from ngm_jax.run_files import check_curves, load_curves, read_run_json, save_curves

__all__ = [
    "Result",
    "RUN_FILES",
    "save_result",
    "load_result",
    "write_report",
    "report",
    "write_figure",
    "display_name",
    "prepare_out",
    "work_folder",
    "finish_out",
    "release_out",
    "atomic_path",
    "append_log",
    "save_curves",
    "load_curves",
    "write_json",
    "read_json",
    "read_json_record",
    "compute_metrics",
    "metrics_of_kept_seeds",
    "command_line",
]



def command_line() -> str:
  """The command as typed, for ``run.json`` (``python -m pkg.mod ...`` stays
  that, where ``sys.argv`` would give the module's file path)."""
  return shlex.join(getattr(sys, "orig_argv", sys.argv))


def write_json(path: str | os.PathLike, obj: Any) -> None:
  """``obj`` as JSON in ``path``, written whole or not at all (:func:`atomic_path`)."""
  with atomic_path(path) as tmp:
    tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")


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

  Units: accuracies in ``curves`` and every value in :attr:`metrics`
  (``result.metrics[label]["avg_sg"]["mean"]``) are fractions in ``[0, 1]``;
  ``table.md`` and the command's summary print them in percent. Losses and
  the entropy are in nats.
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
    (:func:`ngm_jax.metrics.summarize`), as fractions (``table.md``: percent)."""
    return compute_metrics(self.curves, self.iterations, self.meta["num_tasks"],
                           self.meta["train"]["iterations_per_task"])

  @functools.cached_property
  def failed(self) -> dict[str, np.ndarray]:
    """``{label: [S] bool}``: seeds that diverged, or ended at chance
    (:func:`ngm_jax.failures.failed_seeds`, with this run's classes and
    test-set sizes)."""
    from ngm_jax.failures import failed_seeds_of_run
    return {label: failed_seeds_of_run(c, self.meta) for label, c in self.curves.items()}


#: What marks a folder as holding a run (finished or not).
_RUN_MARKS = ("curves.npz", "run.json", "checkpoints")


def work_folder(out: str | os.PathLike, overwrite: bool, resume: bool = False) -> Path:
  """The folder a run for ``out`` writes into (nothing is changed on disk):
  ``<out>.partial`` for an overwrite (and for resuming an unfinished one), so
  that the run already in ``out`` stays until the new one has finished
  (:func:`finish_out`); else ``out`` itself."""
  out = Path(out)
  partial = out.with_name(out.name + ".partial")
  if overwrite or (resume and partial.is_dir()):
    return partial
  return out


def prepare_out(out: str | os.PathLike, overwrite: bool, resume: bool = False) -> Path:
  """Takes ``out``'s lock (:mod:`ngm_jax.folder_lock`: one run per folder,
  kept until :func:`finish_out`), then makes the folder a run for ``out``
  writes into and returns it (:func:`work_folder`): ``out`` for a new run or
  a resumed one, a fresh ``<out>.partial`` for an overwrite (any older one
  removed), the existing ``<out>.partial`` to resume an unfinished overwrite.

  Raises:
    ngm_jax.folder_lock.FolderInUse: another run writes into ``out`` (a
      ValueError naming its PID and host).
    ValueError: ``out`` is a file, or already holds a run (finished or
      stopped) and neither ``overwrite`` nor ``resume`` is given.
    ngm_jax.files.WriteError: a folder cannot be made (full, read-only, ...).
  """
  out = Path(out)
  if out.exists() and not out.is_dir():
    raise ValueError(f"out={str(out)!r} is a file, not a folder; choose a folder for the run.")
  taken = folder_lock.acquire(out, run=True)
  try:
    return _make_work(out, overwrite, resume)
  except BaseException:
    if taken:
      folder_lock.release(out, run=True)
    raise


def _make_work(out: Path, overwrite: bool, resume: bool) -> Path:
  """:func:`prepare_out` once the lock is held."""
  with writing(out):
    _finish_interrupted_swap(out)
  held = [name for name in _RUN_MARKS if (out / name).exists()]
  if held and not (overwrite or resume):
    stopped = "curves.npz" not in held or (out / "checkpoints").exists()
    raise ValueError(
        f"{out} already holds a run{' that did not finish' if stopped else ''}; pass"
        f" {'resume=True to continue it, ' if stopped else ''}overwrite=True"
        " or choose another folder.")
  work = work_folder(out, overwrite, resume)
  if work != out and overwrite:
    shutil.rmtree(work, ignore_errors=True)
  with writing(work):
    work.mkdir(parents=True, exist_ok=True)
    if not resume:
      (work / "log.jsonl").unlink(missing_ok=True)
  return work


def _finish_interrupted_swap(out: Path) -> None:
  """Completes a :func:`finish_out` cut short between its two renames."""
  old = out.with_name(out.name + ".old")
  partial = out.with_name(out.name + ".partial")
  if old.is_dir() and not out.exists() and partial.is_dir():
    os.replace(partial, out)
  if old.is_dir() and out.exists():
    shutil.rmtree(old, ignore_errors=True)


def finish_out(work: str | os.PathLike, out: str | os.PathLike) -> Path:
  """Puts the finished run in ``work`` in ``out``'s place (nothing to do when
  they are the same folder): ``out`` is renamed ``<out>.old``, ``work``
  ``out``, then ``<out>.old`` removed; then gives back the lock
  :func:`prepare_out` took. Returns ``out``.

  Raises:
    ngm_jax.files.WriteError: a rename failed (``out`` then holds the old
      run, or :func:`prepare_out` completes the swap next time).
  """
  work, out = Path(work), Path(out)
  if work.resolve() != out.resolve():
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    with writing(out):
      if out.exists():
        os.replace(out, old)
      os.replace(work, out)
    shutil.rmtree(old, ignore_errors=True)
  folder_lock.release(out, run=True)
  return out


def release_out(out: str | os.PathLike) -> None:
  """Gives back ``out``'s lock if this process holds it (for a caller whose
  run ended in an error: a finished run gives it back in :func:`finish_out`,
  and a process's locks end with it)."""
  folder_lock.release(out)


def append_log(out: str | os.PathLike, record: Mapping[str, Any]) -> None:
  """One JSON line added to ``out/log.jsonl`` (the file rewritten whole,
  :func:`atomic_path`, so a killed run never leaves half a line)."""
  path = Path(out) / "log.jsonl"
  before = path.read_text() if path.exists() else ""
  if before and not before.endswith("\n"):
    before += "\n"
  with atomic_path(path) as tmp:
    tmp.write_text(before + json.dumps(dict(record)) + "\n")


def save_result(result: Result, out: str | os.PathLike) -> Path:
  """Writes ``out/curves.npz`` and ``out/run.json`` (each atomically)."""
  out = Path(out)
  with writing(out):
    out.mkdir(parents=True, exist_ok=True)
  save_curves(out / "curves.npz", result.curves, result.iterations)
  write_json(out / "run.json", result.meta)
  return out


def read_json_record(path: str | os.PathLike) -> dict[str, Any]:
  """A run's ``run.json``, checked for what the report needs
  (:func:`ngm_jax.run_files.read_run_json`: ValueError naming the file, the
  key and what was expected)."""
  return read_run_json(path)


def load_result(out: str | os.PathLike, *, complete: bool = True) -> Result:
  """The :class:`Result` saved in ``out`` by :func:`save_result`.

  Args:
    out: the run's folder.
    complete: refuse curves that lack a variant ``run.json`` lists (a run
      that stopped early); False loads the variants that are there.

  Raises:
    ValueError: ``out`` holds no saved run, or a damaged or incomplete one:
      the message names the file and what is wrong (missing, not JSON, not an
      ``.npz`` archive, cut short, a variant or curve missing, wrong shapes).
  """
  out = Path(out)
  if not out.is_dir():
    raise ValueError(f"{out} holds no saved run: "
                     + ("it is a file, not a run's folder." if out.exists()
                        else "no such folder."))
  have = [name for name in ("run.json", "curves.npz") if (out / name).exists()]
  if not have:
    raise ValueError(f"{out} holds no saved run (no run.json and no curves.npz).")
  if len(have) == 1:
    lost = "curves.npz" if have == ["run.json"] else "run.json"
    raise ValueError(f"{out / lost} is missing: {out} holds only {have[0]}, an incomplete"
                     " run (it stopped before saving, or the file was removed).")
  meta = read_run_json(out / "run.json")
  curves, iterations = load_curves(out / "curves.npz")
  check_curves(out, meta, curves, iterations, complete)
  if not complete:
    meta = {**meta, "optimizers": [label for label in meta["optimizers"] if label in curves]}
  return Result(curves, iterations, meta)


def _task1_note(meta: Mapping[str, Any]) -> str:
  """Which Task-1 test images the per-iteration evaluation used, of how many."""
  every = meta["train"]["eval_every"]
  used, kept = meta["task1_eval_size"], meta["task1_test_size"]
  if not meta.get("test_subset_per_task"):
    return (f"Task-1 accuracy evaluated every {every} iteration(s) on {used} of {kept}"
            " Task-1 test images.")
  full = (meta.get("test_sizes_full") or [None])[0]
  of_full = (f"Task 1 has {full} test images" if full is not None
             else "the full Task-1 test size was not recorded by this run")
  return (f"Task-1 accuracy evaluated every {every} iteration(s) on {used} of the {kept}"
          f" Task-1 test images in the fixed subset ({of_full}).")


def _subset_note(meta: Mapping[str, Any]) -> str:
  """The per-task test subset, with the real sizes (before and after)."""
  text = (f"Each task's test set limited to a fixed random subset of at most"
          f" {meta['test_subset_per_task']} images (seed {meta.get('test_subset_seed', 0)})")
  full, kept = meta.get("test_sizes_full"), meta.get("test_sizes")
  if full and kept:
    text += (f": {', '.join(map(str, kept))} of {', '.join(map(str, full))} test images"
             " per task")
  return text + "."


def write_report(result: Result, out: str | os.PathLike) -> dict:
  """``metrics.json``, ``failed_seeds.json``, ``table.md`` and ``figure.png``
  of ``result`` in ``out``; returns the metrics. Matplotlib is imported here,
  only when a figure is drawn."""
  from ngm_jax.failures import failed_seeds_note, failure_reasons, run_test_sizes  # pylint: disable=g-import-not-at-top
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
  notes = [_task1_note(meta)]
  options = {k_: v for k_, v in (meta.get("benchmark_options") or {}).items() if v is not None}
  if options:
    notes.append("Benchmark options: " + ", ".join(f"{k_}={v}" for k_, v in options.items())
                 + ".")
  if meta.get("test_subset_per_task"):
    notes.append(_subset_note(meta))
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
  notes.append(failed_seeds_note(
      failed, meta.get("num_classes"), run_test_sizes(meta),
      reasons={label: failure_reasons(c, meta.get("num_classes"), run_test_sizes(meta))
               for label, c in curves.items()}))
  chunked = {label: t for label, t in meta.get("timings", {}).items() if t.get("chunks", 1) > 1}
  if chunked:
    notes.append("Seeds that did not fit one device's memory ran in chunks: " + "; ".join(
        f"{label} in {t['chunks']} chunks of {t['runs_per_chunk']} seeds"
        for label, t in chunked.items()) + ".")
  mesh = meta.get("mesh")
  if mesh and (mesh.get("devices", 1) > 1 or mesh.get("processes", 1) > 1):
    notes.append(f"Seeds sharded over {mesh['devices']} {mesh['device_kind']} devices in"
                 f" {mesh['processes']} process(es).")
  num_seeds = result.num_seeds
  name = display_name(meta)
  header = (f"# {name}: {num_seeds} seeds, {k} tasks x {i} iterations\n\n"
            + "\n".join(notes) + "\n\n")
  without_failed = metrics_of_kept_seeds(curves, failed, iterations, k, i)
  with atomic_path(out / "table.md") as tmp:
    tmp.write_text(header + metrics_table(metrics, num_seeds, failed, without_failed))
  write_figure(result, out)
  return metrics


def write_figure(result: Result, out: str | os.PathLike) -> None:
  """``out/figure.png``: the stability-gap figure of ``result``
  (:func:`ngm_jax.plots.plot_stability_gap`), titled with its
  :func:`display_name`."""
  from ngm_jax import plots  # pylint: disable=g-import-not-at-top
  meta = result.meta
  plots.plot_stability_gap(
      result.curves, result.iterations, meta["num_tasks"], meta["train"]["iterations_per_task"],
      title=f"{display_name(meta)} ({result.num_seeds} seeds, mean ± s.e.)",
      path=Path(out) / "figure.png", failed=result.failed)


def display_name(meta: Mapping[str, Any]) -> str:
  """A run's title in its table and figure: ``--name`` (run.json's
  ``benchmark_label``), else the registered benchmark's display name
  (``"Split MNIST"``), else the stream's name as recorded."""
  from ngm_jax import benchmarks  # pylint: disable=import-outside-toplevel  # loads the models
  name = meta["benchmark"]
  record = benchmarks.BENCHMARKS.get(name)
  return meta.get("benchmark_label") or (record.display_name if record else name)


def report(out: str | os.PathLike) -> Result:
  """Re-makes the derived files of the run saved in ``out`` and returns it
  (:func:`load_result`, then :func:`write_report`)."""
  result = load_result(out)
  write_report(result, out)
  return result
