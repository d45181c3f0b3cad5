"""Live metrics: one small writer interface, three sinks, fed at every segment.

While :func:`ngm_jax.run_benchmark` trains, the driver hands every segment's
records to a :class:`RunLog`, which writes the seed mean of each variant's
curves, with the iteration (1-based, as ``result.iterations``) as the step,
to :class:`MetricWriter` s: the interface of flax's ``clu.metric_writers``
(``write_scalars(step, {tag: value})``, ``flush()``, ``close()``), so that a
writer of yours plugs in too. The sinks:

- :class:`CsvWriter`: ``OUT/metrics.csv``, always when a run writes a folder;
  long form, one row per value: ``variant,step,tag,value``.
- :class:`TensorBoardWriter`: event files in ``OUT/tensorboard/<variant>/``
  (``tensorboard --logdir OUT/tensorboard`` draws the variants on one chart
  per tag). Written with tensorboardX (the ``tensorboard`` extra): a small,
  maintained writer that needs only numpy and protobuf. clu's TensorBoard
  writer and ``flax.metrics.tensorboard`` write through TensorFlow (1.3 GB),
  and tensorboard's own event writer is internal to it.
- :class:`WandbWriter`: one W&B run per variant, grouped by the run's folder
  name, files in ``OUT/wandb/`` (the ``wandb`` extra; ``WANDB_MODE=offline``
  writes there without an account, ``wandb sync`` uploads later).

Tags are ``<variant>/<name>``; values are fractions (accuracy) and nats (loss),
as in ``result.curves``, averaged over the seeds (nothing per seed):

- ``train_loss``, ``gain``: every iteration (the minibatch loss, the gain);
- ``task1_acc``, ``task1_loss``: every ``eval_every`` iterations;
- ``task_acc/<k>``: Task ``k``'s test accuracy (``k = 1..K``), every
  ``task_eval_every`` iterations;
- ``final/<metric>``: at the variant's last iteration, the means of
  ``result.metrics``: ``avg_acc``, ``avg_min_acc``, ``wc_acc``, ``avg_sg``
  and ``dl_final_acc_all`` (final accuracy over all tasks).

A resumed run continues the same logs, each step once: a session writes a
variant it trains whole (the steps up to its checkpoint again, from the
checkpoint's records), after a writer's optional ``begin(variant)`` has
dropped what a stopped session wrote of it (the CSV's rows, the TensorBoard
folder; W&B, which cannot, continues the same run and skips the steps it
has). A writer without ``begin`` gets those steps again. Only process 0 writes.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import shutil
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from ngm_jax.files import atomic_path
from ngm_jax.metrics import summarize

__all__ = ["MetricWriter", "CsvWriter", "TensorBoardWriter", "WandbWriter", "RunLog",
           "SINKS", "FINAL_METRICS", "check_sinks", "segment_scalars", "parse_log",
           "open_run_log"]

#: The built-in sinks: name → (the module each needs, the extra that installs it).
SINKS = {"csv": (None, None), "tensorboard": ("tensorboardX", "tensorboard"),
         "wandb": ("wandb", "wandb")}
#: The final metrics written at a variant's end (keys of ``result.metrics``).
FINAL_METRICS = ("avg_acc", "avg_min_acc", "wc_acc", "avg_sg", "dl_final_acc_all")


@runtime_checkable
class MetricWriter(Protocol):
  """Where scalars go (``clu.metric_writers.MetricWriter``'s scalar part).

  A writer may also have ``begin(variant)``: called before a session writes
  ``variant``, which it then writes from its first step; a writer that keeps
  what an earlier session wrote drops that variant's part there.
  """

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """``{tag: value}`` at ``step`` (an iteration); steps rise within a variant."""

  def flush(self) -> None:
    """Called after every segment."""

  def close(self) -> None:
    """Flush and release the files."""


def _split(tag: str) -> tuple[str, str]:
  """``"adam/task_acc/2"`` → ``("adam", "task_acc/2")``; a tag without a variant → ``("", tag)``."""
  return tuple(tag.split("/", 1)) if "/" in tag else ("", tag)


def check_sinks(names: Sequence[str], flag: str = "log") -> None:
  """Raises ValueError, naming ``flag``, for a name not in :data:`SINKS` and for
  a sink whose library is not installed (naming the extra that installs it),
  before anything is trained."""
  for name in names:
    if name not in SINKS:
      raise ValueError(f"{flag} {name!r}: unknown sink; choose from {', '.join(SINKS)}"
                       " (or pass a MetricWriter object).")
    module, extra = SINKS[name]
    if module is not None and importlib.util.find_spec(module) is None:
      raise ValueError(f"{flag} {name}: needs {module}, which is not installed;"
                       f" pip install 'ngm-jax[{extra}]' (in a checkout: pip install -e"
                       f" '.[{extra}]')")


class CsvWriter:
  """``variant,step,tag,value`` rows appended to a CSV file (header first).

  ``value`` is the float's shortest exact text (``repr``); read it with
  ``pandas.read_csv`` and pivot on ``tag``. Tags without a ``variant/`` prefix
  get an empty variant.

  Args:
    path: the file (``OUT/metrics.csv``).
    fresh: start a new file (a new run); else append to what is there (resume).
  """

  COLUMNS = ("variant", "step", "tag", "value")

  def __init__(self, path: str | os.PathLike, *, fresh: bool = True):
    self.path = Path(path)
    if fresh:
      self.path.unlink(missing_ok=True)
    self._file = None

  def begin(self, variant: str) -> None:
    """Drops the rows of ``variant`` (and a row a killed run left half-written)."""
    self._close_file()
    if not self.path.exists():
      return
    text = self.path.read_text()
    complete = text[:text.rfind("\n") + 1]  # a line without its newline was cut short
    rows = list(csv.reader(io.StringIO(complete)))
    kept = [r for r in rows[1:] if r and r[0] != variant]
    if len(kept) != len(rows) - 1 or complete != text:
      with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([list(self.COLUMNS)] + kept)

  def _open(self):
    if self._file is None:
      new = not self.path.exists() or self.path.stat().st_size == 0
      self._file = open(self.path, "a", newline="")
      self._csv = csv.writer(self._file)
      if new:
        self._csv.writerow(self.COLUMNS)
    return self._csv

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    rows = []
    for tag, value in scalars.items():
      variant, name = _split(tag)
      rows.append((variant, int(step), name, repr(float(value))))
    self._open().writerows(rows)

  def flush(self) -> None:
    if self._file is not None:
      self._file.flush()

  def _close_file(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None

  def close(self) -> None:
    self._close_file()


class TensorBoardWriter:
  """Event files, one folder per variant: tag ``adam/train_loss`` is tag
  ``train_loss`` in ``folder/adam/`` (tensorboardX's ``SummaryWriter``).

  Args:
    folder: ``OUT/tensorboard``.
    fresh: remove what is there (a new run); else keep it (resume).
  """

  def __init__(self, folder: str | os.PathLike, *, fresh: bool = True):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._summary_writer = SummaryWriter
    self.folder = Path(folder)
    if fresh:
      shutil.rmtree(self.folder, ignore_errors=True)
    self._writers: dict[str, Any] = {}

  def begin(self, variant: str) -> None:
    """Removes ``variant``'s folder: this session writes it again, whole."""
    if variant in self._writers:
      self._writers.pop(variant).close()
    shutil.rmtree(self.folder / variant, ignore_errors=True)

  def _writer(self, variant: str):
    if variant not in self._writers:
      self._writers[variant] = self._summary_writer(str(self.folder / variant))
    return self._writers[variant]

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    for tag, value in scalars.items():
      variant, name = _split(tag)
      self._writer(variant).add_scalar(name, float(value), int(step))

  def flush(self) -> None:
    for writer in self._writers.values():
      writer.flush()

  def close(self) -> None:
    for writer in self._writers.values():
      writer.close()
    self._writers.clear()


class WandbWriter:
  """One W&B run per variant (name: the variant, group: ``group``), files in
  ``folder/wandb/``; ``folder/wandb/ngm_jax_runs.json`` keeps each variant's
  run id and last step, so that a resumed run continues the same W&B run
  (``resume="allow"``) and skips the steps it already has.

  Args:
    folder: ``OUT``.
    fresh: forget the runs an earlier session started (a new run).
    group: the W&B group (the run folder's name).
    config: recorded as each W&B run's config, with ``variant`` (the label)
      and ``optimizer`` (``variants[label]``, the run record's entry).
    project: the W&B project (default ``$WANDB_PROJECT``, else ``ngm-jax``).
  """

  STATE = "ngm_jax_runs.json"

  def __init__(self, folder: str | os.PathLike, *, fresh: bool = True, group: str | None = None,
               config: Mapping[str, Any] | None = None,
               variants: Mapping[str, Any] | None = None, project: str | None = None):
    import wandb  # pylint: disable=g-import-not-at-top
    self._wandb = wandb
    self.folder = Path(folder)
    self._state_path = self.folder / "wandb" / self.STATE
    self._state_path.parent.mkdir(parents=True, exist_ok=True)
    if fresh:
      self._state_path.unlink(missing_ok=True)
    self.state = json.loads(self._state_path.read_text()) if self._state_path.exists() else {}
    self.group, self.config, self.variants = group, dict(config or {}), dict(variants or {})
    self.project = project or os.environ.get("WANDB_PROJECT") or "ngm-jax"
    self._runs: dict[str, Any] = {}
    self._sent: dict[str, int] = {}  # per variant: the last step an earlier session sent

  def begin(self, variant: str) -> None:
    """Starts (or continues) ``variant``'s W&B run; the steps an earlier
    session sent it are not sent again."""
    if variant in self._runs:
      return
    for run in self._runs.values():  # variants train one after another
      run.finish()
    self._runs.clear()
    entry = self.state.setdefault(variant, {"id": uuid.uuid4().hex[:16], "step": 0})
    self._sent[variant] = entry["step"]
    try:
      self._runs[variant] = self._wandb.init(
          project=self.project, dir=str(self.folder), id=entry["id"], name=variant or None,
          group=self.group, resume="allow", config={
              **self.config, "variant": variant, "optimizer": self.variants.get(variant)},
          reinit="create_new")
    except Exception as e:  # pylint: disable=broad-except  # wandb's: say what to do
      raise ValueError(f"log wandb: wandb.init failed ({type(e).__name__}: {e}); run"
                       " `wandb login`, or set WANDB_MODE=offline to write the runs into"
                       f" {self.folder / 'wandb'} and `wandb sync` them later.") from None
    self._save_state()

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    by_variant = defaultdict(dict)
    for tag, value in scalars.items():
      variant, name = _split(tag)
      by_variant[variant][name] = float(value)
    for variant, values in by_variant.items():
      self.begin(variant)
      if step > self._sent[variant]:
        self._runs[variant].log(values, step=int(step))
        self.state[variant]["step"] = max(self.state[variant]["step"], int(step))

  def _save_state(self) -> None:  # after every segment: renamed into place, not fsynced
    tmp = self._state_path.with_name(self.STATE + ".tmp")
    tmp.write_text(json.dumps(self.state, indent=1))
    os.replace(tmp, self._state_path)

  def flush(self) -> None:
    self._save_state()

  def close(self) -> None:
    for run in self._runs.values():
      run.finish()
    self._runs.clear()
    self._save_state()


def _seed_mean(x: Any) -> np.ndarray:
  return np.asarray(x, np.float64).mean(axis=0)


def segment_scalars(records: tuple, first_block: int) -> dict[int, dict[str, float]]:
  """``{step: {name: seed mean}}``, steps rising, of records ``(steps, task1,
  per_task)`` NumPy ``[S, blocks, ...]`` (:attr:`ngm_jax.driver.SegmentDone.records`)
  of the per-task-eval blocks after the first ``first_block``.

  ``steps`` ``[S, blocks, intervals, eval_every]`` gives ``train_loss`` and
  ``gain`` at every iteration, ``task1`` ``[S, blocks, intervals]``
  ``task1_acc`` and ``task1_loss`` at every ``eval_every``-th, ``per_task``
  ``task_acc`` ``[S, blocks, K]`` ``task_acc/1..K`` at each block's end.
  """
  steps, task1, per_task = records
  blocks, intervals, every = np.shape(steps["train_loss"])[1:4]
  per_block = intervals * every
  start = first_block * per_block
  out: dict[int, dict[str, float]] = defaultdict(dict)

  def put(name: str, values: np.ndarray, iterations: np.ndarray) -> None:
    for step, value in zip(iterations.tolist(), values.reshape(-1).tolist()):
      out[step][name] = value

  for name in ("train_loss", "gain"):
    put(name, _seed_mean(steps[name]), start + np.arange(1, blocks * per_block + 1))
  for name in ("task1_acc", "task1_loss"):
    put(name, _seed_mean(task1[name]), start + every * np.arange(1, blocks * intervals + 1))
  accuracy = _seed_mean(per_task["task_acc"])  # [blocks, K]
  ends = start + per_block * np.arange(1, blocks + 1)
  for k in range(accuracy.shape[-1]):
    put(f"task_acc/{k + 1}", accuracy[:, k], ends)
  return dict(sorted(out.items()))


class RunLog:
  """Feeds a run's writers: a variant's records as its segments finish
  (:meth:`begin` gives :class:`ngm_jax.segment_actions.SegmentActions` the
  callable), its final metrics at its end (:meth:`end`).

  Args:
    writers: the :class:`MetricWriter` s (none: every method does nothing).
    iterations: the run's ``result.iterations`` (``"step"``, ``"tasks"``).
    num_tasks, iterations_per_task: K and I, for the final metrics.
    owned: the writers :meth:`close` closes (the others it flushes).
  """

  def __init__(self, writers: Sequence[Any], iterations: Mapping[str, np.ndarray],
               num_tasks: int, iterations_per_task: int, owned: Sequence[Any] = ()):
    self.writers, self.owned = list(writers), list(owned)
    self.iterations, self.num_tasks = iterations, num_tasks
    self.iterations_per_task = iterations_per_task

  def begin(self, label: str, resume: tuple | None = None) -> Callable[[Any], None] | None:
    """Before ``label`` trains in this session: each writer's ``begin``, then
    the records of ``resume`` (a checkpoint's ``(carry, records,
    blocks_done)``) written again. Returns ``(SegmentDone) -> None`` (None
    without writers)."""
    if not self.writers:
      return None
    for writer in self.writers:
      if callable(getattr(writer, "begin", None)):
        writer.begin(label)
    if resume is not None and resume[2]:
      self._write(label, resume[1], 0)
    return lambda done: self.segment(label, done)

  def segment(self, label: str, done: Any) -> None:
    """After a segment (:class:`ngm_jax.driver.SegmentDone`): its steps, then a flush."""
    if done.records is not None:
      blocks = np.shape(done.records[0]["train_loss"])[1]
      self._write(label, done.records, done.blocks_done - blocks)

  def _write(self, label: str, records: tuple, first_block: int) -> None:
    for step, values in segment_scalars(records, first_block).items():
      self.write(step, {f"{label}/{name}": value for name, value in values.items()})
    self.flush()

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    for writer in self.writers:
      writer.write_scalars(step, scalars)

  def end(self, label: str, curves: Mapping[str, np.ndarray]) -> None:
    """``label/final/<metric>`` (:data:`FINAL_METRICS`, seed means) at the last iteration."""
    if not self.writers:
      return
    metrics = summarize(curves, self.num_tasks, self.iterations_per_task,
                        self.iterations["tasks"])
    means = {m: metrics[m]["mean"] for m in FINAL_METRICS}
    self.write(int(self.iterations["step"][-1]),
               {f"{label}/final/{m}": np.nan if v is None else v for m, v in means.items()})
    self.flush()

  def flush(self) -> None:
    for writer in self.writers:
      writer.flush()

  def close(self) -> None:
    """Flushes every writer and closes the owned ones."""
    try:
      self.flush()
    finally:
      for writer in self.owned:
        writer.close()

  def __enter__(self) -> "RunLog":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def parse_log(log: Any, out: Any) -> tuple[tuple[str, ...], list[Any]]:
  """:func:`ngm_jax.run_benchmark`'s ``log`` → ``(sink names, writer objects)``.

  Raises:
    TypeError: an entry that is neither a name nor a :class:`MetricWriter`.
    ValueError: an unknown name, a sink whose library is missing (naming its
      extra), a sink that writes files without ``out``.
  """
  entries = (log,) if isinstance(log, str) else tuple(log or ())
  names = tuple(e for e in entries if isinstance(e, str))
  objects = [e for e in entries if not isinstance(e, str)]
  for entry in objects:
    if not isinstance(entry, MetricWriter):
      raise TypeError(f"log: {entry!r} is neither a sink name ({', '.join(SINKS)}) nor a"
                      " MetricWriter (write_scalars(step, scalars), flush(), close()).")
  check_sinks(names, "log")
  files = [n for n in names if n != "csv"]
  if files and out is None:
    raise ValueError(f"log {', '.join(files)}: writes into the run's folder; pass out=.")
  return names, objects


def open_run_log(sinks: tuple[tuple[str, ...], list[Any]], work: Path | None, *,
                 writer: bool, resume: bool, meta: Mapping[str, Any],
                 iterations: Mapping[str, np.ndarray]) -> RunLog:
  """The run's :class:`RunLog`: on process 0 (``writer``), ``work/metrics.csv``
  whenever there is a folder, the named sinks of ``sinks`` (:func:`parse_log`)
  and the user's writers; elsewhere none.

  Args:
    resume: continuing a run saved in ``work`` (its logs are kept and continued).
    meta: the run record (``run.json``): ``num_tasks``, ``train``, and the W&B config.
  """
  names, objects = sinks
  args = (iterations, meta["num_tasks"], meta["train"]["iterations_per_task"])
  if not writer:
    return RunLog([], *args)
  owned: list[Any] = []
  if work is not None:
    owned.append(CsvWriter(work / "metrics.csv", fresh=not resume))
    if "tensorboard" in names:
      owned.append(TensorBoardWriter(work / "tensorboard", fresh=not resume))
    if "wandb" in names:
      config = {k: v for k, v in meta.items() if k not in ("timings", "resumed", "variants")}
      owned.append(WandbWriter(work, fresh=not resume, config=config,
                               variants=meta.get("variants"),
                               group=work.name.removesuffix(".partial")))
  return RunLog(owned + objects, *args, owned=owned)
