"""Which training rows each step draws: incremental joint training.

At task ``k`` (no task labels, one shared head) a minibatch is drawn
uniformly, with replacement, from the union of tasks ``1..k``, a prefix of a
:class:`ngm_jax.streams.TaskStream`'s training arrays
(:func:`sample_joint_indices`). A :class:`Sampler` is that rule as a pure,
stateful pair of functions the compiled loop calls; :mod:`ngm_jax.replay`
gives another.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from ngm_jax.streams import TaskStream

__all__ = ["sample_joint_indices", "Sampler", "joint_sampler"]


def sample_joint_indices(
    key: jax.Array, task: jax.Array, train_task_ends: jax.Array, batch_size: int
) -> jax.Array:
  """Minibatch rows for incremental joint training at ``task`` (0-based).

  Draws ``batch_size`` rows uniformly, with replacement, from the training
  examples of tasks ``0..task``, i.e. from ``[0, train_task_ends[task])``.

  Returns:
    int32 ``[batch_size]``.
  """
  return jax.random.randint(
      key, (batch_size,), 0, train_task_ends[task], dtype=jnp.int32
  )


class Sampler(NamedTuple):
  """Which training rows each step draws, as a pure pair of functions.

  Attributes:
    init: ``key -> state``, the sampler's state at iteration 0 (any pytree).
    sample: ``(key, step, state) -> (rows int32 [B], state)`` for the
      (0-based) optimizer step ``step``.
  """

  init: Callable[[jax.Array], Any]
  sample: Callable[[jax.Array, jax.Array, Any], tuple[jax.Array, Any]]


def joint_sampler(
    stream: TaskStream, batch_size: int, iterations_per_task: int
) -> Sampler:
  """Incremental joint training: step ``t`` is in task ``t // I`` and draws
  from every task seen so far (:func:`sample_joint_indices`). Stateless."""
  ends = jnp.asarray(stream.train_task_ends)

  def sample(key, step, state):
    task = step // iterations_per_task
    return sample_joint_indices(key, task, ends, batch_size), state

  return Sampler(init=lambda key: (), sample=sample)
