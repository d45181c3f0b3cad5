"""Execution modes: how one run's seeds and loop are compiled, as segments.

A mode (:func:`build_mode`) compiles one ``segment(carry) -> (carry,
records)`` that advances a chunk of seeds by ``Segments.blocks``
per-task-eval blocks (:func:`ngm_jax.train.scan_blocks`, the data bound as an
argument of every compiled function), and says how a chunk's carry goes to
and from the host. :func:`ngm_jax.driver.drive` runs the segments. The modes:

- ``scan`` + ``vmap``: a chunk of seeds vmapped in one program, sharded over
  the mesh's devices; as many chunks as fit the memory budget.
- ``scan`` + ``map`` / ``sequential``: the seeds mapped inside the program
  (``lax.map``), or one seed's program per seed (a chunk per seed).
- ``chunked`` + ``vmap`` / ``map`` / ``sequential``: the same seed axes, the
  loop driven from Python one compiled eval interval at a time (XLA:CPU runs a
  convolution's step far slower inside a loop); a segment is then ``blocks``
  blocks of interval calls and per-task evaluations.
- ``shard`` (either loop): one seed per device (``jax.shard_map``), a chunk
  per round of ``mesh.size`` seeds (the last padded with copies of its last
  seed, dropped).

Every carry is a :class:`ngm_jax.train.TrainState` with PRNG keys as key
data; on the host it has a leading seed axis ``[count, ...]`` in every mode,
so a checkpoint made by one mode, device count or chunk size has the same
form as another's.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from ngm_jax import sharding
from ngm_jax.checkpoint import keys_as_data, keys_from_data
from ngm_jax.train import TrainParts, scan_blocks, task_eval_block

__all__ = ["Mode", "build_mode", "host_carry_shape", "program_bytes"]


def program_bytes(compiled: Any) -> int | None:
  """Bytes one device needs for a compiled program: its arguments, outputs and
  temporaries (XLA's memory analysis), or None where XLA reports none."""
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None
  return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes
             + analysis.temp_size_in_bytes)


class Mode(NamedTuple):
  """One execution mode, compiled: what the driver calls.

  Attributes:
    chunks: ``(first seed, seeds)`` of each chunk, in seed order.
    init: ``chunk -> carry``: the chunk's initial carry, on the device.
    segment: ``carry -> (carry, records)``: ``blocks`` blocks, dispatched
      asynchronously (the carry argument may be donated).
    put: ``(chunk, host carry [seeds, ...]) -> carry`` on the device.
    carry_to_host: ``(chunk, carry) -> host carry [seeds, ...]`` (NumPy,
      padding dropped).
    records_to_host: ``(chunk, records) -> (steps, task1, per_task)``, NumPy
      ``[seeds, blocks, ...]`` (as :func:`ngm_jax.train.scan_blocks` per seed).
    resident: whether the chunks' carries stay on the device between
      segments (else on the host: one chunk's program on the device at a time).
    passes: how many times a seed's iterations count in ``progress`` (the
      chunks run one after another: sequential seeds, rounds of devices).
    info: compile-time facts for the timings (chunks, rounds, bytes).
  """

  chunks: tuple[tuple[int, int], ...]
  init: Callable[[int], Any]
  segment: Callable[[Any], tuple[Any, Any]]
  put: Callable[[int, Any], Any]
  carry_to_host: Callable[[int, Any], Any]
  records_to_host: Callable[[int, Any], tuple]
  resident: bool
  passes: int
  info: dict


def build_mode(parts: TrainParts, runs: dict, loop: str, seed_axis: str, mesh: Any,
               blocks: int, memory_budget: int | None) -> Mode:
  """The compiled mode for ``runs`` ``{"key_data": [S, ...], "hyperparams":
  {name: [S, ...]}}`` (NumPy); ``mesh`` for ``vmap`` (scanned) and ``shard``
  (None: one device, every device)."""
  if seed_axis == "shard":
    return _shard_mode(parts, runs, loop, mesh or sharding.run_mesh(), blocks)
  if (loop, seed_axis) == ("scan", "vmap"):
    mesh = mesh or sharding.run_mesh(1, jax.devices()[:1])
    return _vmap_scan_mode(parts, runs, mesh, blocks, memory_budget)
  return _local_mode(parts, runs, loop, seed_axis, blocks)


# --- One seed's pieces, on carries with PRNG keys as key data ----------------


def _like(parts: TrainParts, carry: Any, data: Any) -> Any:
  """A fresh state's shapes: which leaves of ``carry`` are PRNG keys."""
  return jax.eval_shape(lambda h: parts.init(jax.random.key(0), data, h), carry.hyperparams)


def _seed_init(parts: TrainParts) -> Callable:
  """``(one run's {"key_data", "hyperparams"}, data) -> carry``."""
  return lambda run, data: keys_as_data(
      parts.init(jax.random.wrap_key_data(run["key_data"]), data, run["hyperparams"]))


def _seed_segment(parts: TrainParts, blocks: int) -> Callable:
  """``(carry, (data, count)) -> (carry, records)``: ``count`` (an argument,
  ``blocks``) blocks of one seed, records ``[blocks, ...]``.

  The blocks run in a loop whose trip count is an argument, not a
  ``lax.scan`` of ``blocks``: XLA inlines a one-trip loop, and the inlined
  block, inside ``lax.map`` or ``shard_map``, reduced the test losses in
  another order than the whole run's scan (up to 4e-6, measured on XLA:CPU);
  left a loop body, it gives the whole run's bits.
  """
  def segment(carry, data_count):
    data, count = data_count
    state = keys_from_data(carry, _like(parts, carry, data))
    shapes = jax.eval_shape(lambda s: task_eval_block(parts, s, data)[1], state)
    buffers = jax.tree.map(lambda s: jnp.zeros((blocks,) + s.shape, s.dtype), shapes)

    def body(i, state_buffers):
      state, buffers = state_buffers
      state, records = task_eval_block(parts, state, data)
      return state, jax.tree.map(lambda b, r: b.at[i].set(r), buffers, records)

    state, records = jax.lax.fori_loop(0, count, body, (state, buffers))
    return keys_as_data(state), records
  return segment


def _seed_interval(parts: TrainParts) -> Callable:
  """``(carry, data) -> (carry, (steps, task1))``: one eval interval."""
  def interval(carry, data):
    state, records = parts.eval_interval(keys_from_data(carry, _like(parts, carry, data)), data)
    return keys_as_data(state), records
  return interval


def _seed_task_eval(parts: TrainParts) -> Callable:
  return lambda carry, data: parts.task_eval(
      keys_from_data(carry, _like(parts, carry, data)), data)


def _chunked_segment(interval: Callable, task_eval: Callable, data: Any, intervals: int,
                     blocks: int) -> Callable:
  """The chunked loop's segment: ``blocks`` x (``intervals`` compiled interval
  calls, then the per-task evaluation), driven from Python; its records are
  ``[(interval records, per-task records)]`` per block (see :func:`_stacked`)."""
  def segment(carry):
    out = []
    for _ in range(blocks):
      records = []
      for _ in range(intervals):
        carry, r = interval(carry, data)
        records.append(r)
      out.append((records, task_eval(carry, data)))
    return carry, out
  return segment


def _stacked(out: Any, axis: int) -> tuple:
  """Host records of :func:`_chunked_segment` → ``(steps, task1, per_task)``
  with the blocks and intervals axes at ``axis`` (0: one seed; 1: after the
  seed axis), as :func:`ngm_jax.train.scan_blocks` lays them out."""
  stack = lambda *a: np.stack(a, axis)
  blocks = [jax.tree.map(stack, *records) for records, _ in out]
  steps, task1 = jax.tree.map(stack, *blocks)
  return steps, task1, jax.tree.map(stack, *[per_task for _, per_task in out])


# --- The modes ----------------------------------------------------------------


def _local_mode(parts: TrainParts, runs: dict, loop: str, seed_axis: str, blocks: int) -> Mode:
  """``map`` and ``sequential`` (either loop) and chunked ``vmap``, on the
  default device: all seeds in one program, or one seed's program per seed."""
  over = {  # a seed's function of (carry, data) -> one of a chunk's carries
      "vmap": lambda f: lambda c, d: jax.vmap(lambda x: f(x, d))(c),
      "map": lambda f: lambda c, d: jax.lax.map(lambda x: f(x, d), c),
      "sequential": lambda f: f,
  }[seed_axis]
  one = seed_axis == "sequential"
  num = len(runs["key_data"])
  chunks = tuple((i, 1) for i in range(num)) if one else ((0, num),)
  chunk_runs = lambda c: jax.tree.map(lambda a: a[c], runs) if one else runs
  data = parts.data
  init = jax.jit(over(_seed_init(parts))).lower(chunk_runs(0), data).compile()
  like = jax.eval_shape(over(_seed_init(parts)), chunk_runs(0), data)
  compile_ = lambda f, d=data, **kw: jax.jit(over(f), **kw).lower(like, d).compile()
  if loop == "scan":
    data_count = (data, np.int32(blocks))
    program = compile_(_seed_segment(parts, blocks), data_count, donate_argnums=0)
    segment = lambda carry: program(carry, data_count)
  else:
    interval = compile_(_seed_interval(parts), donate_argnums=0)
    task_eval = compile_(_seed_task_eval(parts))
    segment = _chunked_segment(interval, task_eval, data, parts.intervals_per_task_eval, blocks)
  lead = (lambda t: jax.tree.map(lambda a: a[None], t)) if one else (lambda t: t)
  host = lambda t: lead(jax.device_get(t))
  to_records = ((lambda c, r: host(r)) if loop == "scan"
                else lambda c, r: lead(_stacked(jax.device_get(r), 0 if one else 1)))
  return Mode(
      chunks=chunks, init=lambda c: init(chunk_runs(c), data), segment=segment,
      put=lambda c, h: jax.device_put(jax.tree.map(lambda a: a[0], h) if one else h),
      carry_to_host=lambda c, x: host(x), records_to_host=to_records, resident=True,
      passes=len(chunks), info={})


def _shard_mode(parts: TrainParts, runs: dict, loop: str, mesh: Any, blocks: int) -> Mode:
  """``seed_axis="shard"``: one seed per device, rounds of ``mesh.size`` seeds.

  Every compiled function is one seed's (no vmap, so no grouped convolutions
  on XLA:CPU), mapped over the ``("runs",)`` mesh with ``jax.shard_map``: each
  device runs its seed's program on its shard of the carry, the data
  replicated. The last round is padded with copies of the last seed.
  """
  size = mesh.size
  padded, num = sharding.pad_runs(runs, size)
  chunks = tuple((r, min(size, num - r)) for r in range(0, num, size))
  data = sharding.replicate(jax.device_get(parts.data), mesh)
  over_runs = PartitionSpec(sharding.RUNS)

  def one_per_device(f, donate=False):
    """``f(one run's tree, data)`` → a function of ``[size, ...]`` trees."""
    def local(tree, d):  # this device's shard: one run
      return jax.tree.map(lambda a: a[None], f(jax.tree.map(lambda a: a[0], tree), d))
    # check_vma off: leaves made from the data alone (the step count) are
    # the same on every device but still come back as one row per run.
    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(over_runs, PartitionSpec()),
                                 out_specs=over_runs, check_vma=False),
                   donate_argnums=(0,) if donate else ())

  round_runs = lambda c: sharding.shard_runs(
      jax.tree.map(lambda a: a[c * size:(c + 1) * size], padded), mesh)
  init_fn = one_per_device(_seed_init(parts))
  init = init_fn.lower(round_runs(0), data).compile()
  like = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=NamedSharding(mesh, over_runs)),
      jax.eval_shape(init_fn, round_runs(0), data))
  compile_ = lambda f, d=data, donate=False: one_per_device(f, donate).lower(like, d).compile()
  if loop == "scan":
    data_count = (data, sharding.replicate(np.int32(blocks), mesh))
    program = compile_(_seed_segment(parts, blocks), data_count, donate=True)
    segment, programs = lambda carry: program(carry, data_count), [init, program]
  else:
    interval = compile_(_seed_interval(parts), donate=True)
    task_eval = compile_(_seed_task_eval(parts))
    segment = _chunked_segment(interval, task_eval, data, parts.intervals_per_task_eval, blocks)
    programs = [init, interval, task_eval]
  host = lambda c, t: sharding.unpad_runs(sharding.gather(t), chunks[c][1])
  return Mode(
      chunks=chunks, init=lambda c: init(round_runs(c), data), segment=segment,
      put=lambda c, h: sharding.shard_runs(sharding.pad_runs(h, size)[0], mesh),
      carry_to_host=host,
      records_to_host=((lambda c, r: host(c, r)) if loop == "scan"
                       else lambda c, r: host(c, _stacked(sharding.gather(r), 1))),
      resident=True, passes=len(chunks),
      info={"device_bytes": max(program_bytes(p) or 0 for p in programs),
            "rounds": len(chunks)})


def _vmap_scan_mode(parts: TrainParts, runs: dict, mesh: Any, blocks: int,
                    memory_budget: int | None) -> Mode:
  """``loop="scan", seed_axis="vmap"``: the seeds vmapped in one program,
  split over ``mesh``'s devices (padded to a multiple of the device count),
  in as few chunks as fit ``memory_budget`` bytes per device (default: 80 %
  of the first device's memory, :func:`ngm_jax.memory.device_memory_bytes`):
  all seeds if they fit, else halved (a multiple of the device count) until
  the compiled segment's memory analysis fits. With several chunks, their
  carries wait on the host between segments."""
  from ngm_jax.memory import device_memory_bytes  # pylint: disable=g-import-not-at-top

  num = len(runs["key_data"])
  data = sharding.replicate(jax.device_get(parts.data), mesh)
  if memory_budget is None:
    memory_budget = int(0.8 * device_memory_bytes(mesh.devices.flat[0])[0])
  init_fn, segment_fn = _segment_programs(parts, blocks, _shared_leaves(parts, parts.data, runs))
  runs_sharding = NamedSharding(mesh, PartitionSpec(sharding.RUNS))
  put = lambda tree, size: sharding.shard_runs(sharding.pad_runs(tree, size)[0], mesh)
  runs_of = lambda start, count, size: put(
      jax.tree.map(lambda a: a[start:start + count], runs), size)

  def compile_for(size):
    size = -(-size // mesh.size) * mesh.size
    first = runs_of(0, size, size)
    init = jax.jit(init_fn, out_shardings=runs_sharding).lower(data, first).compile()
    carry = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=runs_sharding),
                         jax.eval_shape(init_fn, data, first))
    segment = jax.jit(segment_fn, donate_argnums=1, out_shardings=runs_sharding
                      ).lower(data, carry).compile()
    return size, init, segment

  size, init, segment = compile_for(num)
  while (program_bytes(segment) or 0) > memory_budget and size > mesh.size:
    size, init, segment = compile_for(max(mesh.size, -(-size // 2 // mesh.size) * mesh.size))
  chunks = tuple((s, min(size, num - s)) for s in range(0, num, size))
  host = lambda c, t: sharding.unpad_runs(sharding.gather(t), chunks[c][1])
  return Mode(
      chunks=chunks, init=lambda c: init(data, runs_of(*chunks[c], size)),
      segment=lambda carry: segment(data, carry), put=lambda c, h: put(h, size),
      carry_to_host=host, records_to_host=host, resident=len(chunks) == 1, passes=1,
      info={"chunks": len(chunks), "runs_per_chunk": size,
            "device_bytes": program_bytes(segment)})


# --- The vmapped segment: leaves shared by every run stay unbatched ------------


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
    state, _ = jax.lax.scan(lambda s, _: parts.step(s, data),
                            keys_from_data(carry, _like(parts, carry, data)), None, length=1)
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
  seed_init = _seed_init(parts)

  def seed_segment(carry, data):  # a scan of blocks, as in the single program
    state = keys_from_data(carry, _like(parts, carry, data))
    state, records = scan_blocks(parts, state, data, blocks)
    return keys_as_data(state), records

  def init(data, runs):
    return jax.vmap(lambda run: seed_init(run, data))(runs)

  def segment(data, carry):
    leaves, treedef = jax.tree.flatten(carry)
    flags = shared or [False] * len(leaves)
    inputs = jax.tree.unflatten(treedef, [leaf[0] if s else leaf
                                          for leaf, s in zip(leaves, flags)])
    in_axes = jax.tree.unflatten(treedef, [None if s else 0 for s in flags])
    # Shared leaves broadcast back on output.
    return jax.vmap(lambda c: seed_segment(c, data), in_axes=(in_axes,))(inputs)

  return init, segment


def host_carry_shape(parts: TrainParts, keys: jax.Array, hyperparams: Any = None) -> Any:
  """The carry of a run for ``keys`` ``[S]`` as ShapeDtypeStructs (PRNG keys
  as key data, a leading seed axis on every leaf): what a checkpoint holds and
  :class:`ngm_jax.driver.Segments`'s ``resume`` takes, in every mode."""
  init, _ = _segment_programs(parts, 1)
  runs = {"key_data": jax.random.key_data(keys),
          "hyperparams": jax.tree.map(np.asarray, dict(hyperparams or {}))}
  return jax.eval_shape(init, parts.data, runs)
