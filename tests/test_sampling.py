"""ngm_jax.sampling: incremental joint training's minibatch rows, step by step.

(tests/test_streams.py checks that sample_joint_indices is uniform over the
tasks seen.)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ngm_jax.sampling import Sampler, joint_sampler, sample_joint_indices


@dataclasses.dataclass
class _Stream:
  """The one field joint_sampler reads of a TaskStream."""
  train_task_ends: tuple[int, ...]


ENDS = (10, 30, 60)  # tasks of 10, 20 and 30 training rows
ITERS = 4


def test_each_step_draws_from_the_tasks_seen_so_far():
  sampler = joint_sampler(_Stream(ENDS), batch_size=64, iterations_per_task=ITERS)
  assert isinstance(sampler, Sampler)
  state = sampler.init(jax.random.key(0))
  sample = jax.jit(sampler.sample)
  for step in range(len(ENDS) * ITERS):
    rows, state = sample(jax.random.key(step), jnp.int32(step), state)
    rows = np.asarray(rows)
    assert rows.shape == (64,) and rows.dtype == np.int32
    task = step // ITERS
    assert 0 <= rows.min() and rows.max() < ENDS[task], (step, rows.max())
    if task:  # 64 draws from the union include rows of the newest task and older ones
      assert rows.max() >= ENDS[task - 1] and rows.min() < ENDS[task - 1]
  assert state == ()  # stateless


def test_the_rows_are_a_function_of_the_key_and_task():
  ends = jnp.asarray(ENDS)
  draw = jax.jit(lambda key, task: sample_joint_indices(key, task, ends, 16))
  a = np.asarray(draw(jax.random.key(1), jnp.int32(2)))
  np.testing.assert_array_equal(a, draw(jax.random.key(1), jnp.int32(2)))
  assert not np.array_equal(a, draw(jax.random.key(2), jnp.int32(2)))
  # Under vmap over seeds' keys, each row of the batch is that key's draw alone.
  keys = jax.random.split(jax.random.key(3), 4)
  batched = np.asarray(jax.jit(jax.vmap(draw, in_axes=(0, None)))(keys, jnp.int32(1)))
  for i in range(4):
    np.testing.assert_array_equal(batched[i], draw(keys[i], jnp.int32(1)))
