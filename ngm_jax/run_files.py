"""A saved run's files: ``curves.npz`` written and read, and the schema of
both files, checked when they are read back.

``run.json`` (:func:`read_run_json`): every key the report reads, of its
type. ``curves.npz`` (:func:`check_curves`): every variant ``run.json``
lists and no other, the curves the report reads, each curve's shape against
the iteration axes, the seeds and the task count of ``run.json``. A mismatch
is a ValueError naming the file, the key, what it holds and what was
expected, before anything is computed from them.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ngm_jax.files import atomic_path

__all__ = ["save_curves", "load_curves", "read_run_json", "check_curves", "RUN_JSON_KEYS",
           "REQUIRED_CURVES"]


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
  with atomic_path(path) as tmp:
    np.savez_compressed(tmp, **arrays)


def load_curves(
    path: str | os.PathLike,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
  """Inverse of :func:`save_curves`: ``(curves, iterations)``, optimizers in
  the order they were saved.

  Raises:
    ValueError: the file is missing, not a NumPy ``.npz`` archive, cut short
      or damaged, or holds an entry not named ``<label>/<curve>`` (the
      message names the file and what is wrong).
  """
  path = Path(path)
  if not path.is_file():
    raise ValueError(f"{path} is missing (or not a file): the run's curves are not there.")
  curves: dict[str, dict[str, np.ndarray]] = {}
  iterations: dict[str, np.ndarray] = {}
  try:
    data = np.load(path, allow_pickle=False)
    if not hasattr(data, "files"):  # a single .npy array: no context manager, no entries
      raise ValueError("it is a single .npy array, not an .npz archive of curves")
    with data:
      for key in data.files:
        group, sep, name = key.partition("/")
        if not sep or not group or not name:
          raise ValueError(f"it holds an entry {key!r}, not named <label>/<curve>")
        target = iterations if group == "iterations" else curves.setdefault(group, {})
        target[name] = data[key]
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
    what = str(e) if isinstance(e, ValueError) and str(e).startswith("it ") else (
        f"{type(e).__name__}: {e}")
    raise ValueError(f"{path} cannot be read as the run's curves ({what}): the file is"
                     " damaged or was cut short. Run the experiment again, or restore the"
                     " file from a copy.") from None
  return curves, iterations


def _int(low: int) -> Callable[[Any], bool]:
  return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
  return lambda v: v is None or check(v)


def _list_of(check: Callable[[Any], bool], non_empty: bool = True) -> Callable[[Any], bool]:
  return lambda v: isinstance(v, list) and (bool(v) or not non_empty) and all(map(check, v))


def _objects(v: Any) -> bool:
  return isinstance(v, dict) and all(isinstance(x, dict) for x in v.values())


def _labels(v: Any) -> bool:
  return _list_of(lambda x: isinstance(x, str) and bool(x))(v) and len(set(v)) == len(v)


#: run.json's keys: ``key: (required, check, what is expected)``.
RUN_JSON_KEYS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "benchmark": (True, lambda v: isinstance(v, str) and bool(v), "the benchmark's name"),
    "num_tasks": (True, _int(1), "the number of tasks, an integer >= 1"),
    "train": (True, lambda v: isinstance(v, dict), "the training config, a JSON object"),
    "optimizers": (True, _labels, "the variants' labels, a list of distinct strings"),
    "seeds": (True, _list_of(_int(0)), "the seeds, a list of integers >= 0"),
    "task1_eval_size": (True, _int(0), "a number of images, an integer >= 0"),
    "task1_test_size": (True, _int(0), "a number of images, an integer >= 0"),
    "num_classes": (False, _optional(_int(1)), "null or an integer >= 1"),
    "test_sizes": (False, _optional(_list_of(_int(0), False)),
                   "null or one number of test images per task"),
    "test_sizes_full": (False, _optional(_list_of(_int(0), False)),
                        "null or one number of test images per task"),
    "test_subset_per_task": (False, _optional(_int(1)), "null or an integer >= 1"),
    "benchmark_options": (False, _optional(lambda v: isinstance(v, dict)),
                          "null or a JSON object"),
    "benchmark_label": (False, _optional(lambda v: isinstance(v, str)), "null or a string"),
    "variants": (False, _objects, "a JSON object of one object per variant"),
    "timings": (False, _objects, "a JSON object of one object per variant"),
    "mesh": (False, _optional(lambda v: isinstance(v, dict)), "null or a JSON object"),
}
#: run.json's ``train`` keys the report reads: ``key: required``.
_TRAIN_KEYS = {"iterations_per_task": True, "eval_every": True, "task_eval_every": False}
#: The curves every variant must have for the metrics, the table and the figure.
REQUIRED_CURVES = ("task1_acc", "task1_loss", "task_acc", "gain")


def _shown(value: Any) -> str:
  text = json.dumps(value)
  return (text if len(text) <= 60 else text[:57] + "...") + f" (a JSON {_json_type(value)})"


def _json_type(value: Any) -> str:
  return {dict: "object", list: "list", str: "string", bool: "boolean", int: "integer",
          float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def read_run_json(path: str | Path) -> dict[str, Any]:
  """A run's ``run.json``, checked against :data:`RUN_JSON_KEYS`.

  Raises:
    ValueError: the file cannot be read, is not JSON or not an object, lacks
      a key, or holds a key of the wrong type or value (naming the file, the
      key, what it holds and what is expected).
  """
  path = Path(path)
  try:
    meta = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column"
                     f" {e.colno}): the file is damaged or was cut short.") from None
  except (OSError, UnicodeDecodeError) as e:
    raise ValueError(f"{path} cannot be read ({type(e).__name__}: {e}).") from None
  if not isinstance(meta, dict):
    raise ValueError(f"{path} holds a JSON {_json_type(meta)}, not a run's record"
                     " (a JSON object).")
  missing = [k for k, (required, _, _) in RUN_JSON_KEYS.items() if required and k not in meta]
  if missing:
    raise ValueError(f"{path} lacks {', '.join(missing)}: it is not a complete run record.")
  for key, (_, check, expected) in RUN_JSON_KEYS.items():
    if key in meta and not check(meta[key]):
      raise ValueError(f"{path}: {key!r} is {_shown(meta[key])}; expected {expected}.")
  train = meta["train"]
  lacking = [k for k, required in _TRAIN_KEYS.items() if required and k not in train]
  if lacking:
    raise ValueError(f"{path}: its 'train' record lacks {', '.join(lacking)}.")
  for key in _TRAIN_KEYS:
    if key in train and not _int(1)(train[key]):
      raise ValueError(f"{path}: 'train.{key}' is {_shown(train[key])}; expected an integer"
                       " >= 1.")
  sizes = meta.get("test_sizes")
  if sizes and len(sizes) != meta["num_tasks"]:
    raise ValueError(f"{path}: 'test_sizes' has {len(sizes)} entries; expected one per task,"
                     f" {meta['num_tasks']} ('num_tasks').")
  return meta


def _axes(where: Path, meta: Mapping[str, Any], iterations: Mapping[str, np.ndarray]
          ) -> dict[str, int]:
  """The lengths of the iteration axes, checked against ``run.json``."""
  train, k = meta["train"], meta["num_tasks"]
  total = k * train["iterations_per_task"]
  expected = {"step": (total, f"num_tasks {k} x train.iterations_per_task"
                              f" {train['iterations_per_task']}"),
              "task1": (total // train["eval_every"],
                        f"{total} iterations / train.eval_every {train['eval_every']}")}
  if "task_eval_every" in train:
    expected["tasks"] = (total // train["task_eval_every"],
                         f"{total} iterations / train.task_eval_every"
                         f" {train['task_eval_every']}")
  lengths = {}
  for kind in ("step", "task1", "tasks"):
    if kind not in iterations:
      raise ValueError(f"{where} lacks the iteration axis 'iterations/{kind}'.")
    axis = np.asarray(iterations[kind])
    if axis.ndim != 1 or not np.issubdtype(axis.dtype, np.integer):
      raise ValueError(f"{where}: iterations/{kind} is {axis.dtype} of shape {axis.shape};"
                       " expected a 1-D array of iteration numbers (integers).")
    want, why = expected.get(kind, (None, ""))
    if want is not None and len(axis) != want:
      raise ValueError(f"{where}: iterations/{kind} has {len(axis)} points; expected {want}"
                       f" ({why}, from run.json).")
    lengths[kind] = len(axis)
  if lengths["tasks"] % k:
    raise ValueError(f"{where}: iterations/tasks has {lengths['tasks']} points, not a multiple"
                     f" of the {k} tasks run.json's num_tasks gives.")
  return lengths


def check_curves(out: Path, meta: Mapping[str, Any], curves: Mapping[str, Mapping[str, Any]],
                 iterations: Mapping[str, np.ndarray], complete: bool = True) -> None:
  """``curves.npz`` against ``run.json`` (``meta``, :func:`read_run_json`).

  Every variant ``run.json`` lists is there (unless not ``complete``) and no
  other; each has :data:`REQUIRED_CURVES`; every curve is numeric with the
  seeds first, and the known curves have their full shape: ``task1_acc``,
  ``task1_loss`` ``[S, len(iterations/task1)]``; ``gain``, ``entropy``,
  ``train_loss`` ``[S, len(iterations/step)]``; ``task_acc``, ``task_loss``
  ``[S, len(iterations/tasks), num_tasks]``; ``diverged_at`` ``[S]``.

  Raises:
    ValueError: naming the file, the variant/curve, its shape and the one
      expected (with where each length comes from).
  """
  where, record = out / "curves.npz", out / "run.json"
  listed = list(meta["optimizers"])
  missing = [label for label in listed if label not in curves]
  if missing and complete:
    have = [label for label in listed if label in curves]
    raise ValueError(
        f"{where} holds {', '.join(have) or 'no variant'} but not {', '.join(missing)}, which"
        f" {record} lists: the run stopped before finishing"
        f" {'them' if len(missing) > 1 else 'it'}. Finish or re-run it; a report of only part"
        " of the run is refused.")
  extra = [label for label in curves if label not in listed]
  if extra:
    raise ValueError(f"{where} holds {', '.join(extra)}, which {record} does not list (it lists"
                     f" {', '.join(listed)}): the two files are not of one run.")
  n = _axes(where, meta, iterations)
  s, k = len(meta["seeds"]), meta["num_tasks"]
  seeds, tasks = f"{s} seeds (run.json's seeds)", f"{k} tasks (run.json's num_tasks)"
  shapes = {
      "task1_acc": ((s, n["task1"]), (seeds, f"{n['task1']} points (iterations/task1)")),
      "task1_loss": ((s, n["task1"]), (seeds, f"{n['task1']} points (iterations/task1)")),
      "task_acc": ((s, n["tasks"], k), (seeds, f"{n['tasks']} points (iterations/tasks)",
                                        tasks)),
      "task_loss": ((s, n["tasks"], k), (seeds, f"{n['tasks']} points (iterations/tasks)",
                                         tasks)),
      "diverged_at": ((s,), (seeds,)),
      **{name: ((s, n["step"]), (seeds, f"{n['step']} iterations (iterations/step)"))
         for name in ("gain", "entropy", "train_loss")},
  }
  for label, per_curve in curves.items():
    absent = [c for c in REQUIRED_CURVES if c not in per_curve]
    if absent:
      raise ValueError(f"{where}: variant {label!r} lacks the curve(s) {', '.join(absent)}.")
    for name, value in per_curve.items():
      value = np.asarray(value)
      if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
        raise ValueError(f"{where}: {label}/{name} holds {value.dtype} values; expected"
                         " numbers.")
      if value.ndim < 1 or value.shape[0] != s:
        raise ValueError(f"{where}: {label}/{name} has shape {value.shape}; its first"
                         f" axis must be the {s} seeds {record} lists.")
      want, why = shapes.get(name, (None, ()))
      if want is not None and value.shape != want:
        raise ValueError(f"{where}: {label}/{name} has shape {value.shape}; expected {want}:"
                         f" {' x '.join(why)}.")
