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
from typing import Any, Callable, Mapping, NamedTuple

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from ngm_jax.checkpoint import keys_as_data, keys_from_data
from ngm_jax.train import TrainParts, _assemble, _scanned

__all__ = ["LOOPS", "SEED_AXES", "default_execution", "resolve_execution", "train_seeds",
           "Segments", "SegmentDone", "Stopped", "host_carry_shape"]


def default_execution(platform_name: str, convolutional: bool,
                      devices: int = 1) -> tuple[str, str]:
  """``(loop, seed_axis)`` for ``loop="auto"`` / ``seed_axis="auto"``.

  From the measurements in docs/results.md ("Scaling out (issue 10)"). The
  MLP runs as one scan with seeds vmapped (on the 2-core CPU as fast per seed
  as seeds one after another; on one H200 Split MNIST's 5 optimizers x 5
  seeds ran in 1.2 s after compiling). A
  convolutional network's seeds are not vmapped: vmapped convolutions become
  grouped convolutions, slower per seed than one seed's program called per
  seed. On one NVIDIA H200 (the ResNet, the Split CIFAR-10 protocol's sizes,
  5 seeds) one scan per seed ran 99 seed-iterations/s against 58 for the
  five seeds vmapped, so on a GPU the ResNet runs as one scan per seed
  (``"sequential"``), or on several devices one seed per device
  (``"shard"``, no seed axis in the program). On XLA:CPU its training step
  also runs many times slower inside any loop (``lax.scan``, and so also
  ``lax.map`` over seeds), so on CPU it is driven in compiled chunks, one
  seed's program per seed or per device: on the 2-core CPU split into 2 XLA
  devices (2 seeds), chunked ``"shard"`` ran in 0.60x the time of chunked
  ``"sequential"`` on one device, the scanned, vmapped program sharded over
  the same 2 devices in 11x. Other platforms (TPU) keep one scan with vmapped
  seeds (not measured).

  Args:
    platform_name: ``jax.default_backend()``, e.g. ``"cpu"``, ``"gpu"``.
    convolutional: whether the network has convolutions.
    devices: the devices the seeds are spread over (the mesh's size).
  """
  if convolutional and platform_name in ("cpu", "gpu", "cuda", "rocm"):
    loop = "chunked" if platform_name == "cpu" else "scan"
    return loop, "shard" if devices > 1 else "sequential"
  return "scan", "vmap"


def resolve_execution(loop: str, seed_axis: str, convolutional: bool,
                      devices: int = 1, platform_name: str | None = None) -> tuple[str, str]:
  """``loop`` and ``seed_axis`` with ``"auto"`` replaced (:func:`default_execution`).

  Where one of the two is given, ``"auto"`` for the other picks what runs with
  it on ``devices`` devices: ``seed_axis="vmap"`` on several devices runs as
  one scan (the sharded program); ``loop="chunked"`` on several devices
  shards its seeds one per device. ``platform_name`` defaults to
  ``jax.default_backend()``.

  Raises:
    ValueError: an unknown value, naming the allowed ones; a combination
      that cannot run on ``devices`` devices (on more than one, only
      ``loop="scan", seed_axis="vmap"`` and ``seed_axis="shard"`` do).
  """
  if loop not in ("auto",) + LOOPS:
    raise ValueError(f"loop={loop!r}; choose from auto, {', '.join(LOOPS)}.")
  if seed_axis not in ("auto",) + SEED_AXES:
    raise ValueError(f"seed_axis={seed_axis!r}; choose from auto, {', '.join(SEED_AXES)}.")
  auto_loop, auto_axis = default_execution(platform_name or jax.default_backend(),
                                           convolutional, devices)
  if loop == "auto" and seed_axis != "auto":
    loop = "scan" if devices > 1 and seed_axis == "vmap" else auto_loop
  elif seed_axis == "auto" and loop != "auto":
    seed_axis = "shard" if devices > 1 and (loop, auto_axis) == ("chunked", "vmap") else auto_axis
  else:
    loop, seed_axis = (auto_loop, auto_axis) if loop == "auto" else (loop, seed_axis)
  if devices > 1 and seed_axis != "shard" and (loop, seed_axis) != ("scan", "vmap"):
    raise ValueError(f"loop={loop!r}, seed_axis={seed_axis!r} on {devices} devices: runs"
                     " sharded over devices as loop='scan', seed_axis='vmap' (one program)"
                     " or with seed_axis='shard' (one seed per device, either loop); or use"
                     " devices=1.")
  return loop, seed_axis


#: How :func:`train_seeds` runs the loop and the seeds.
LOOPS = ("scan", "chunked")
SEED_AXES = ("vmap", "map", "sequential", "shard")


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
    segments: "Segments | None" = None,
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
      the iterations of every seed run so far (up to ``S·T``), with
      ``"shard"`` those of every round (up to ``ceil(S / devices)·T``).
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
      halved until they fit; the timings say how many. This run (with a
      mesh, ``loop="scan"``, ``seed_axis="vmap"``) is cut into segments
      between which it can be checkpointed, stopped and resumed
      (:class:`Segments`); its curves are bit for bit the single program's.
      With ``seed_axis="shard"``: the devices the seeds are spread over
      (default: every device, :func:`ngm_jax.sharding.run_mesh`).
    segments: for the run on a mesh, :class:`Segments`. The other drivers
      call only its ``on_segment`` (after every per-task evaluation of
      ``loop="chunked"``, after each seed or the whole program of
      ``loop="scan"``), with ``state=None``: they stop, but cannot resume.

  Raises:
    Stopped: ``segments.on_segment`` asked to stop.

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
    return _sharded_scan(parts, keys, mesh, progress, hyperparams, memory_budget, segments)
  if seed_axis == "shard":
    return _sharded_rounds(parts, keys, loop, mesh, progress, hyperparams,
                           segments.on_segment if segments is not None else None)
  if mesh is not None and (mesh.size > 1 or jax.process_count() > 1):
    raise ValueError(f"loop={loop!r}, seed_axis={seed_axis!r} on a mesh of {mesh.size}"
                     " devices: only loop='scan', seed_axis='vmap' and seed_axis='shard'"
                     " run sharded.")
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
  on_segment = segments.on_segment if segments is not None else None
  total_blocks = parts.num_intervals // parts.intervals_per_task_eval
  blocks_done = [0]

  def report(step):
    if progress is not None:
      progress(done_before[0] + int(np.max(step)))

  def check_stop(step):
    """``on_segment`` (no resumable state: these drivers restart a variant)."""
    blocks_done[0] += 1 if loop == "chunked" else total_blocks
    if on_segment is not None and on_segment(SegmentDone(
        min(blocks_done[0], total_blocks), total_blocks, int(np.max(step)),
        time.perf_counter() - t1, None)):
      raise Stopped(blocks_done[0], total_blocks, int(np.max(step)))

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
      check_stop(outputs[-1]["gain"].shape[-1])
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

    def after_block(step):
      report(step)
      check_stop(step)

    for state in states:
      curves = _drive_intervals(parts, state, lambda st: interval(data, st),
                                lambda st: task_eval(data, st), after_block,
                                axis=0 if seed_axis == "sequential" else 1)
      outputs.append(curves)
      done_before[0] += curves["gain"].shape[-1]
  if seed_axis == "sequential":
    curves = jax.tree.map(lambda *a: np.stack(a), *outputs)
  else:
    curves = outputs[0]
  t2 = time.perf_counter()
  return curves, {"compile_s": t1 - t0, "run_s": t2 - t1}


def _drive_intervals(parts: TrainParts, state: Any, interval: Callable, task_eval: Callable,
                     after_block: Callable[[Any], None], axis: int,
                     fetch: Callable[[Any], Any] = jax.device_get) -> dict[str, np.ndarray]:
  """The chunked loop for one state: ``interval(state) -> (state, records)``
  called ``parts.num_intervals`` times, ``task_eval(state)`` and
  ``after_block(step)`` (the state's ``step``, fetched) after every
  per-task-eval block. Returns the curves, the interval records stacked on
  ``axis`` (0: one run; 1: after a leading runs axis) and ``fetch``ed to
  NumPy (``jax.device_get``, or :func:`ngm_jax.sharding.gather` for global
  arrays)."""
  steps, task1, per_task = [], [], []
  for i in range(1, parts.num_intervals + 1):
    state, (s, t) = interval(state)
    steps.append(s)
    task1.append(t)
    if i % parts.intervals_per_task_eval == 0:
      per_task.append(task_eval(state))
      after_block(fetch(state.step))
  stack = lambda records: jax.tree.map(lambda *a: np.stack(a, axis=axis), *fetch(records))
  steps, task1, per_task = stack(steps), stack(task1), stack(per_task)
  lead = steps["gain"].shape[:axis]
  curves = {k: v.reshape(lead + (-1,)) for k, v in {**steps, **task1}.items()}
  curves.update(per_task)
  curves["diverged_at"] = np.asarray(fetch(state.diverged_at))
  return curves


def program_bytes(compiled: Any) -> int | None:
  """Bytes one device needs for a compiled program: its arguments, outputs and
  temporaries (XLA's memory analysis), or None where XLA reports none."""
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None
  return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes
             + analysis.temp_size_in_bytes)


class Segments(NamedTuple):
  """How the sharded scanned run (:func:`train_seeds` with a ``mesh``) is cut
  into segments, and what happens between two of them.

  The run is compiled once as a program that takes the training carry (every
  seed's :class:`ngm_jax.train.TrainState`, PRNG keys as key data) and runs
  ``blocks`` per-task-eval blocks (``task_eval_every`` iterations each: a
  ``lax.scan`` over the blocks of :func:`ngm_jax.train._scanned`), returning
  the new carry and the blocks' records. Python calls it again and again, one
  call in flight while the previous one's records are read, so the device is
  not left waiting; between two calls the run may be saved (a checkpoint) or
  stopped. The curves are bit for bit those of the single scanned program
  (tests/test_resume.py). A scan whose length is a traced value (one program
  for any number of blocks) was tried and is not: XLA:CPU then reduces the
  test losses in another order.

  Attributes:
    blocks: per-task-eval blocks per call (must divide ``blocks_per_task``);
      how soon a stop request is acted on (after at most two calls).
    blocks_per_task: blocks in one task (a segment never crosses a task
      boundary; None: the whole run counts as one task).
    resume: ``(carry, records, blocks_done)`` on the host, as
      :attr:`SegmentDone.state` gives them, to continue from (None: start).
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
      blocks they cover (``blocks_done`` or one segment more). None for the
      drivers that cannot resume.
  """

  blocks_done: int
  total_blocks: int
  iterations_done: int
  run_s: float
  state: Callable[[], tuple[Any, Any, int]] | None


class Stopped(Exception):
  """A run stopped because ``on_segment`` asked it to."""

  def __init__(self, blocks_done: int, total_blocks: int, iterations_done: int):
    super().__init__(f"stopped after {iterations_done} iterations ({blocks_done} of"
                     f" {total_blocks} blocks)")
    self.blocks_done = blocks_done
    self.total_blocks = total_blocks
    self.iterations_done = iterations_done


def _batched_outputs(fn, in_axes, *args) -> list[bool]:
  """Which leaves of ``jax.vmap(fn, in_axes)(*args)``'s output vmap keeps
  batched, from one trace on shapes (nothing is compiled or computed).

  Every output leaf passes through an identity with a
  ``jax.custom_batching.custom_vmap`` rule, which vmap calls with the leaves'
  batched flags (it is called only if some leaf is batched).
  """
  flags = []

  @jax.custom_batching.custom_vmap
  def probe(leaves):
    return leaves

  @probe.def_vmap
  def _rule(axis_size, in_batched, leaves):  # pylint: disable=unused-argument
    flags[:] = in_batched[0]
    return leaves, in_batched[0]

  def probed(*a):
    out = fn(*a)
    leaves, treedef = jax.tree.flatten(out)
    return jax.tree.unflatten(treedef, probe(leaves))

  out = jax.eval_shape(jax.vmap(probed, in_axes=in_axes), *args)
  return [bool(f) for f in flags] or [False] * len(jax.tree.leaves(out))


def _shared_leaves(parts: TrainParts, data: Any, runs: Any) -> list[bool]:
  """Which leaves of the carry (flattened) are the same for every run inside
  the scanned loop: ``vmap`` leaves them unbatched (Adam's step count, the
  iteration), as it does in the single program, where they never leave it.

  A leaf is shared if the vmapped ``init`` gives it unbatched, and one
  scanned step of the vmapped loop, started from those unbatched, keeps it
  so (the scan's own fixed point). Two traces on shapes
  (:func:`_batched_outputs`); trials of ``out_axes=None`` leaf by leaf, the
  earlier way, traced the ResNet's ``init`` once per leaf: 87 s (NGM-SGD,
  105 leaves) and 265 s (Adam, 227) on the 2-core CPU, before a run's compile
  clock started.
  """
  def init(key_data, hyperparams):
    return keys_as_data(parts.init(jax.random.wrap_key_data(key_data), data, hyperparams))

  def one_step(carry):
    like = jax.eval_shape(lambda h: parts.init(jax.random.key(0), data, h), carry.hyperparams)
    state, _ = jax.lax.scan(lambda s, _: parts.step(s, data), keys_from_data(carry, like),
                            None, length=1)
    return keys_as_data(state)

  args = (runs["key_data"], runs["hyperparams"])
  shared = [not b for b in _batched_outputs(init, 0, *args)]
  if not any(shared):
    return shared
  batched = jax.eval_shape(jax.vmap(init), *args)
  treedef = jax.tree.structure(batched)
  carry = jax.tree.unflatten(treedef, [
      jax.ShapeDtypeStruct(leaf.shape[1:] if s else leaf.shape, leaf.dtype)
      for leaf, s in zip(jax.tree.leaves(batched), shared)])
  in_axes = jax.tree.unflatten(treedef, [None if s else 0 for s in shared])
  after_step = _batched_outputs(one_step, (in_axes,), carry)
  return [s and not b for s, b in zip(shared, after_step)]


def _segment_programs(parts: TrainParts, blocks: int, shared: list[bool] | None = None):
  """``init(data, runs) -> carry`` and ``segment(data, carry) -> (carry,
  records)`` (``blocks`` blocks) for every run (vmapped); the carry holds PRNG
  keys as key data, every leaf with a leading run axis. The ``shared`` leaves
  (:func:`_shared_leaves`) enter the vmapped loop unbatched (their first row),
  as in the single program."""
  ipte = parts.intervals_per_task_eval

  def block(state, data):  # one block of train._scanned, unchanged
    state, (steps, task1) = jax.lax.scan(
        lambda s, _: parts.eval_interval(s, data), state, None, length=ipte)
    return state, (steps, task1, parts.task_eval(state, data))

  def init(data, runs):
    def one(key_data, hyperparams):
      return keys_as_data(parts.init(jax.random.wrap_key_data(key_data), data, hyperparams))

    return jax.vmap(one)(runs["key_data"], runs["hyperparams"])

  def segment(data, carry):
    def one(carry):
      # Which leaves are PRNG keys: those of a fresh state (shapes only).
      like = jax.eval_shape(lambda h: parts.init(jax.random.key(0), data, h), carry.hyperparams)
      state, records = jax.lax.scan(lambda s, _: block(s, data), keys_from_data(carry, like),
                                    None, length=blocks)
      return keys_as_data(state), records

    leaves, treedef = jax.tree.flatten(carry)
    flags = shared or [False] * len(leaves)
    inputs = jax.tree.unflatten(treedef, [leaf[0] if s else leaf
                                          for leaf, s in zip(leaves, flags)])
    in_axes = jax.tree.unflatten(treedef, [None if s else 0 for s in flags])
    return jax.vmap(one, in_axes=(in_axes,))(inputs)  # shared leaves broadcast back on output

  return init, segment


def host_carry_shape(parts: TrainParts, keys: jax.Array,
                     hyperparams: Mapping[str, Any] | None = None) -> Any:
  """The carry of a segmented run for ``keys`` ``[S]`` as ShapeDtypeStructs
  (PRNG keys as key data): what a checkpoint holds and :class:`Segments`'s
  ``resume`` takes."""
  init, _ = _segment_programs(parts, 1)
  runs = {"key_data": jax.random.key_data(keys),
          "hyperparams": jax.tree.map(np.asarray, dict(hyperparams or {}))}
  return jax.eval_shape(init, parts.data, runs)


def _sharded_scan(parts: TrainParts, keys: jax.Array, mesh: Any,
                  progress: Callable[[int], None] | None,
                  hyperparams: Mapping[str, Any] | None,
                  memory_budget: int | None = None,
                  segments: Segments | None = None):
  """:func:`train_seeds` with the seeds split over ``mesh``'s devices, in as
  few chunks as fit ``memory_budget`` bytes per device (default: 80 % of the
  first device's memory, :func:`ngm_jax.memory.device_memory_bytes`), run in
  segments (:class:`Segments`)."""
  from ngm_jax import sharding  # pylint: disable=g-import-not-at-top
  from ngm_jax.memory import device_memory_bytes  # pylint: disable=g-import-not-at-top

  segments = segments or Segments()
  per_run = {"key_data": np.asarray(jax.random.key_data(keys)),
             "hyperparams": jax.tree.map(np.asarray, dict(hyperparams or {}))}
  num_runs = len(keys)
  data = sharding.replicate(jax.device_get(parts.data), mesh)
  total = parts.num_intervals // parts.intervals_per_task_eval
  per_task = segments.blocks_per_task or total
  n = segments.blocks
  if per_task < 1 or total % per_task or n < 1 or per_task % n:
    raise ValueError(f"Segments(blocks={n}, blocks_per_task={per_task}): blocks must divide"
                     f" blocks_per_task, which must divide the run's {total} blocks.")
  if memory_budget is None:
    memory_budget = int(0.8 * device_memory_bytes(mesh.devices.flat[0])[0])
  shared = _shared_leaves(parts, parts.data, per_run)
  init_fn, segment_fn = _segment_programs(parts, n, shared)
  runs_sharding = NamedSharding(mesh, PartitionSpec(sharding.RUNS))

  def runs_of(start, count, padded_size):
    chunk = jax.tree.map(lambda a: a[start:start + count], per_run)
    padded, _ = sharding.pad_runs(chunk, padded_size)
    return sharding.shard_runs(padded, mesh)

  def compile_for(size):
    size = -(-size // mesh.size) * mesh.size
    runs = runs_of(0, size, size)
    init = jax.jit(init_fn, out_shardings=runs_sharding).lower(data, runs).compile()
    carry = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=runs_sharding),
                         jax.eval_shape(init_fn, data, runs))
    segment = jax.jit(segment_fn, donate_argnums=1, out_shardings=runs_sharding
                      ).lower(data, carry).compile()
    return size, init, segment

  # Chunk size: all runs if they fit, else halved (a multiple of the device
  # count) until the compiled segment's memory analysis fits the budget.
  t0 = time.perf_counter()
  size, init, segment = compile_for(num_runs)
  while (program_bytes(segment) or 0) > memory_budget and size > mesh.size:
    size, init, segment = compile_for(max(mesh.size, -(-size // 2 // mesh.size) * mesh.size))
  t1 = time.perf_counter()
  starts = list(range(0, num_runs, size))
  counts = [min(size, num_runs - s) for s in starts]
  one_chunk = len(starts) == 1

  def to_device(host_carry):
    padded, _ = sharding.pad_runs(host_carry, size)
    return sharding.shard_runs(padded, mesh)

  # Each chunk's carry: on the device for one chunk, else on the host between
  # segments (one chunk's program on the device at a time).
  if segments.resume is not None:
    host, old_records, blocks_done = segments.resume
    records = [old_records] if old_records is not None and blocks_done else []
    carries = [jax.tree.map(lambda a, s=s, c=c: np.asarray(a)[s:s + c], host)
               for s, c in zip(starts, counts)]
    if one_chunk:
      carries = [to_device(carries[0])]
  else:
    records, blocks_done = [], 0
    carries = [init(data, runs_of(s, c, size)) for s, c in zip(starts, counts)]
    if not one_chunk:
      carries = [sharding.unpad_runs(sharding.gather(c), k) for c, k in zip(carries, counts)]
  if blocks_done % n:
    raise ValueError(f"resume at block {blocks_done}: not a multiple of Segments.blocks={n}.")

  in_flight = []  # device records of the segments dispatched, oldest first
  dispatched = blocks_done
  calls = 0

  def dispatch():
    nonlocal dispatched, calls
    outs = []
    for c, count in enumerate(counts):
      carry, out = segment(data, carries[c] if one_chunk else to_device(carries[c]))
      carries[c] = carry if one_chunk else sharding.unpad_runs(sharding.gather(carry), count)
      outs.append(out)
    in_flight.append(outs)
    dispatched += n
    calls += 1

  def collect():
    nonlocal blocks_done
    outs = in_flight.pop(0)
    records.append(jax.tree.map(lambda *a: np.concatenate(a), *[
        sharding.unpad_runs(sharding.gather(out), count) for out, count in zip(outs, counts)]))
    blocks_done += n

  def host_carry():
    if one_chunk:
      return sharding.unpad_runs(sharding.gather(carries[0]), counts[0])
    return jax.tree.map(lambda *a: np.concatenate(a), *carries)

  def all_records():
    return jax.tree.map(lambda *a: np.concatenate(a, axis=1), *records)

  def state():
    while in_flight:
      collect()
    return host_carry(), all_records(), blocks_done

  report = progress if jax.process_index() == 0 else None
  reported = blocks_done
  while blocks_done < total:
    # Two calls in flight (one chunk): the next runs while this one's records
    # are read. Host carries (several chunks) run one call at a time.
    while dispatched < total and len(in_flight) < (2 if one_chunk else 1):
      dispatch()
    collect()
    # Once per segment collected (a checkpoint's state() collects the one in
    # flight too, which is then reported in turn).
    while reported < blocks_done:
      reported = blocks_done
      done = blocks_done * int(np.prod(records[-1][0]["gain"].shape[2:]) // n)
      if report is not None:
        report(done)
      if segments.on_segment is not None and segments.on_segment(SegmentDone(
          blocks_done, total, done, time.perf_counter() - t1, state)):
        raise Stopped(blocks_done, total, done)
  curves = {**_assemble(*all_records()), "diverged_at": np.asarray(host_carry().diverged_at)}
  return curves, {"compile_s": t1 - t0, "run_s": time.perf_counter() - t1,
                  "chunks": len(starts), "runs_per_chunk": size,
                  "device_bytes": program_bytes(segment), "segments": calls}


def _sharded_rounds(parts: TrainParts, keys: jax.Array, loop: str, mesh: Any,
                    progress: Callable[[int], None] | None,
                    hyperparams: Mapping[str, Any] | None,
                    on_segment: Callable[[SegmentDone], bool] | None):
  """:func:`train_seeds` with ``seed_axis="shard"``: one seed per device.

  Every compiled function is one seed's (no vmap, so no grouped convolutions
  on XLA:CPU), mapped over the ``("runs",)`` mesh with ``jax.shard_map``: each
  device runs its seed's program on its shard of the PRNG keys and
  hyperparameters, the data replicated. ``mesh.size`` seeds run at a time, in
  rounds one after another (the last round padded with copies of the last
  seed, dropped from the curves); ``loop="scan"`` runs a round as one scanned
  program, ``"chunked"`` as compiled eval intervals called from Python.
  """
  from ngm_jax import sharding  # pylint: disable=g-import-not-at-top

  mesh = sharding.run_mesh() if mesh is None else mesh
  size = mesh.size
  per_run = {"key_data": np.asarray(jax.random.key_data(keys)),
             "hyperparams": jax.tree.map(np.asarray, dict(hyperparams or {}))}
  padded, num_runs = sharding.pad_runs(per_run, size)
  rounds = len(padded["key_data"]) // size
  data = sharding.replicate(jax.device_get(parts.data), mesh)
  over_runs, replicated = PartitionSpec(sharding.RUNS), PartitionSpec()

  def one_per_device(f, donate=False):
    """``f(one run's tree, data)`` → a function of ``[size, ...]`` trees."""
    def local(runs, d):  # this device's shard: one run
      out = f(jax.tree.map(lambda a: a[0], runs), d)
      return jax.tree.map(lambda a: a[None], out)
    # check_vma off: leaves made from the data alone (the step count) are
    # the same on every device but still come back as one row per run.
    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(over_runs, replicated),
                                 out_specs=over_runs, check_vma=False),
                   donate_argnums=(0,) if donate else ())

  def start(runs, d):
    return parts.init(jax.random.wrap_key_data(runs["key_data"]), d, runs["hyperparams"])

  round_runs = lambda r: sharding.shard_runs(
      jax.tree.map(lambda a: a[r * size:(r + 1) * size], padded), mesh)
  blocks_per_round = parts.num_intervals // parts.intervals_per_task_eval
  total_blocks = blocks_per_round * rounds
  t0 = time.perf_counter()
  first = round_runs(0)
  if loop == "scan":
    train = _scanned(parts, None)
    programs = [one_per_device(lambda runs, d: train(
        jax.random.wrap_key_data(runs["key_data"]), d, runs["hyperparams"])
                               ).lower(first, data).compile()]
  else:
    init_fn = one_per_device(start)
    init = init_fn.lower(first, data).compile()
    state_shape = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype,
                                       sharding=NamedSharding(mesh, over_runs)),
        jax.eval_shape(init_fn, first, data))
    interval = one_per_device(lambda s, d: parts.eval_interval(s, d), donate=True
                              ).lower(state_shape, data).compile()
    task_eval = one_per_device(lambda s, d: parts.task_eval(s, d)
                               ).lower(state_shape, data).compile()
    programs = [init, interval, task_eval]
  t1 = time.perf_counter()
  report = progress if jax.process_index() == 0 else None
  blocks_done = 0

  def after_block(iterations_done):
    nonlocal blocks_done
    blocks_done += 1 if loop == "chunked" else blocks_per_round
    if report is not None:
      report(iterations_done)
    if on_segment is not None and on_segment(SegmentDone(
        blocks_done, total_blocks, iterations_done, time.perf_counter() - t1, None)):
      raise Stopped(blocks_done, total_blocks, iterations_done)

  outputs, done_before = [], 0  # iterations of the rounds finished
  for r in range(rounds):
    runs = first if r == 0 else round_runs(r)
    if loop == "scan":
      curves = sharding.gather(programs[0](runs, data))
      after_block(done_before + curves["gain"].shape[-1])
    else:
      curves = _drive_intervals(
          parts, init(runs, data), lambda st: interval(st, data),
          lambda st: task_eval(st, data),
          lambda step, before=done_before: after_block(before + int(np.max(step))),
          axis=1, fetch=sharding.gather)
    outputs.append(curves)
    done_before += curves["gain"].shape[-1]
  curves = sharding.unpad_runs(jax.tree.map(lambda *a: np.concatenate(a), *outputs), num_runs)
  return curves, {"compile_s": t1 - t0, "run_s": time.perf_counter() - t1,
                  "device_bytes": max(program_bytes(p) or 0 for p in programs),
                  "rounds": rounds}
