"""Experience replay from a bounded, class-balanced reservoir buffer.

An alternative to incremental joint training's full access to every seen
task (:func:`ngm_jax.sampling.joint_sampler`): the learner keeps at most ``M``
training examples per class (``M`` = ``per_class``), chosen by reservoir
sampling, and each minibatch is half current task, half replay.

At optimizer step ``t`` the task is ``k = t // I`` (0-based, ``I`` iterations
per task), which owns the training rows ``[start_k, end_k)`` with
``start_k = train_task_ends[k-1]`` (0 for ``k = 0``), ``end_k =
train_task_ends[k]``. One minibatch of ``B`` rows:

* the first ``B − ⌊B/2⌋`` rows are drawn uniformly, with replacement, from the
  current task's rows ``[start_k, end_k)``;
* the last ``⌊B/2⌋`` rows are drawn uniformly, with replacement, from the
  buffer entries of *earlier* tasks (rows ``< start_k``). When there are none
  (all of task 1, or a buffer that holds nothing from earlier tasks) these
  rows, too, are drawn from the current task, so the batch is always ``B``
  rows and task 1 trains exactly as joint training does.

Every current-task row a batch uses, in batch order, is offered to the
reservoir of its class (Algorithm R per class): the ``n``-th offer
(0-based) of class ``c`` takes slot ``n`` while ``n < M``, and afterwards
replaces a slot ``j ~ U{0..n}`` if ``j < M``. Each of the ``N_c`` offers
seen so far is then held with probability ``min(1, M/N_c)``, whatever its
task. The stream offered is the sampler's own draws, which are with
replacement, so a row drawn twice counts as two offers (and may, rarely,
hold two slots). Replayed rows are not offered again.

The buffer of the current task's classes fills during that task but is
replayed only from the next task on: the replay half is memory of earlier
tasks, as in replay buffers updated at the end of each experience.

The state (:class:`ReplayState`) has fixed shapes, so the sampler runs under
``jax.jit``, ``jax.vmap`` over seeds and inside the training ``lax.scan``::

    sampler = replay_sampler(stream, batch_size=128, iterations_per_task=200,
                             per_class=50)
    train, data = make_train(stream, "ngm_sgd", config, sampler=sampler)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ngm_jax.sampling import Sampler
from ngm_jax.streams import TaskStream

__all__ = [
    "ReplayState",
    "empty_buffer",
    "reservoir_update",
    "replay_rows",
    "replay_sampler",
]

#: Marks an empty buffer slot.
EMPTY = -1


class ReplayState(NamedTuple):
  """State of :func:`replay_sampler`: one reservoir per class.

  Attributes:
    buffer: int32 ``[C, M]`` training rows held for each class; ``-1`` marks
      an empty slot. Class ``c``'s first ``min(seen[c], M)`` slots are full.
    seen: int32 ``[C]`` how many rows of class ``c`` have been offered to its
      reservoir (``N_c``, the stream length of Algorithm R).
  """

  buffer: jax.Array
  seen: jax.Array


def empty_buffer(num_classes: int, per_class: int) -> ReplayState:
  """A :class:`ReplayState` holding nothing: ``[C, M]`` slots of ``-1``."""
  return ReplayState(
      buffer=jnp.full((num_classes, per_class), EMPTY, jnp.int32),
      seen=jnp.zeros((num_classes,), jnp.int32),
  )


def reservoir_update(
    key: jax.Array,
    state: ReplayState,
    rows: jax.Array,
    labels: jax.Array,
    offered: jax.Array,
) -> ReplayState:
  """Offers ``rows`` (where ``offered``), in order, to their classes' reservoirs.

  The result equals offering the rows one after another with Algorithm R: an
  offer's slot depends only on its position ``n`` in its class's stream (slot
  ``n`` while ``n < M``, else ``j ~ U{0..n}``, kept if ``j < M``), and when two
  offers of one batch pick the same slot the later one wins.

  Args:
    key: PRNG key for the replacement draws.
    state: the reservoirs, buffer ``[C, M]``.
    rows: int32 ``[B]`` training rows.
    labels: int32 ``[B]`` their classes, in ``[0, C)``.
    offered: bool ``[B]``; rows marked False are ignored.

  Returns:
    The updated :class:`ReplayState`.
  """
  num_classes, size = state.buffer.shape
  batch = rows.shape[0]
  offered = jnp.asarray(offered, bool)
  labels = jnp.asarray(labels, jnp.int32)
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.int32) * offered[:, None]
  earlier = jnp.cumsum(onehot, axis=0) - onehot  # same-class offers before each row
  position = state.seen[labels] + earlier[jnp.arange(batch), labels]  # n, 0-based
  replace = jax.random.randint(key, (batch,), 0, position + 1, dtype=jnp.int32)
  slot = jnp.where(position < size, position, replace)
  slot = jnp.where(offered & (slot < size), slot, size)  # size: not stored
  # The latest offer into a slot wins (offers of one class have distinct n).
  latest = jnp.full((num_classes, size + 1), -1, jnp.int32).at[labels, slot].max(
      jnp.where(offered, position, -1))
  slot = jnp.where(latest[labels, slot] == position, slot, size)
  buffer = state.buffer.at[labels, slot].set(rows.astype(jnp.int32), mode="drop")
  return ReplayState(buffer=buffer, seen=state.seen + onehot.sum(axis=0))


def replay_rows(
    key: jax.Array, state: ReplayState, before: jax.Array, num: int
) -> tuple[jax.Array, jax.Array]:
  """``num`` rows drawn uniformly, with replacement, from the buffer entries
  that are rows ``< before`` (the earlier tasks' examples).

  Args:
    key: PRNG key.
    state: the reservoirs.
    before: int32 scalar, the first row of the current task (``start_k``).
    num: how many rows to draw.

  Returns:
    ``(rows int32 [num], any)``: the rows, and whether the buffer held any
    eligible entry (when False the rows are meaningless).
  """
  flat = state.buffer.reshape(-1)
  eligible = (flat != EMPTY) & (flat < before)
  counts = jnp.cumsum(eligible.astype(jnp.int32))
  total = counts[-1]
  u = jax.random.randint(key, (num,), 0, jnp.maximum(total, 1), dtype=jnp.int32)
  index = jnp.searchsorted(counts, u, side="right")  # the (u+1)-th eligible entry
  return flat[jnp.minimum(index, flat.shape[0] - 1)], total > 0


def _check_int(what: str, value, low: int) -> int:
  ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
  if not ok or value < low:
    raise ValueError(f"replay_sampler: {what}={value!r} is not allowed; it must be"
                     f" an integer >= {low}.")
  return int(value)


def replay_sampler(
    stream: TaskStream,
    batch_size: int,
    iterations_per_task: int,
    per_class: int,
) -> Sampler:
  """Half current task, half replay from a class-balanced reservoir buffer.

  See the module docstring for the exact rule. The state is a
  :class:`ReplayState` with ``[stream.num_classes, per_class]`` slots, empty
  at iteration 0; ``init`` ignores its key.

  Args:
    stream: the benchmark (training rows ordered by task).
    batch_size: B, rows per minibatch, ``>= 2``; ``B − ⌊B/2⌋`` come from the
      current task and ``⌊B/2⌋`` from the buffer.
    iterations_per_task: I, optimizer steps per task (step ``t`` is in task
      ``t // I``).
    per_class: M, the buffer's size per class (e.g. 50 or 200 examples).

  Returns:
    A :class:`ngm_jax.sampling.Sampler` for :func:`ngm_jax.train.make_train`.

  Raises:
    ValueError: a batch size below 2, or a non-positive ``per_class`` or
      ``iterations_per_task``.
  """
  batch_size = _check_int("batch_size", batch_size, 2)
  iterations_per_task = _check_int("iterations_per_task", iterations_per_task, 1)
  per_class = _check_int("per_class", per_class, 1)
  ends = jnp.asarray(stream.train_task_ends, jnp.int32)
  starts = jnp.concatenate([jnp.zeros((1,), jnp.int32), ends[:-1]])
  labels = jnp.asarray(stream.train_labels, jnp.int32)
  num_replay = batch_size // 2
  num_current = batch_size - num_replay
  from_replay_half = jnp.arange(batch_size) >= num_current

  def init(key):
    del key
    return empty_buffer(stream.num_classes, per_class)

  def sample(key, step, state):
    task = step // iterations_per_task
    start, end = starts[task], ends[task]
    current_key, replay_key, reservoir_key = jax.random.split(key, 3)
    current = jax.random.randint(current_key, (batch_size,), start, end, dtype=jnp.int32)
    replayed, any_replay = replay_rows(replay_key, state, start, num_replay)
    from_buffer = from_replay_half & any_replay
    rows = jnp.where(from_buffer, jnp.pad(replayed, (num_current, 0)), current)
    state = reservoir_update(reservoir_key, state, rows, labels[rows], ~from_buffer)
    return rows, state

  return Sampler(init=init, sample=sample)
