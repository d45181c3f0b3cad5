"""Where a resumed run continues from: its finished variants and its newest checkpoint.

:func:`plan` reads the run saved in a folder (``run.json``, ``curves.npz``,
``checkpoints/``), checks that it was made with the same arguments
(:func:`ngm_jax.run_record.resume_differences`) and returns a
:class:`ResumePlan`: the curves of the variants that finished (never trained
again), the checkpoint of the one that stopped, and the record to go on
writing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ngm_jax import results
from ngm_jax.checkpoint import RunCheckpoints
from ngm_jax.run_record import ResumeMismatch, resume_differences

__all__ = ["ResumePlan", "plan", "describe"]


class ResumePlan(NamedTuple):
  """What a run starts from.

  Attributes:
    curves: ``{label: curves}`` of the variants already finished.
    pending: ``(step, checkpoint meta)`` of the variant to continue, or None.
    meta: the run record to write (the saved one's command, timings of the
      finished variants and ``resumed`` commands, with this run's settings).
    checkpoints: where checkpoints are saved and read (None: none).
    previous: whether a saved run was found.
  """
  curves: dict[str, Any]
  pending: tuple[int, dict] | None
  meta: dict[str, Any]
  checkpoints: RunCheckpoints | None
  previous: bool


def _finished(work: Path, meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
  """``(finished curves, meta)`` of the run saved in ``work``, or None if
  nothing is saved there.

  Raises:
    ResumeMismatch: the saved run was made with other arguments.
  """
  if not (work / "run.json").exists():
    return None
  old = results.read_json_record(work / "run.json")
  differences = resume_differences(old, meta)
  if differences:
    raise ResumeMismatch(work, differences)
  finished = {}
  if (work / "curves.npz").exists():
    saved, _ = results.load_curves(work / "curves.npz")
    finished = {label: saved[label] for label in meta["optimizers"] if label in saved}
  meta = {**meta, "command": old.get("command", meta["command"]),
          "resumed": list(old.get("resumed", [])) + [results.command_line()],
          "timings": {label: t for label, t in old.get("timings", {}).items()
                      if label in finished}}
  return finished, meta


def _pending(checkpoints: RunCheckpoints, labels: list[str],
             finished: dict[str, Any]) -> tuple[int, dict] | None:
  """``(step, meta)`` of the newest checkpoint if it is of a variant not
  finished, else None."""
  latest = checkpoints.latest()
  if latest is None:
    return None
  step, ckpt = latest
  if ckpt.get("variant") not in labels or ckpt["variant"] in finished:
    return None
  return step, ckpt


def plan(work: Path | None, meta: dict[str, Any], *, resume: bool,
         checkpoint: bool) -> ResumePlan:
  """Where a run in ``work`` starts: from scratch, or (``resume``) from what
  is saved there.

  Args:
    work: the folder the run writes (None: it writes nothing).
    meta: this run's record (:func:`ngm_jax.run_record.run_record`).
    resume: continue the run saved in ``work``.
    checkpoint: whether this run checkpoints.

  Raises:
    ResumeMismatch: ``resume`` on a run made with other arguments.
  """
  if work is None:
    return ResumePlan({}, None, meta, None, False)
  found = _finished(work, meta) if resume else None
  curves, meta = found if found is not None else ({}, meta)
  checkpoints = pending = None
  if (checkpoint or resume) and any(label not in curves for label in meta["optimizers"]):
    checkpoints = RunCheckpoints(work)
    if found is not None:
      pending = _pending(checkpoints, list(meta["optimizers"]), curves)
  return ResumePlan(curves, pending, meta, checkpoints, found is not None)


def describe(plan_: ResumePlan, out: Path, work: Path, total: int) -> str:
  """One line saying what a resumed run continues: ``Resuming OUT: finished
  adam (...); ngm_sgd from iteration 400 of 1000 (checkpoint ...); ...``."""
  if not plan_.previous:
    return f"Resume: nothing saved in {work}; starting a new run."
  labels = list(plan_.meta["optimizers"])
  finished = [label for label in labels if label in plan_.curves]
  parts = []
  if finished:
    parts.append(f"finished {', '.join(finished)} (curves.npz, not trained again)")
  pending = plan_.pending
  if pending is not None:
    step, ckpt = pending
    parts.append(f"{ckpt['variant']} from iteration {ckpt['iterations_done']} of {total}"
                 f" (checkpoint {work / 'checkpoints' / str(step)})")
  rest = [label for label in labels
          if label not in finished and (pending is None or label != pending[1]["variant"])]
  if rest:
    parts.append(f"{', '.join(rest)} from the start")
  where = f"{work} (an unfinished --overwrite of {out})" if work != out else f"{work}"
  return f"Resuming {where}: " + "; ".join(parts) + "."
