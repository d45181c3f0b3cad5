"""How a run executes: the loop (one scan, or compiled chunks) and the seed axis.

:func:`train_seeds` runs the pieces of :func:`ngm_jax.train.make_train_parts`
for every seed key, as one scanned program or as compiled eval intervals
driven from Python, with the seeds vmapped, mapped inside the program, or one
after another; :func:`default_execution` is what ``"auto"`` picks, from the
measurements in docs/results.md. The data are an argument of every compiled
function (``parts.data``), never a constant inside it.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import jax
import numpy as np

from ngm_jax.train import TrainParts, _scanned

__all__ = ["LOOPS", "SEED_AXES", "default_execution", "resolve_execution", "train_seeds"]


def default_execution(platform_name: str, convolutional: bool) -> tuple[str, str]:
  """``(loop, seed_axis)`` for ``loop="auto"`` / ``seed_axis="auto"``.

  From the measurements in docs/results.md: on CPU the MLP runs fastest as
  one scan with seeds vmapped. A convolutional network's training step runs
  many times slower on XLA:CPU inside any loop (``lax.scan``, and so also
  ``lax.map`` over seeds) and when vmapped over seeds (grouped
  convolutions), so on CPU it is driven in compiled chunks, one seed's program
  called per seed. On accelerators the whole run is one scan with vmapped
  seeds (not measured here: no GPU was available).
  """
  if platform_name == "cpu" and convolutional:
    return "chunked", "sequential"
  return "scan", "vmap"


def resolve_execution(loop: str, seed_axis: str, convolutional: bool) -> tuple[str, str]:
  """``loop`` and ``seed_axis`` with ``"auto"`` replaced (:func:`default_execution`).

  Raises:
    ValueError: an unknown value, naming the allowed ones.
  """
  auto_loop, auto_axis = default_execution(jax.default_backend(), convolutional)
  if loop not in ("auto",) + LOOPS:
    raise ValueError(f"loop={loop!r}; choose from auto, {', '.join(LOOPS)}.")
  if seed_axis not in ("auto",) + SEED_AXES:
    raise ValueError(f"seed_axis={seed_axis!r}; choose from auto, {', '.join(SEED_AXES)}.")
  return (auto_loop if loop == "auto" else loop,
          auto_axis if seed_axis == "auto" else seed_axis)


#: How :func:`train_seeds` runs the loop and the seeds.
LOOPS = ("scan", "chunked")
SEED_AXES = ("vmap", "map", "sequential")


def train_seeds(
    parts: TrainParts,
    keys: jax.Array,
    *,
    loop: str = "scan",
    seed_axis: str = "vmap",
    progress: Callable[[int], None] | None = None,
    hyperparams: Mapping[str, Any] | None = None,
    mesh: Any = None,
    memory_budget: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """Runs every seed of ``keys`` ``[S]``; returns curves ``[S, ...]`` and timings.

  Args:
    parts: from :func:`make_train_parts` (with ``unroll=True`` for
      ``loop="chunked"`` on CPU convolutions).
    keys: one PRNG key per seed.
    loop: ``"scan"``: the whole run is one compiled program (``lax.scan``
      over iterations). ``"chunked"``: one compiled eval interval
      (``eval_every`` steps and the Task-1 evaluation), called from Python;
      evaluation stays compiled and data stay on the device.
    seed_axis: ``"vmap"``: seeds batched into every operation; ``"map"``:
      seeds one after another inside the compiled program (``lax.map``);
      ``"sequential"``: one seed's program, compiled once and called for each
      seed in turn from Python (no seed axis in the compiled code at all).
    progress: host callback with the iterations done so far (an int), after
      every per-task evaluation; with ``seed_axis="sequential"`` it counts
      the iterations of every seed run so far (up to ``S·T``).
    hyperparams: ``{name: [S, ...]}``, per-seed values set by name in each
      seed's initial optimizer state (``init``'s ``hyperparams``), e.g. the
      gain schedule each seed of :func:`ngm_jax.gain.replayed_gain_sgd`
      replays.
    mesh: a ``("runs",)`` device mesh (:func:`ngm_jax.sharding.run_mesh`):
      with more than one device (or process), the seeds are split over its
      devices, padded to a multiple of the device count (padding dropped),
      the data replicated on each device; one scanned, vmapped program.
      If the program for every seed would need more than ``memory_budget``
      bytes per device (default 80 % of the device's memory; from XLA's
      memory analysis of the compiled program), the seeds run in chunks,
      halved until they fit; the timings say how many.

  Returns:
    ``(curves, timings)``: the curves of :func:`make_train` with a leading
    seed axis, as NumPy arrays (``diverged_at`` ``[S]``: each seed's first
    iteration with a non-finite training loss or gain, -1 for none; the
    other seeds run on unaffected); ``{"compile_s", "run_s"}`` in seconds
    (compilation ahead of time, then the run).
  """
  if loop not in LOOPS:
    raise ValueError(f"loop={loop!r}; choose from {', '.join(LOOPS)}.")
  if seed_axis not in SEED_AXES:
    raise ValueError(f"seed_axis={seed_axis!r}; choose from {', '.join(SEED_AXES)}.")
  num_seeds = len(keys)
  for name, value in (hyperparams or {}).items():
    if np.shape(value)[:1] != (num_seeds,):
      raise ValueError(f"hyperparams[{name!r}] has shape {np.shape(value)}; its leading"
                       f" axis must be the {num_seeds} seeds.")
  if mesh is not None and (loop, seed_axis) == ("scan", "vmap"):
    return _sharded_scan(parts, keys, mesh, progress, hyperparams, memory_budget)
  if mesh is not None and (mesh.size > 1 or jax.process_count() > 1):
    raise ValueError(f"loop={loop!r}, seed_axis={seed_axis!r} on a mesh of {mesh.size}"
                     " devices: only loop='scan', seed_axis='vmap' runs sharded.")
  # "sequential" compiles one seed's program once and calls it per seed; its
  # progress restarts at each seed.
  # Each function takes the data first; the data are never batched over seeds.
  over_seeds = {
      "vmap": lambda f: lambda data, *a: jax.vmap(lambda *s: f(data, *s))(*a),
      "map": lambda f: lambda data, *a: jax.lax.map(lambda s: f(data, *s), a),
      "sequential": lambda f: f,
  }[seed_axis]
  data = parts.data
  if seed_axis == "sequential":
    batches = [(keys[i], jax.tree.map(lambda v, i=i: v[i], hyperparams))
               for i in range(num_seeds)]
  else:
    batches = [(keys, hyperparams)]
  done_before = [0]  # iterations of the seeds already finished (sequential seeds)

  def report(step):
    if progress is not None:
      progress(done_before[0] + int(np.max(step)))

  t0 = time.perf_counter()
  if loop == "scan":
    train = _scanned(parts, report if progress is not None else None)
    compiled = jax.jit(over_seeds(lambda d, k, h: train(k, d, h))
                       ).lower(data, *batches[0]).compile()
    t1 = time.perf_counter()
    outputs = []
    for b in batches:
      outputs.append(jax.device_get(jax.block_until_ready(compiled(data, *b))))
      done_before[0] += outputs[-1]["gain"].shape[-1]
  else:
    init = jax.jit(over_seeds(lambda d, k, h: parts.init(k, d, h))
                   ).lower(data, *batches[0]).compile()
    states = [init(data, *b) for b in batches]
    interval = jax.jit(over_seeds(lambda d, s: parts.eval_interval(s, d)), donate_argnums=1
                       ).lower(data, states[0]).compile()
    task_eval = jax.jit(over_seeds(lambda d, s: parts.task_eval(s, d))
                        ).lower(data, states[0]).compile()
    t1 = time.perf_counter()
    outputs = []
    for state in states:
      steps, task1, per_task = [], [], []
      for i in range(1, parts.num_intervals + 1):
        state, (s, t) = interval(data, state)
        steps.append(s)
        task1.append(t)
        if i % parts.intervals_per_task_eval == 0:
          per_task.append(task_eval(data, state))
          report(jax.device_get(state.step))
      axis = 0 if seed_axis == "sequential" else 1  # the interval axis
      stack = lambda records: jax.tree.map(lambda *a: np.stack(a, axis=axis),
                                           *jax.device_get(records))
      steps, task1, per_task = stack(steps), stack(task1), stack(per_task)
      lead = steps["gain"].shape[:axis]
      curves = {k: v.reshape(lead + (-1,)) for k, v in {**steps, **task1}.items()}
      curves.update(per_task)
      curves["diverged_at"] = np.asarray(jax.device_get(state.diverged_at))
      outputs.append(curves)
      done_before[0] += curves["gain"].shape[-1]
  if seed_axis == "sequential":
    curves = jax.tree.map(lambda *a: np.stack(a), *outputs)
  else:
    curves = outputs[0]
  t2 = time.perf_counter()
  return curves, {"compile_s": t1 - t0, "run_s": t2 - t1}


def program_bytes(compiled: Any) -> int | None:
  """Bytes one device needs for a compiled program: its arguments, outputs and
  temporaries (XLA's memory analysis), or None where XLA reports none."""
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None
  return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes
             + analysis.temp_size_in_bytes)


def _sharded_scan(parts: TrainParts, keys: jax.Array, mesh: Any,
                  progress: Callable[[int], None] | None,
                  hyperparams: Mapping[str, Any] | None,
                  memory_budget: int | None = None):
  """:func:`train_seeds` with the seeds split over ``mesh``'s devices, in as
  few chunks as fit ``memory_budget`` bytes per device (default: 80 % of the
  first device's memory, :func:`ngm_jax.memory.device_memory_bytes`)."""
  from ngm_jax import sharding  # pylint: disable=g-import-not-at-top
  from ngm_jax.memory import device_memory_bytes  # pylint: disable=g-import-not-at-top

  per_run = {"key_data": np.asarray(jax.random.key_data(keys)),
             "hyperparams": jax.tree.map(np.asarray, dict(hyperparams or {}))}
  num_runs = len(keys)
  data = sharding.replicate(jax.device_get(parts.data), mesh)
  report = None
  if progress is not None and jax.process_index() == 0:
    report = lambda step: progress(int(np.max(step)))
  train = _scanned(parts, report)
  if memory_budget is None:
    memory_budget = int(0.8 * device_memory_bytes(mesh.devices.flat[0])[0])

  def program(data, runs):
    keys = jax.random.wrap_key_data(runs["key_data"])
    return jax.vmap(lambda k, h: train(k, data, h))(keys, runs["hyperparams"])

  def compile_for(size):
    chunk, _ = sharding.pad_runs(jax.tree.map(lambda a: a[:size], per_run), mesh.size)
    return jax.jit(program).lower(data, sharding.shard_runs(chunk, mesh)).compile()

  # Chunk size: all runs if they fit, else halved (a multiple of the device
  # count) until the compiled program's memory analysis fits the budget.
  t0 = time.perf_counter()
  size = num_runs
  compiled = compile_for(size)
  while (program_bytes(compiled) or 0) > memory_budget and size > mesh.size:
    size = max(mesh.size, -(-size // 2 // mesh.size) * mesh.size)
    compiled = compile_for(size)
  t1 = time.perf_counter()
  outputs = []
  for start in range(0, num_runs, size):
    chunk = jax.tree.map(lambda a, start=start: a[start:start + size], per_run)
    count = len(chunk["key_data"])
    padded, _ = sharding.pad_runs(chunk, size)  # the last chunk is padded to the compiled size
    out = sharding.gather(jax.block_until_ready(compiled(data, sharding.shard_runs(padded, mesh))))
    outputs.append(sharding.unpad_runs(out, count))
  curves = jax.tree.map(lambda *a: np.concatenate(a), *outputs)
  chunks = len(outputs)
  return curves, {"compile_s": t1 - t0, "run_s": time.perf_counter() - t1, "chunks": chunks,
                  "runs_per_chunk": size, "device_bytes": program_bytes(compiled)}
