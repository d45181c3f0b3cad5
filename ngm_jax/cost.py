"""What one training step and one evaluation cost, in FLOPs, from XLA.

:func:`protocol_flops` compiles a run's pieces (nothing is executed) and reads
XLA's cost analysis of each: one training step (sampling, forward, backward,
optimizer update), one Task-1 evaluation and one evaluation of every task's
test set. XLA counts the body of a loop once, so the pieces are compiled
without loops: the step on its own, the evaluations on the whole test set at
once (``eval_batch_size=None``). A multiply-add is 2 FLOPs.
:func:`flops_per_iteration` adds them up per iteration of a schedule.

:func:`mlp_forward_flops` is the count by hand for a stack of dense layers,
the check of the MLP's numbers (``tests/test_cost.py``).

What the device can do: :func:`matmul_peak` measures the FLOP/s of a square
matmul at a dtype and matmul precision; :func:`device_peaks` gives the peaks
that rate a run (fp32 on a CPU; fp32, TF32 and bf16 on a GPU, measured, with
NVIDIA's datasheet figures beside them where the device is in
:data:`DATASHEET_PEAKS`); :func:`peak_for` picks the one a run computed at.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from ngm_jax.train import TrainConfig, make_train_parts

__all__ = ["program_flops", "protocol_flops", "flops_per_iteration", "mlp_forward_flops",
           "matmul_peak", "device_peaks", "peak_for", "DATASHEET_PEAKS"]


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


def flops_per_iteration(counts: dict[str, float | None], config: TrainConfig,
                        task_eval_every: int | None = None) -> float | None:
  """One seed's FLOPs per iteration of the protocol: a training step, the
  Task-1 evaluation every ``config.eval_every`` iterations and every task's
  every ``task_eval_every`` (default ``config.task_eval_every``); ``counts``
  as :func:`protocol_flops` returns them (None if a count is)."""
  if any(counts.get(k) is None for k in ("train_step", "task1_eval", "all_tasks_eval")):
    return None
  every = task_eval_every or config.task_eval_every
  return (counts["train_step"] + counts["task1_eval"] / config.eval_every
          + counts["all_tasks_eval"] / every)


#: NVIDIA datasheet peaks, dense (without structured sparsity), in FLOP/s, by
#: a substring of ``device_kind`` (the first that matches): SXM boards unless
#: named. A datasheet figure, not a measurement.
DATASHEET_PEAKS = {
    "H100 PCIe": {"fp32": 51.2e12, "tf32": 378e12, "bf16": 756e12},
    "H200": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12},
    "H100": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12},
    "A100": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12},
}

#: (dtype, jax matmul precision) of each peak: TF32 is a float32 matmul at
#: the default precision on an NVIDIA GPU, fp32 one at "highest".
_PEAK_KINDS = {"fp32": ("float32", "highest"), "tf32": ("float32", "default"),
               "bf16": ("bfloat16", "default")}


def matmul_peak(dtype: str = "float32", precision: str = "highest", n: int | None = None,
                repeats: int = 10) -> float:
  """FLOP/s of an ``n × n`` matmul in ``dtype`` at matmul ``precision`` on the
  default device, best of ``repeats`` (``2·n³`` FLOPs each); ``n`` defaults to
  2048 on a CPU, 8192 on an accelerator."""
  n = n or (2048 if jax.default_backend() == "cpu" else 8192)
  a = jnp.ones((n, n), dtype)
  with jax.default_matmul_precision(precision):
    f = jax.jit(lambda x: x @ x).lower(a).compile()
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2.0 * n ** 3 / best


def device_peaks(kinds: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
  """The default device's matmul peaks, ``{kind: {"measured", "datasheet"}}``
  in FLOP/s (``datasheet`` None for a device not in :data:`DATASHEET_PEAKS`).

  ``kinds``: of ``"fp32"``, ``"tf32"``, ``"bf16"``; default ``fp32`` on a CPU
  (where the other two are no hardware peak), all three on a GPU.
  """
  device = jax.devices()[0]
  if kinds is None:
    kinds = ("fp32",) if device.platform == "cpu" else tuple(_PEAK_KINDS)
  sheet = next((v for k, v in DATASHEET_PEAKS.items() if k in device.device_kind), {})
  return {kind: {"measured": matmul_peak(*_PEAK_KINDS[kind]), "datasheet": sheet.get(kind)}
          for kind in kinds}


def peak_for(peaks: dict[str, dict[str, Any]], compute_dtype: str = "float32",
             platform: str | None = None) -> tuple[str, float] | None:
  """``(kind, measured FLOP/s)`` of the peak a run in ``compute_dtype``
  computes at: bf16 for bfloat16, TF32 for float32 on a GPU (JAX's default
  matmul precision there), fp32 otherwise; None if ``peaks`` lacks it."""
  platform = platform or jax.default_backend()
  kind = ("bf16" if compute_dtype == "bfloat16"
          else "tf32" if platform == "gpu" and "tf32" in peaks else "fp32")
  return (kind, peaks[kind]["measured"]) if kind in peaks else None
