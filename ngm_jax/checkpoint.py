"""Checkpoints of a run's training carry (orbax-checkpoint), and a prompt stop.

A run saved to ``out`` (:func:`ngm_jax.run_benchmark`) keeps its latest
training carries in ``out/checkpoints/``: an orbax ``CheckpointManager``
folder with one numbered step per save (the two newest kept), each holding

    carry    every seed's TrainState (parameters, model state, optimizer state
             with the gain, sampler state, PRNG keys as key data, step,
             hyperparameters, diverged_at), leaves "000", "001", ... [S, ...]
    records  the curves recorded so far: steps, task1, per_task [S, blocks, ...]
    meta     JSON: variant, blocks and iterations done, seconds run, and how it
             ran (loop, seed_axis, devices); the carry has the same form in
             every mode, so train_seeds resumes it in any mode or device
             count (run_benchmark: with the run's loop and seed axis)
    files.json  every file's size and SHA-256 (:mod:`ngm_jax.checkpoint_files`)

A step is written at every task boundary, at most every ``checkpoint_every_s``
seconds of compute, when a stop is requested, and after each finished
variant; orbax writes it under a temporary name and renames it when complete,
so a killed process leaves the previous step intact, and a second Ctrl-C
waits until it is written (:func:`signals_deferred`). A write that fails (a
full or read-only disk) and a step found damaged on resume (a file cut
short, missing or overwritten: the newest intact step is used, and the
damaged one set aside as ``<step>.damaged``) are a :class:`CheckpointError`
(:class:`CheckpointWriteError`, a :class:`ngm_jax.files.WriteError`, for a
write) or a line on stderr naming the step and the fault, never a traceback.
:class:`StopRequest` turns SIGINT/SIGTERM into a flag the run reads between
segments, and puts the previous handlers back when the run ends.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ngm_jax.checkpoint_files import (FILE_LIST, CheckpointError, CheckpointWriteError,
                                      check_file_list, describe, join_orbax_threads, os_error,
                                      quiet_orbax, write_file_list)

__all__ = ["keys_as_data", "keys_from_data", "RunCheckpoints", "StopRequest", "RunStopped",
           "CheckpointError", "CheckpointWriteError", "checkpoint_step", "signal_exit_code",
           "signals_deferred"]

#: Where a run folder keeps its checkpoints.
FOLDER = "checkpoints"


def _is_key(x: Any) -> bool:
  dtype = getattr(x, "dtype", None)
  return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def keys_as_data(tree: Any) -> Any:
  """``tree`` with every typed PRNG key array replaced by its key data
  (``jax.random.key_data``: uint32), so that it can be saved and passed as
  plain arrays."""
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def keys_from_data(tree: Any, like: Any) -> Any:
  """Inverse of :func:`keys_as_data`: the leaves that are PRNG keys in
  ``like`` (arrays or ShapeDtypeStructs of the same structure) are wrapped
  back (``jax.random.wrap_key_data``, the default implementation)."""
  return jax.tree.map(lambda x, l: jax.random.wrap_key_data(x) if _is_key(l) else x,
                      tree, like)


def checkpoint_step(variant_index: int, blocks_done: int, total_blocks: int) -> int:
  """The orbax step of a checkpoint: increasing through the run's variants."""
  return variant_index * (total_blocks + 1) + blocks_done


class RunCheckpoints:
  """The checkpoints of one run folder (``folder/checkpoints``).

  Every process of a multi-process run makes one and calls :meth:`save`
  (orbax writes the host arrays from process 0 and synchronises the others).
  A step is checked before it is used (:mod:`ngm_jax.checkpoint_files`): a
  damaged newest step is reported, set aside and the newest intact one used;
  a write that fails (a full or read-only disk) leaves the earlier steps as
  they were. Either fault is a :class:`CheckpointError` naming the folder
  and the cause, never orbax's tracebacks.
  """

  def __init__(self, folder: str | Path, keep: int = 2):
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top  # ~1 s to import

    self._ocp = ocp
    self.path = Path(folder).absolute() / FOLDER
    self._keep = keep
    self._manager = None
    self._loaded = None  # (step, meta, carry leaves, records) checked by latest()
    try:
      self._open()
    except OSError as e:
      raise CheckpointWriteError(f"{self.path}: cannot make the checkpoint folder:"
                                 f" {describe(e)}.", self.path, e) from None

  def _open(self):
    if self._manager is None:
      ocp = self._ocp
      self._remove_temporary()
      with quiet_orbax():
        self._manager = ocp.CheckpointManager(
            self.path, options=ocp.CheckpointManagerOptions(
                max_to_keep=self._keep, create=True, enable_async_checkpointing=False))
    return self._manager

  def save(self, step: int, carry: Any, records: Any, meta: Mapping[str, Any]) -> None:
    """Writes ``carry`` (NumPy leaves, PRNG keys as key data), ``records``
    (``(steps, task1, per_task)`` dicts of NumPy arrays) and ``meta`` (JSON)
    as ``step``, replacing a step of that number if there is one. SIGINT and
    SIGTERM wait until the step is written (:func:`signals_deferred`).

    Raises:
      CheckpointWriteError: it could not be written (the cause and the file
        named; an OSError and a ValueError); the steps written before are
        kept as they were.
    """
    ocp = self._ocp
    leaves = jax.tree.leaves(carry)
    flat = {f"{i:03d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    steps, task1, per_task = records
    tree = {"steps": dict(steps), "task1": dict(task1), "per_task": dict(per_task)}
    tree = jax.tree.map(np.asarray, tree)
    self._loaded = None
    with signals_deferred("the checkpoint being written"), quiet_orbax() as held:
      try:
        manager = self._open()
        if step in manager.all_steps():
          manager.delete(step)
        manager.save(step, args=ocp.args.Composite(
            carry=ocp.args.StandardSave(flat), records=ocp.args.StandardSave(tree),
            meta=ocp.args.JsonSave(dict(meta))), force=True)
        manager.wait_until_finished()
        if jax.process_index() == 0:  # the process that commits (the others' folders may differ)
          if not (self.path / str(step)).is_dir():  # orbax logged a failure, did not commit
            raise RuntimeError(held.records[0].getMessage() if held.records
                               else "orbax did not commit it")
          write_file_list(self.path / str(step))
      except (OSError, ValueError, RuntimeError) as e:
        if jax.process_count() > 1 and isinstance(e, jax.errors.JaxRuntimeError):
          raise  # orbax's barrier lost a process: the runner's PeerLost tells it
        self._abandon(step)
        kept = sorted(s for s in self._steps() if s != step)
        kept = (f"step{'s' * (len(kept) > 1)} {', '.join(map(str, kept))}" if kept
                else "none yet")
        raise CheckpointWriteError(
            f"checkpoint {step} could not be written to {self.path}: {describe(e)}. The"
            f" checkpoints saved before are kept ({kept}).", self.path,
            os_error(e) or OSError(None, describe(e))) from None

  def _abandon(self, step: int) -> None:
    """After a failed save: orbax's manager closed (opened afresh next time),
    its threads still writing the other items waited for, the step's
    temporary folder removed to free the space."""
    with contextlib.suppress(Exception):
      self._manager.close()
    self._manager = None
    join_orbax_threads()
    self._remove_temporary()
    if jax.process_index() == 0:
      with contextlib.suppress(OSError):
        (self.path / str(step) / f".{FILE_LIST}.tmp").unlink()

  def _remove_temporary(self) -> None:
    """Removes orbax's temporary step folders (``<step>.orbax-checkpoint-tmp``)
    that a failed or killed save left (process 0; best effort)."""
    if jax.process_index() == 0:
      for tmp in self.path.glob("*.orbax-checkpoint-tmp*"):
        shutil.rmtree(tmp, ignore_errors=True)

  def _steps(self) -> list[int]:
    return [int(p.name) for p in self.path.glob("*") if p.name.isdigit() and p.is_dir()]

  def latest(self) -> tuple[int, dict[str, Any]] | None:
    """``(step, meta)`` of the newest intact checkpoint, or None if there is
    none. Newer damaged steps are reported on stderr and set aside
    (``<step>.damaged``), so that the run continues from the intact one.

    Raises:
      CheckpointError: there are checkpoints, and every one is damaged (each
        step and its fault named).
    """
    self._loaded = None
    manager = self._open()
    with quiet_orbax():
      manager.reload()
      steps = sorted(manager.all_steps(), reverse=True)
    damaged = []
    for step in steps:
      fault, loaded = self._check(step)
      if fault is None:
        break
      damaged.append((step, fault))
    else:
      if damaged:
        faults = "; ".join(f"step {s}: {f}" for s, f in damaged)
        raise CheckpointError(
            f"{self.path}: no intact checkpoint ({faults}). Delete that folder to train the"
            " unfinished variant from its start (finished variants are kept), or start a new"
            " run (overwrite=True, --overwrite).", self.path)
      return None
    self._loaded = loaded
    if damaged:
      self._set_aside(damaged, step)
    return step, dict(loaded[1])

  def _set_aside(self, damaged: list[tuple[int, str]], used: int) -> None:
    """Renames each damaged step to ``<step>.damaged`` (which orbax does not
    count as a step) and says so."""
    for step, fault in damaged:
      where = self.path / str(step)
      if jax.process_index() == 0:
        aside = self.path / f"{step}.damaged"
        shutil.rmtree(aside, ignore_errors=True)
        try:
          where.rename(aside)
          moved = f"Set aside as {aside.name}"
        except OSError as e:
          moved = f"It could not be set aside ({describe(e)})"
        print(f"Checkpoint {where} is damaged: {fault}. {moved}; using step {used}, the"
              " newest intact checkpoint.", file=sys.stderr, flush=True)
    with quiet_orbax():
      self._manager.reload()

  def _check(self, step: int):
    """``(fault or None, (step, meta, carry leaves, records))``: the step's
    files against its file list, then read whole."""
    folder = self.path / str(step)
    _, fault = check_file_list(folder)
    if fault is not None:
      return fault, None
    ocp = self._ocp
    with quiet_orbax():
      try:
        restored = self._open().restore(step, args=ocp.args.Composite(
            meta=ocp.args.JsonRestore(), carry=ocp.args.StandardRestore(),
            records=ocp.args.StandardRestore()))
        meta, flat, rec = restored["meta"], restored["carry"], restored["records"]
      except Exception as e:  # pylint: disable=broad-except  # any fault: the step is unusable
        return f"orbax cannot read it: {describe(e)}", None
    if not isinstance(meta, Mapping):
      return f"meta/metadata holds {type(meta).__name__}, not a JSON object", None
    names = [f"{i:03d}" for i in range(len(flat or {}))]
    if not isinstance(flat, Mapping) or sorted(flat) != names:
      return "its carry is not the arrays 000, 001, ... that a run saves", None
    if not isinstance(rec, Mapping) or sorted(rec) != ["per_task", "steps", "task1"]:
      return "its records are not steps, task1 and per_task", None
    leaves = [np.asarray(flat[name]) for name in names]
    records = jax.tree.map(np.asarray, (dict(rec["steps"]), dict(rec["task1"]),
                                        dict(rec["per_task"])))
    return None, (step, dict(meta), leaves, records)

  def restore(self, step: int, carry_like: Any) -> tuple[Any, Any]:
    """``(carry, records)`` of ``step``, the carry in ``carry_like``'s
    structure (ShapeDtypeStructs, PRNG keys as key data).

    Raises:
      CheckpointError: the step is damaged.
      ValueError: the checkpoint's carry does not have that structure (a
        different optimizer, network or number of seeds).
    """
    loaded, self._loaded = self._loaded, None
    where = self.path / str(step)
    if loaded is None or loaded[0] != step:
      fault, loaded = self._check(step)
      if fault is not None:
        raise CheckpointError(f"Checkpoint {where} is damaged: {fault}.", where)
    _, _, flat, records = loaded
    like_leaves, treedef = jax.tree.flatten(carry_like)
    if len(flat) != len(like_leaves):
      raise ValueError(f"{where}: the checkpoint holds {len(flat)} arrays, this run's carry"
                       f" {len(like_leaves)}; it was made by another optimizer or network.")
    for i, (leaf, like) in enumerate(zip(flat, like_leaves)):
      if leaf.shape != tuple(like.shape) or leaf.dtype != like.dtype:
        raise ValueError(f"{where}: array {i} of the carry is {leaf.dtype}{list(leaf.shape)},"
                         f" this run needs {like.dtype}{list(like.shape)}; the checkpoint was"
                         " made by another optimizer, network or number of seeds.")
    return jax.tree.unflatten(treedef, flat), records

  def remove(self) -> None:
    """Deletes every checkpoint (the run finished)."""
    with signals_deferred("removing the checkpoints"):
      self.close()
      if jax.process_index() == 0:
        shutil.rmtree(self.path, ignore_errors=True)

  def close(self) -> None:
    """Waits for orbax's threads and closes the manager (reopened on use)."""
    self._loaded = None
    if self._manager is not None:
      with quiet_orbax(), contextlib.suppress(Exception):
        self._manager.close()
      self._manager = None


def signal_exit_code(signum: int) -> int:
  """The shell's exit status for a process stopped by ``signum``: 128 + signum
  (130 for SIGINT, 143 for SIGTERM)."""
  return 128 + int(signum)


class RunStopped(Exception):
  """The run stopped on a signal; what was done is saved.

  Attributes:
    signum: the signal (``signal.SIGINT``, ``signal.SIGTERM``).
    folder: the folder holding the saved run and its checkpoints.
    variant: the variant being trained when it stopped (None: between variants).
    iteration, total: the iterations that variant had done, of how many.
    checkpointed: whether a checkpoint of that point was written.
  """

  def __init__(self, signum: int, folder: Path, variant: str | None = None,
               iteration: int = 0, total: int = 0, checkpointed: bool = False):
    name = signal.Signals(signum).name
    where = (f"in variant {variant!r} at iteration {iteration} of {total}" if variant
             else "between variants")
    saved = (f"checkpoint in {Path(folder) / FOLDER}" if checkpointed
             else f"finished variants in {folder}")
    super().__init__(f"stopped by {name} {where}; {saved}")
    self.signum, self.folder, self.variant = signum, Path(folder), variant
    self.iteration, self.total, self.checkpointed = iteration, total, checkpointed

  @property
  def exit_code(self) -> int:
    return signal_exit_code(self.signum)


class StopRequest:
  """While active (``with StopRequest() as stop:``), SIGINT and SIGTERM set
  ``stop.signum`` instead of ending the process; the run reads it between
  segments. A second signal of the same kind is handled as before the run
  (e.g. Ctrl-C twice raises KeyboardInterrupt at once). On exit the previous
  handlers are restored. Outside the main thread nothing is installed (Python
  delivers signals there only).
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self, announce: bool = True):
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}
    self._announce = announce

  @property
  def requested(self) -> bool:
    return self.signum is not None

  def _handle(self, signum, frame):
    del frame
    if self.signum is None:
      self.signum = signum
      # The next one of this kind does what it did before the run.
      signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
      if self._announce:
        print(f"\n{signal.Signals(signum).name}: stopping at the end of this segment and"
              " saving a checkpoint (send it again to stop at once, without one) ...",
              file=sys.stderr, flush=True)

  def __enter__(self) -> "StopRequest":
    if threading.current_thread() is threading.main_thread():
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    self._previous.clear()


@contextlib.contextmanager
def signals_deferred(what: str) -> Iterator[None]:
  """While active, SIGINT and SIGTERM cannot cut ``what`` short: a signal
  whose handler would stop the process (a second Ctrl-C: KeyboardInterrupt;
  SIGTERM's default) is held, with a note on stderr, and delivered to that
  handler once the block has ended; a :class:`StopRequest` (which only sets
  its flag) gets its signal at once. Outside the main thread nothing
  changes."""
  if threading.current_thread() is threading.main_thread():
    held: list[int] = []
    previous = {}

    def hold(signum, frame):
      handler = previous[signum]
      if isinstance(getattr(handler, "__self__", None), StopRequest):
        handler(signum, frame)  # a flag read between segments
        if signal.getsignal(signum) is not hold:  # it handed the next one on: held too
          previous[signum] = signal.signal(signum, hold)
        return
      held.append(signum)
      if jax.process_index() == 0:
        print(f"\n{signal.Signals(signum).name}: finishing {what} first, then stopping ...",
              file=sys.stderr, flush=True)

    for signum in StopRequest.SIGNALS:
      previous[signum] = signal.signal(signum, hold)
  try:
    yield
  finally:
    if threading.current_thread() is threading.main_thread():
      for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
      for signum in dict.fromkeys(held):
        signal.raise_signal(signum)
