"""The run record (``run.json``): what a run was, built in one place.

Every command that trains (``run``, ``tune``, ``sweep``, replay and the
ablations) writes the same record: the protocol (benchmark, tasks, data
sizes, seeds, network, schedule), one entry per variant, and the
environment (device, versions, command). :func:`protocol_record` and
:func:`environment_record` are its two halves; :func:`run_record` joins
them. A resumed run must agree with the saved record on :data:`SAME_RUN`;
:func:`resume_differences` lists where it does not, leaf by leaf, so that a
refusal names the setting (``train.eta: saved 0.4, now 0.9``) and a command
line can name its flag.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from typing import Any, Mapping, NamedTuple, Sequence

import jax

from ngm_jax.config import TrainConfig, task1_eval_size, train_record
from ngm_jax.results import command_line
from ngm_jax.streams import TaskStream

__all__ = ["SAME_RUN", "protocol_record", "variant_record",
           "environment_record", "run_record", "Difference", "resume_differences",
           "ResumeMismatch"]

#: What must agree between a saved run and the command that resumes it.
SAME_RUN = ("benchmark", "kind", "num_tasks", "task_names", "train", "optimizers", "variants",
            "seeds", "seed_hyperparams", "task1_eval_size", "task1_test_size", "test_sizes",
            "train_size", "num_classes", "model", "model_kind", "gain_placement", "augment",
            "loop", "seed_axis", "benchmark_options", "test_subset_per_task",
            "test_subset_seed", "test_sizes_full")


def protocol_record(stream: TaskStream, config: TrainConfig, *, seeds: Sequence[int],
                    model: str, augment: bool, kind: str | None = None,
                    model_kind: str | None = None,
                    gain_placement: str | None = None) -> dict[str, Any]:
  """What was trained and evaluated: the stream, its sizes, the schedule, the
  seeds and the network.

  Args:
    stream: the task stream trained on.
    config: the run's schedule (each variant may have its own, in
      :func:`variant_record`).
    seeds: the seeds run (``jax.random.key(seed)`` each).
    model: the network's class name (e.g. ``"MLP"``).
    augment: whether training minibatches were augmented.
    kind, model_kind, gain_placement: the benchmark's kind (``"mnist"``,
      ``"image"``), ``"linen"``/``"nnx"``, the gain placement's name; left out
      when None.
  """
  record = {
      "benchmark": stream.name,
      "kind": kind,
      "num_tasks": stream.num_tasks,
      "task_names": list(stream.task_names),
      "train": dataclasses.asdict(config),
      "seeds": [int(s) for s in seeds],
      "task1_eval_size": task1_eval_size(stream, config),
      "task1_test_size": int(stream.test_task_ends[0]),
      "test_sizes": stream.task_sizes("test").tolist(),
      "train_size": int(stream.train_task_ends[-1]),
      "num_classes": stream.num_classes,
      "model": model,
      "model_kind": model_kind,
      "gain_placement": gain_placement,
      "augment": bool(augment),
  }
  return {k: v for k, v in record.items() if v is not None}


def variant_record(optimizer: str, config: TrainConfig, **more: Any) -> dict[str, Any]:
  """One variant's entry: its optimizer (a name or a description), its
  schedule and hyperparameters, and anything more (``has_gain``, ...)."""
  return {"optimizer": optimizer, "train": dataclasses.asdict(config), **more}


def environment_record(mesh: Any = None) -> dict[str, Any]:
  """Where and how it ran: the first device, the mesh (if given; described by
  :func:`ngm_jax.sharding.describe_mesh`), versions and the command line."""
  device = jax.devices()[0]
  record = {"device": f"{device.platform}: {device.device_kind}"}
  if mesh is not None:
    from ngm_jax.sharding import describe_mesh  # pylint: disable=g-import-not-at-top
    record["mesh"] = describe_mesh(mesh)
  return {**record, "jax_version": jax.__version__, "python": platform.python_version(),
          "command": command_line()}


def run_record(protocol: Mapping[str, Any], variants: Mapping[str, Mapping[str, Any]], *,
               execution: Mapping[str, Any] | None = None, mesh: Any = None,
               extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """The whole ``run.json`` record at the start of a run.

  Args:
    protocol: :func:`protocol_record`.
    variants: ``{label: variant_record(...)}`` in training order.
    execution: how it ran (``{"loop": ..., "seed_axis": ...}``).
    mesh: the device mesh, for :func:`environment_record`.
    extra: more keys (a command's own, e.g. ``benchmark_options``); they may
      not replace the record's own keys.

  Returns:
    ``{**protocol, "optimizers", "variants", **execution, **environment,
    **extra, "timings": {}}``; the caller adds ``timings[label]`` and
    ``wall_s`` as the run goes.
  """
  extra = dict(extra or {})
  record = {**protocol, "optimizers": list(variants),
            "variants": {label: dict(v) for label, v in variants.items()},
            **dict(execution or {}), **environment_record(mesh)}
  clash = sorted(set(extra) & set(record))
  if clash:
    raise ValueError(f"extra run.json keys {clash} would replace the record's own.")
  return {**record, **extra, "timings": {}}


class Difference(NamedTuple):
  """One setting in which a resumed run differs from the saved one.

  Attributes:
    path: the keys down to it, e.g. ``("train", "eta")``.
    saved, now: its value in the saved ``run.json`` and in this run.
  """
  path: tuple[str, ...]
  saved: Any
  now: Any

  def __str__(self) -> str:
    return f"{'.'.join(self.path)}: saved {self.saved!r}, now {self.now!r}"


def _leaf_differences(saved: Any, now: Any, path: tuple[str, ...]) -> list[Difference]:
  if isinstance(saved, dict) or isinstance(now, dict):  # a missing dict: walk an empty one
    saved = {} if saved is None else saved
    now = {} if now is None else now
  if isinstance(saved, dict) and isinstance(now, dict):
    out = []
    for key in list(saved) + [k for k in now if k not in saved]:
      out += _leaf_differences(saved.get(key), now.get(key), path + (str(key),))
    return out
  return [] if saved == now else [Difference(path, saved, now)]


def _with_train_defaults(record: Mapping[str, Any]) -> dict[str, Any]:
  """A saved record with the training fields it did not record (made before
  they existed, e.g. ``compute_dtype``) at their defaults, in ``train`` and in
  each variant's ``train`` (:func:`ngm_jax.config.train_record`)."""
  record = dict(record)
  if isinstance(record.get("train"), dict):
    record["train"] = train_record(record["train"])
  if isinstance(record.get("variants"), dict):
    record["variants"] = {
        label: {**v, "train": train_record(v["train"])}
        if isinstance(v, dict) and isinstance(v.get("train"), dict) else v
        for label, v in record["variants"].items()}
  return record


def resume_differences(saved: Mapping[str, Any], now: Mapping[str, Any],
                       keys: Sequence[str] = SAME_RUN) -> list[Difference]:
  """Where ``now`` differs from ``saved`` on ``keys``, leaf by leaf (nested
  dicts are walked; lists compared whole), as JSON has them (tuples as
  lists). A setting shared by every variant that differs in the run's
  ``train`` is listed once, there, not again under each variant. A training
  field ``saved`` did not record (it predates the field) counts as its
  default."""
  saved = _with_train_defaults(saved)
  as_json = lambda value: json.loads(json.dumps(value))
  found = []
  for key in keys:
    found += _leaf_differences(as_json(saved.get(key)), as_json(now.get(key)), (key,))
  top = {(d.path[1:], repr(d.saved), repr(d.now)) for d in found if d.path[0] == "train"}
  return [d for d in found
          if not (d.path[0] == "variants" and len(d.path) > 3 and d.path[2] == "train"
                  and (d.path[3:], repr(d.saved), repr(d.now)) in top)]


class ResumeMismatch(ValueError):
  """``resume=True`` on a run saved with other arguments.

  Attributes:
    work: the folder holding the saved run.
    differences: the :class:`Difference` s, in ``run.json``'s order.
  """

  def __init__(self, work: Any, differences: Sequence[Difference],
               told: Sequence[str] | None = None):
    self.work, self.differences = work, list(differences)
    told = list(told) if told is not None else [str(d) for d in self.differences]
    shown = "; ".join(told[:5]) + ("; ..." if len(told) > 5 else "")
    super().__init__(f"resume: the run in {work} was made with other arguments ({shown})."
                     " Resume it with the command it was started with, or start a new run"
                     " (another out, or overwrite).")

  def told(self, name_of: Any) -> "ResumeMismatch":
    """The same refusal with each difference named by ``name_of(path) -> str
    | None`` (e.g. a command line's flag; None keeps the dotted path)."""
    lines, seen = [], set()
    for d in self.differences:
      name = name_of(d.path) or ".".join(d.path)
      line = f"{name}: saved {d.saved!r}, now {d.now!r}"
      if line not in seen:
        seen.add(line)
        lines.append(line)
    return ResumeMismatch(self.work, self.differences, lines)
