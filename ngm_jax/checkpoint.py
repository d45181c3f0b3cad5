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

A step is written at every task boundary, at most every ``checkpoint_every_s``
seconds of compute, when a stop is requested, and after each finished
variant; orbax writes it under a temporary name and renames it when complete,
so a killed process leaves the previous step intact. :class:`StopRequest`
turns SIGINT/SIGTERM into a flag the run reads between segments, and puts
the previous handlers back when the run ends.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["keys_as_data", "keys_from_data", "RunCheckpoints", "StopRequest", "RunStopped",
           "checkpoint_step", "signal_exit_code"]

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
  """

  def __init__(self, folder: str | Path, keep: int = 2):
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top  # ~1 s to import

    self._ocp = ocp
    self.path = Path(folder).absolute() / FOLDER
    self._manager = ocp.CheckpointManager(
        self.path, options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=False))

  def save(self, step: int, carry: Any, records: Any, meta: Mapping[str, Any]) -> None:
    """Writes ``carry`` (NumPy leaves, PRNG keys as key data), ``records``
    (``(steps, task1, per_task)`` dicts of NumPy arrays) and ``meta`` (JSON)
    as ``step``, replacing a step of that number if there is one."""
    ocp = self._ocp
    leaves = jax.tree.leaves(carry)
    flat = {f"{i:03d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    steps, task1, per_task = records
    tree = {"steps": dict(steps), "task1": dict(task1), "per_task": dict(per_task)}
    tree = jax.tree.map(np.asarray, tree)
    if step in self._manager.all_steps():
      self._manager.delete(step)
    self._manager.save(step, args=ocp.args.Composite(
        carry=ocp.args.StandardSave(flat), records=ocp.args.StandardSave(tree),
        meta=ocp.args.JsonSave(dict(meta))), force=True)
    self._manager.wait_until_finished()

  def latest(self) -> tuple[int, dict[str, Any]] | None:
    """``(step, meta)`` of the newest complete checkpoint, or None."""
    self._manager.reload()
    step = self._manager.latest_step()
    if step is None:
      return None
    restored = self._manager.restore(step, args=self._ocp.args.Composite(
        meta=self._ocp.args.JsonRestore()))
    return step, dict(restored["meta"])

  def restore(self, step: int, carry_like: Any) -> tuple[Any, Any]:
    """``(carry, records)`` of ``step``, the carry in ``carry_like``'s
    structure (ShapeDtypeStructs, PRNG keys as key data).

    Raises:
      ValueError: the checkpoint's carry does not have that structure (a
        different optimizer, network or number of seeds).
    """
    ocp = self._ocp
    restored = self._manager.restore(step, args=ocp.args.Composite(
        carry=ocp.args.StandardRestore(), records=ocp.args.StandardRestore()))
    flat = restored["carry"]
    like_leaves, treedef = jax.tree.flatten(carry_like)
    where = self.path / str(step)
    if len(flat) != len(like_leaves):
      raise ValueError(f"{where}: the checkpoint holds {len(flat)} arrays, this run's carry"
                       f" {len(like_leaves)}; it was made by another optimizer or network.")
    leaves = []
    for i, like in enumerate(like_leaves):
      leaf = np.asarray(flat[f"{i:03d}"])
      if leaf.shape != tuple(like.shape) or leaf.dtype != like.dtype:
        raise ValueError(f"{where}: array {i} of the carry is {leaf.dtype}{list(leaf.shape)},"
                         f" this run needs {like.dtype}{list(like.shape)}; the checkpoint was"
                         " made by another optimizer, network or number of seeds.")
      leaves.append(leaf)
    rec = jax.tree.map(np.asarray, restored["records"])
    return (jax.tree.unflatten(treedef, leaves),
            (rec["steps"], rec["task1"], rec["per_task"]))

  def remove(self) -> None:
    """Deletes every checkpoint (the run finished)."""
    import shutil  # pylint: disable=g-import-not-at-top
    self._manager.close()
    if jax.process_index() == 0:
      shutil.rmtree(self.path, ignore_errors=True)

  def close(self) -> None:
    self._manager.close()


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
