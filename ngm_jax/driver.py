"""The one driver: every execution mode's segments, run from one Python loop.

:func:`drive` calls a mode's compiled ``segment`` (:mod:`ngm_jax.modes`) for
every chunk of seeds, segment after segment, and alone owns what happens
between two segments: progress, stop (``on_segment``), the state a
checkpoint saves, and resuming from one. The chunks advance together, so
after every segment each seed has run the same blocks: the state is one
carry ``[S, ...]`` and the records ``[S, blocks_done, ...]``, whichever mode
made it, and any mode, device count or chunk size continues it.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from ngm_jax.modes import Mode
from ngm_jax.train import assemble_curves

__all__ = ["Segments", "SegmentDone", "Stopped", "check_segments", "check_resume", "drive"]


class Segments(NamedTuple):
  """How a run (:func:`ngm_jax.execution.train_seeds`) is cut into segments,
  and what happens between two of them.

  Every mode compiles one segment: ``blocks`` per-task-eval blocks
  (``task_eval_every`` iterations each) of a chunk of seeds, from the
  training carry (every seed's :class:`ngm_jax.train.TrainState`, PRNG keys
  as key data) to the next carry and the blocks' records. Python calls it
  again and again, the next call in flight while the previous one's records
  are read, so the device is not left waiting; between two calls the run may
  be saved (a checkpoint) or stopped. The curves are bit for bit those of the
  mode's single program (tests/test_resume.py). A scan whose length is a
  traced value (one program for any number of blocks) was tried and is not:
  XLA:CPU then reduces the test losses in another order.

  Attributes:
    blocks: per-task-eval blocks per call (must divide ``blocks_per_task``);
      how soon a stop request is acted on (after at most two calls).
    blocks_per_task: blocks in one task (a segment never crosses a task
      boundary; None: the whole run counts as one task).
    resume: ``(carry, records, blocks_done)`` on the host, as
      :attr:`SegmentDone.state` gives them, to continue from (None: start);
      made by any mode, device count or chunk size.
    on_segment: called after every segment with a :class:`SegmentDone`;
      returning True stops the run (:class:`Stopped` is raised).
  """

  blocks: int = 1
  blocks_per_task: int | None = None
  resume: Any = None
  on_segment: Callable[["SegmentDone"], bool] | None = None


class SegmentDone(NamedTuple):
  """Where a run stands after a segment.

  Attributes:
    blocks_done, total_blocks: per-task-eval blocks run so far, and in all.
    iterations_done: optimizer steps taken by each seed so far.
    run_s: seconds since the first segment started (compilation excluded).
    state: ``() -> (carry, records, blocks_done)``: waits for the segment in
      flight, then brings to the host the carry (TrainState of NumPy arrays
      ``[S, ...]``, PRNG keys as key data), every record so far
      (``(steps, task1, per_task)``, each ``[S, blocks_done, ...]``) and the
      blocks they cover (``blocks_done`` or one segment more).
    records: this segment's records, already on the host (no transfer):
      ``(steps, task1, per_task)`` of NumPy ``[S, blocks, ...]`` for blocks
      ``blocks_done - blocks + 1 .. blocks_done`` (:func:`ngm_jax.train.
      task_eval_block`'s, with the seed and block axes first); None where a
      caller made a SegmentDone without them.
  """

  blocks_done: int
  total_blocks: int
  iterations_done: int
  run_s: float
  state: Callable[[], tuple[Any, Any, int]] | None
  records: tuple | None = None


class Stopped(Exception):
  """A run stopped because ``on_segment`` asked it to."""

  def __init__(self, blocks_done: int, total_blocks: int, iterations_done: int):
    super().__init__(f"stopped after {iterations_done} iterations ({blocks_done} of"
                     f" {total_blocks} blocks)")
    self.blocks_done = blocks_done
    self.total_blocks = total_blocks
    self.iterations_done = iterations_done


def check_segments(segments: Segments, total: int, seeds: int) -> None:
  """Raises ValueError unless ``segments.blocks`` divides ``blocks_per_task``,
  which divides the run's ``total`` blocks, and ``segments.resume`` can
  continue a run of ``seeds`` seeds (:func:`check_resume`)."""
  per_task = segments.blocks_per_task or total
  n = segments.blocks
  if per_task < 1 or total % per_task or n < 1 or per_task % n:
    raise ValueError(f"Segments(blocks={n}, blocks_per_task={per_task}): blocks must divide"
                     f" blocks_per_task, which must divide the run's {total} blocks.")
  check_resume(segments.resume, seeds, n)


def _concat(trees: list, axis: int = 0) -> Any:
  return jax.tree.map(lambda *a: np.concatenate(a, axis), *trees)


class _Run:
  """One run's carries (one per chunk) and records, segment by segment."""

  def __init__(self, mode: Mode, blocks: int, resume: Any):
    self.mode, self.blocks = mode, blocks
    self.in_flight = []  # each dispatched segment's records, per chunk, oldest first
    self.calls = 0
    if resume is None:
      self.records, self.done = [], 0
      carries = [mode.init(c) for c in range(len(mode.chunks))]
      if not mode.resident:
        carries = [mode.carry_to_host(c, x) for c, x in enumerate(carries)]
    else:
      host, old_records, self.done = resume  # checked by check_resume
      self.records = [old_records] if self.done else []
      carries = [jax.tree.map(lambda a, s=s, k=k: np.asarray(a)[s:s + k], host)
                 for s, k in mode.chunks]
      if mode.resident:
        carries = [mode.put(c, x) for c, x in enumerate(carries)]
    self.carries = carries
    self.dispatched = self.done

  def dispatch(self) -> None:
    """Every chunk's next segment (asynchronous where the carries stay on the
    device; a chunk at a time through the host where they do not)."""
    mode, outs = self.mode, []
    for c, carry in enumerate(self.carries):
      carry, records = mode.segment(carry if mode.resident else mode.put(c, carry))
      self.carries[c] = carry if mode.resident else mode.carry_to_host(c, carry)
      outs.append(records)
    self.in_flight.append(outs)
    self.dispatched += self.blocks
    self.calls += 1

  def collect(self) -> None:
    """The oldest segment in flight: its records to the host."""
    outs = self.in_flight.pop(0)
    self.records.append(_concat([self.mode.records_to_host(c, r) for c, r in enumerate(outs)]))
    self.done += self.blocks

  def host_carry(self) -> Any:
    if self.mode.resident:
      return _concat([self.mode.carry_to_host(c, x) for c, x in enumerate(self.carries)])
    return _concat(self.carries)

  def all_records(self) -> tuple:
    return _concat(self.records, axis=1)

  def state(self) -> tuple[Any, Any, int]:
    while self.in_flight:
      self.collect()
    return self.host_carry(), self.all_records(), self.done


def check_resume(resume: Any, seeds: int, blocks: int) -> None:
  """Raises ValueError, with the reason, unless ``resume``, ``(carry, records,
  done)``, can continue a run of ``seeds`` seeds in segments of ``blocks``
  blocks: a carry row per seed, records of ``done`` blocks, ``done`` a whole
  number of segments. Any mode, device count or chunk size made it: the
  host carry has the same form in all."""
  if resume is None:
    return
  carry, records, done = resume
  rows = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(carry)}
  if rows != {seeds}:
    raise ValueError(f"resume: the carry holds rows {sorted(rows, key=str)} per leaf; this run"
                     f" has {seeds} seeds (a carry [seeds, ...] on the host, every mode's).")
  if done % blocks:
    raise ValueError(f"resume at block {done}: not a multiple of Segments.blocks={blocks}.")
  if done:
    got = {np.shape(leaf)[:2] for leaf in jax.tree.leaves(records)}
    if got != {(seeds, done)}:
      raise ValueError(f"resume: records shaped {sorted(got)} on their first two axes; this"
                       f" run resumes {seeds} seeds at block {done}.")


def drive(mode: Mode, segments: Segments, total: int,
          progress: Callable[[int], None] | None) -> tuple[dict[str, np.ndarray], dict]:
  """Runs ``mode``'s segments from the start or ``segments.resume`` to the
  run's ``total`` blocks.

  ``progress`` (on process 0) gets the iterations done after every segment,
  counted ``mode.passes`` times (up to ``S·T`` for seeds one after another);
  ``segments.on_segment`` may save :attr:`SegmentDone.state` and stop.

  Returns:
    ``(curves, {"run_s", "segments"})``: the curves (:func:`make_train`'s
    with a leading seed axis, NumPy) and the seconds and calls this took.

  Raises:
    Stopped: ``on_segment`` asked to stop.
  """
  n = segments.blocks
  t1 = time.perf_counter()
  run = _Run(mode, n, segments.resume)
  report = progress if jax.process_index() == 0 else None
  depth = 2 if mode.resident else 1  # the next segment runs while one's records are read
  reported, entries = run.done, len(run.records)  # a resumed run's records are not reported
  while run.done < total:
    while run.dispatched < total and len(run.in_flight) < depth:
      run.dispatch()
    run.collect()
    # Once per segment collected (a checkpoint's state() collects the one in
    # flight too, which is then reported in turn).
    while entries < len(run.records):
      records, entries, reported = run.records[entries], entries + 1, reported + n
      done = reported * int(np.prod(records[0]["gain"].shape[2:]))  # x iterations per block
      if report is not None:
        report(done * mode.passes)
      if segments.on_segment is not None and segments.on_segment(SegmentDone(
          reported, total, done, time.perf_counter() - t1, run.state, records)):
        raise Stopped(reported, total, done)
  carry = run.host_carry()
  curves = {**assemble_curves(*run.all_records()), "diverged_at": np.asarray(carry.diverged_at)}
  return curves, {"run_s": time.perf_counter() - t1, "segments": run.calls}
