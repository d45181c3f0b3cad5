"""What a run evaluates, inside the compiled program.

:func:`eval_interval` runs ``eval_every`` training steps and then evaluates
Task 1; :func:`task_eval` evaluates every task; both measure per-example
correctness and cross-entropy with :func:`correct_and_loss`, in batches.
:func:`ngm_jax.train.make_train_parts` binds them to a run's step and
network. ``state`` is a :class:`ngm_jax.train.TrainState`, ``data`` the
run's :class:`ngm_jax.train.TrainData` (arrays on the device).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["correct_and_loss", "eval_interval", "task_eval"]


def correct_and_loss(apply: Callable[[jax.Array], jax.Array], images: jax.Array,
                      labels: jax.Array, batch_size: int | None) -> tuple[jax.Array, jax.Array]:
  """Per-example correctness (0/1) and cross-entropy (nats), each ``[N]``,
  of ``apply: images -> logits``, in batches of ``batch_size`` (None: one)."""
  def chunk(xy):
    logits = apply(xy[0])
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, xy[1])
    return (jnp.argmax(logits, -1) == xy[1]).astype(jnp.float32), losses

  n = len(labels)
  if batch_size is None or n <= batch_size:
    return chunk((images, labels))
  pad = -n % batch_size
  padded = (jnp.pad(images, [(0, pad)] + [(0, 0)] * (images.ndim - 1)),
            jnp.pad(labels, (0, pad)))
  batched = jax.tree.map(lambda a: a.reshape((-1, batch_size) + a.shape[1:]), padded)
  correct, losses = jax.lax.map(chunk, batched)
  return correct.reshape(-1)[:n], losses.reshape(-1)[:n]


def eval_interval(train_step: Callable, evaluate: Callable, eval_every: int, n_task1: int,
                   unroll: bool, state: Any, data: Any) -> tuple[Any, Any]:
  """``eval_every`` steps, then Task 1 evaluated on its first ``n_task1`` test
  images: the next state and ``(step records [eval_every], {"task1_acc",
  "task1_loss"})``."""
  if unroll:  # straight-line code: even a one-trip lax.scan compiles to a loop
    records = []
    for _ in range(eval_every):
      state, record = train_step(state, data)
      records.append(record)
    steps = jax.tree.map(lambda *r: jnp.stack(r), *records)
  else:
    state, steps = jax.lax.scan(lambda s, _: train_step(s, data), state, None,
                                length=eval_every)
  correct, losses = evaluate(state, data.test_images[:n_task1], data.test_labels[:n_task1])
  return state, (steps, {"task1_acc": correct.mean(), "task1_loss": losses.mean()})


def task_eval(evaluate: Callable, num_tasks: int, test_counts: np.ndarray, state: Any,
               data: Any) -> dict[str, jax.Array]:
  """Accuracy and loss on every task's test set, ``[num_tasks]`` each."""
  correct, losses = evaluate(state, data.test_images, data.test_labels)
  ids = data.test_task_ids
  return {
      "task_acc": jax.ops.segment_sum(correct, ids, num_tasks) / test_counts,
      "task_loss": jax.ops.segment_sum(losses, ids, num_tasks) / test_counts,
  }
