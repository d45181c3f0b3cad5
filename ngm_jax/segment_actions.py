"""What happens between two segments of a run, decided the same on every process.

The driver (:func:`ngm_jax.driver.drive`) calls ``on_segment`` after every
segment. :class:`SegmentActions` is the run's: it saves a checkpoint when
one is due (every task boundary, the variant's end, a stop, and every
``every_s`` seconds), feeds the logs (:mod:`ngm_jax.logs`), and says whether
to stop. With several processes a checkpoint is a collective operation that
every process must enter together, so nothing a process decides alone may
start one: :func:`agree` gathers every process's stop signal and process 0's
clock in one collective, and every process acts on the same answer. A peer
that died makes that collective fail: :class:`PeerLost` ends the others
with one message instead of a hang or a traceback.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from ngm_jax.checkpoint import RunCheckpoints, checkpoint_step

__all__ = ["Agreement", "agree", "PeerLost", "peer_lost", "SegmentActions"]


class PeerLost(Exception):
  """Another process of a multi-process run stopped (it died or was killed);
  this one stops too. What was checkpointed before stays saved.

  Attributes:
    folder: the run's folder (None: a run without ``out``).
    exit_code: the process's exit status (1).
  """

  exit_code = 1

  def __init__(self, folder: Any, cause: BaseException):
    where = f"; what was saved is in {folder}" if folder is not None else ""
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    super().__init__(f"another process of this run stopped ({type(cause).__name__}:"
                     f" {first[:200]}){where}")
    self.folder = folder


#: Words in a runtime error that say a collective lost its peer.
_PEER_FAILURE = ("gloo", "connection closed", "connection reset", "heartbeat", "unhealthy",
                 "unavailable", "peer")


def peer_lost(error: BaseException) -> bool:
  """Whether ``error``, raised in a multi-process run, says another process
  is gone (a collective that lost its peer)."""
  text = str(error).lower()  # JaxRuntimeError, or another error wrapping it (orbax's)
  return jax.process_count() > 1 and any(word in text for word in _PEER_FAILURE)


class Agreement(NamedTuple):
  """What every process does after a segment.

  Attributes:
    signum: the stop signal any process received (None: none).
    due: whether process 0's clock says a timed checkpoint is due.
  """
  signum: int | None
  due: bool


def agree(signum: int | None, due: bool, folder: Any = None) -> Agreement:
  """Every process's stop signal (the largest, so that one process's signal
  stops all) and process 0's ``due``, the same on every process: one
  ``process_allgather`` with several processes, nothing with one.

  Raises:
    PeerLost: the collective failed because another process is gone.
  """
  if jax.process_count() == 1:
    return Agreement(signum, bool(due))
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  mine = np.asarray([signum or 0, int(bool(due))], np.int32)
  try:
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, 2)
  except jax.errors.JaxRuntimeError as e:
    raise PeerLost(folder, e) from None
  return Agreement(int(every[:, 0].max()) or None, bool(every[0, 1]))


class SegmentActions:
  """A variant's ``Segments.on_segment``: checkpoints when due, logs, and
  returns whether to stop.

  Args:
    label, index: the variant's label and its 1-based place in the run.
    total_blocks, blocks_per_task: per-task-eval blocks in the variant, in a task.
    total: the variant's iterations.
    num_seeds: seeds in the run.
    stop: the :class:`ngm_jax.checkpoint.StopRequest` (``.signum``).
    checkpoints: where to save (None: no checkpoints).
    every_s: a timed checkpoint at most this many seconds apart (process 0's
      clock); None or 0: only at boundaries and stops.
    before: the checkpoint's meta the variant resumed from (``{}``: none).
    execution: recorded in each checkpoint's meta (loop, seed axis, devices).
    folder: the run's folder, for messages.
    log: ``(segment) -> None`` fed every segment (e.g.
      :meth:`ngm_jax.logs.RunLog.segment`), or None.

  Attributes:
    signum: the stop signal every process agreed on after the last segment
      (None: none).
    saved_iterations: the iterations the newest checkpoint holds.
    saved_at_stop: whether that checkpoint was made because of a stop.
  """

  def __init__(self, label: str, index: int, *, total_blocks: int, blocks_per_task: int,
               total: int, num_seeds: int, stop: Any, checkpoints: RunCheckpoints | None,
               every_s: float | None, before: dict | None = None,
               execution: dict | None = None, folder: Any = None,
               log: Callable[[Any], None] | None = None):
    self.label, self.index = label, index
    self.total_blocks, self.blocks_per_task, self.total = total_blocks, blocks_per_task, total
    self.num_seeds, self.stop, self.checkpoints = num_seeds, stop, checkpoints
    self.every_s, self.before = every_s, dict(before or {})
    self.execution, self.folder, self.log = dict(execution or {}), folder, log
    self.last = time.perf_counter()
    self.signum: int | None = None
    self.saved_iterations = 0
    self.saved_at_stop = False

  def __call__(self, done) -> bool:
    """After a segment (:class:`ngm_jax.driver.SegmentDone`): True to stop."""
    if self.log is not None:
      self.log(done)
    timed = bool(self.every_s) and time.perf_counter() - self.last >= self.every_s
    signum, timed = agree(self.stop.signum, timed, self.folder)
    self.signum = signum
    boundary = done.blocks_done % self.blocks_per_task == 0  # the last one: the variant's end
    if self.checkpoints is not None and done.state is not None and (
        signum is not None or boundary or timed):
      self._save(done, signum)
    return signum is not None

  def _save(self, done, signum: int | None) -> None:
    carry, records, blocks = done.state()
    per_block = self.total // self.total_blocks
    self.checkpoints.save(
        checkpoint_step(self.index, blocks, self.total_blocks), carry, records,
        {"variant": self.label, "variant_index": self.index, "blocks_done": blocks,
         "total_blocks": self.total_blocks, "iterations_done": blocks * per_block,
         "total_iterations": self.total, "num_seeds": self.num_seeds,
         "finished": blocks == self.total_blocks,
         "run_s": self.before.get("run_s", 0.0) + done.run_s,
         "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"), **self.execution})
    self.last = time.perf_counter()
    self.saved_iterations = blocks * per_block
    self.saved_at_stop = signum is not None
