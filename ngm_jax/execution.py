"""How a run executes: the loop (one scan, or compiled chunks) and the seed axis.

:func:`train_seeds` runs the pieces of :func:`ngm_jax.train.make_train_parts`
for every seed key, as scanned segments or as compiled eval intervals driven
from Python, with the seeds vmapped, mapped inside the program, one after
another, or one per device; :func:`default_execution` is what ``"auto"``
picks, from the measurements in docs/results.md. Each of these modes compiles
one segment (:mod:`ngm_jax.modes`); one loop runs every mode's segments and
owns progress, stop, checkpoint state and resume (:mod:`ngm_jax.driver`). The
data are an argument of every compiled function (``parts.data``), never a
constant inside it.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import jax
import numpy as np

from ngm_jax.driver import SegmentDone, Segments, Stopped, check_segments, drive
from ngm_jax.modes import (_batched_outputs, _shared_leaves, build_mode,  # noqa: F401
                           host_carry_shape, program_bytes)
from ngm_jax.train import TrainParts

__all__ = ["LOOPS", "SEED_AXES", "default_execution", "resolve_execution", "train_seeds",
           "Segments", "SegmentDone", "Stopped", "host_carry_shape", "program_bytes"]


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
    segments: Segments | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """Runs every seed of ``keys`` ``[S]``; returns curves ``[S, ...]`` and timings.

  Every mode (:mod:`ngm_jax.modes`) runs in segments (:class:`Segments`, one
  per-task-eval block each by default) between which :mod:`ngm_jax.driver`
  reports progress and may checkpoint, stop and resume; the curves are bit
  for bit those of the mode's single program.

  Args:
    parts: from :func:`make_train_parts` (with ``unroll=True`` for
      ``loop="chunked"`` on CPU convolutions).
    keys: one PRNG key per seed.
    loop: ``"scan"``: a segment is one compiled program (a loop over its
      blocks). ``"chunked"``: one compiled eval interval (``eval_every`` steps
      and the Task-1 evaluation) called from Python; data stay on the device.
    seed_axis: ``"vmap"``: seeds batched into every operation; ``"map"``:
      one after another inside the program (``lax.map``); ``"sequential"``:
      one seed's program called for each seed in turn (no seed axis in the
      compiled code); ``"shard"``: one seed's program per device
      (``jax.shard_map``), in rounds of ``mesh.size`` seeds.
    progress: host callback with the iterations done (an int) after every
      segment; with ``"sequential"`` it counts every seed's (up to ``S·T``),
      with ``"shard"`` every round's (up to ``ceil(S / devices)·T``).
    hyperparams: ``{name: [S, ...]}``, per-seed values set by name in each
      seed's initial optimizer state, e.g. the gain schedule each seed of
      :func:`ngm_jax.gain.replayed_gain_sgd` replays.
    mesh: a ``("runs",)`` device mesh (:func:`ngm_jax.sharding.run_mesh`).
      With ``loop="scan", seed_axis="vmap"`` (default: the first device) the
      seeds are split over its devices (padded to a multiple of the device
      count, padding dropped), the data replicated; if the segment for every
      seed would need more than ``memory_budget`` bytes per device (default
      80 % of its memory, from XLA's memory analysis), the seeds run in
      chunks, halved until they fit. With ``"shard"``: the devices the seeds
      are spread over (default: every device). Other modes use one device.
    segments: how the run is cut, stopped and resumed (:class:`Segments`).

  Raises:
    Stopped: ``segments.on_segment`` asked to stop.
    ValueError: an unknown mode, a mode that cannot run on ``mesh``, bad
      ``hyperparams``, ``segments`` or ``segments.resume``.

  Returns:
    ``(curves, timings)``: the curves of :func:`make_train` with a leading
    seed axis, NumPy (``diverged_at`` ``[S]``: each seed's first iteration
    with a non-finite training loss or gain, -1 for none);
    ``{"compile_s", "run_s", "segments"}`` (seconds compiling ahead of time,
    then running; segments called), with ``"chunks"``, ``"runs_per_chunk"``,
    ``"device_bytes"`` (scanned, vmapped) or ``"rounds"``, ``"device_bytes"``
    (shard).
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
  sharded = seed_axis == "shard" or (loop, seed_axis) == ("scan", "vmap")
  if not sharded and mesh is not None and (mesh.size > 1 or jax.process_count() > 1):
    raise ValueError(f"loop={loop!r}, seed_axis={seed_axis!r} on a mesh of {mesh.size}"
                     " devices: only loop='scan', seed_axis='vmap' and seed_axis='shard'"
                     " run sharded.")
  segments = segments or Segments()
  total = parts.num_intervals // parts.intervals_per_task_eval
  check_segments(segments, total, num_seeds)
  runs = {"key_data": np.asarray(jax.random.key_data(keys)),
          "hyperparams": jax.tree.map(np.asarray, dict(hyperparams or {}))}
  t0 = time.perf_counter()
  mode = build_mode(parts, runs, loop, seed_axis, mesh if sharded else None, segments.blocks,
                    memory_budget)
  compile_s = time.perf_counter() - t0
  curves, timing = drive(mode, segments, total, progress)
  return curves, {"compile_s": compile_s, **timing, **mode.info}

