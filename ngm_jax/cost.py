"""What one training step and one evaluation cost, in FLOPs, from XLA.

:func:`protocol_flops` compiles a run's pieces (nothing is executed) and reads
XLA's cost analysis of each: one training step (sampling, forward, backward,
optimizer update), one Task-1 evaluation and one evaluation of every task's
test set. XLA counts the body of a loop once, so the pieces are compiled
without loops: the step on its own, the evaluations on the whole test set at
once (``eval_batch_size=None``). A multiply-add is 2 FLOPs.

:func:`mlp_forward_flops` is the count by hand for a stack of dense layers,
the check of the MLP's numbers (``tests/test_cost.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax

from ngm_jax.train import TrainConfig, make_train_parts

__all__ = ["program_flops", "protocol_flops", "mlp_forward_flops"]


def program_flops(compiled: Any) -> float | None:
  """XLA's FLOP count of a compiled program (``jit(f).lower(...).compile()``),
  or None where the backend gives none."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older jax: one dict per program
    analysis = analysis[0] if analysis else None
  if not analysis or "flops" not in analysis:
    return None
  return float(analysis["flops"])


def protocol_flops(stream: Any, optimizer: Any, config: TrainConfig, **network: Any
                   ) -> dict[str, float | None]:
  """FLOPs of one seed's pieces of the protocol on ``stream``.

  Args:
    stream, optimizer, config, network: as for
      :func:`ngm_jax.train.make_train_parts` (``model``, ``where``,
      ``preprocess``, ``augment``).

  Returns:
    ``{"train_step", "task1_eval", "all_tasks_eval"}``: one optimizer step
    on a minibatch of ``config.batch_size``; the Task-1 evaluation (on
    :func:`ngm_jax.config.task1_eval_size` images); every task's test set.
  """
  whole = dataclasses.replace(config, eval_every=1, task_eval_every=config.iterations_per_task,
                              eval_batch_size=None)
  parts = make_train_parts(stream, optimizer, whole, unroll=True, **network)
  data = parts.data
  state = jax.eval_shape(lambda k: parts.init(k, data), jax.random.key(0))

  def cost(fn):
    return program_flops(jax.jit(fn).lower(state, data).compile())

  step = cost(parts.step)
  interval = cost(parts.eval_interval)  # one step, then the Task-1 evaluation
  return {
      "train_step": step,
      "task1_eval": None if step is None or interval is None else interval - step,
      "all_tasks_eval": cost(parts.task_eval),
  }


def mlp_forward_flops(widths: Sequence[int], examples: int) -> float:
  """``2 · examples · Σ in·out`` over the dense layers ``widths[i] → widths[i+1]``
  (no biases): the multiply-adds of a forward pass, by hand."""
  return 2.0 * examples * sum(a * b for a, b in zip(widths[:-1], widths[1:]))
