"""The stability-gap protocol run on a user's optimizers and network.

:func:`run_benchmark` trains each optimizer (a built-in name or any optax
transformation) on every seed with incremental joint training, evaluates
Task 1 at every iteration inside the compiled program, and returns a
:class:`ngm_jax.results.Result` of NumPy arrays (seed first) with the paper's
metrics. It writes nothing unless given ``out``; then it saves after every
optimizer, so that nothing finished is lost, checkpoints the training carry
while it trains (:mod:`ngm_jax.checkpoint`: at every task boundary, at most
every ``checkpoint_every_s`` seconds, on SIGINT/SIGTERM), continues a stopped
run with ``resume=True``, and writes the report
(:func:`ngm_jax.results.write_report`) at the end::

    result = ngm_jax.run_benchmark(stream, {"ngm": "ngm_sgd", "mine": my_tx}, num_seeds=5)
    result.curves["mine"]["task1_acc"]     # [5, iterations]
    result.metrics["mine"]["avg_sg"]["mean"]
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from tqdm import tqdm

from ngm_jax import benchmarks, results
from ngm_jax.checkpoint import RunCheckpoints, RunStopped, StopRequest, checkpoint_step
from ngm_jax.execution import (Segments, Stopped, host_carry_shape, resolve_execution,
                               train_seeds)
from ngm_jax.optimizers import Optimizer, as_optimizer, has_gain
from ngm_jax.placement import Placement, gain_mask, kernels
from ngm_jax.sharding import describe_mesh, run_mesh
from ngm_jax.memory import check_fits
from ngm_jax.compile_cache import enable as enable_compile_cache
from ngm_jax.sampling import Sampler
from ngm_jax.streams import TaskStream
from ngm_jax.train import (TrainConfig, curve_iterations, make_train_parts, seed_keys,
                           task1_eval_size, train_data)

__all__ = ["run_benchmark", "resolve_variants", "network"]

_SCHEDULE = ("iterations_per_task", "eval_every", "task_eval_every", "batch_size")


def _describe(optimizer: Any) -> str:
  if isinstance(optimizer, str):
    return optimizer
  if isinstance(optimizer, Optimizer) and optimizer.name:
    return optimizer.name
  return "user transformation"


def resolve_variants(
    optimizers: Sequence[Any] | Mapping[str, Any],
    config: TrainConfig,
    mask: Callable[[Any], Any],
) -> dict[str, tuple[Optimizer, TrainConfig, str]]:
  """``{label: (Optimizer, config, description)}``, every optimizer built now,
  so that a bad one fails before any training.

  Args:
    optimizers: built-in names (each its own label), or ``{label: value}``
      where a value is a name, an optax transformation, an
      :class:`ngm_jax.optimizers.Optimizer`, or ``(one of those, TrainConfig)``
      for a variant with its own hyperparameters.
    config: the run's config (the default of every variant).
    mask: ``params -> gain mask``, for built-ins that split the parameters.

  Raises:
    TypeError, ValueError: an optimizer that is neither, an unlabelled
      transformation, a variant whose schedule differs from ``config``'s.
  """
  if isinstance(optimizers, (str, bytes)) or not isinstance(optimizers, (Sequence, Mapping)):
    raise TypeError(f"optimizers={optimizers!r}: give a list of built-in names or a dict"
                    " {label: name or optax transformation}.")
  if not isinstance(optimizers, Mapping):
    unnamed = [o for o in optimizers if not isinstance(o, str)]
    if unnamed:
      raise TypeError(
          f"optimizers: {unnamed[0]!r} has no label; pass a dict, e.g."
          " optimizers={'mine': tx, 'ngm_sgd': 'ngm_sgd'}, to name your transformations.")
    optimizers = {name: name for name in optimizers}
  if not optimizers:
    raise ValueError("optimizers is empty; give at least one.")
  variants = {}
  for label, value in optimizers.items():
    if not isinstance(label, str) or not label or "/" in label:
      raise ValueError(f"optimizer label {label!r}: must be a non-empty string without '/'.")
    variant_config = config
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], TrainConfig):
      value, variant_config = value
    for field in _SCHEDULE:
      if getattr(variant_config, field) != getattr(config, field):
        raise ValueError(
            f"Variant {label!r}: {field}={getattr(variant_config, field)} differs from the"
            f" run's {getattr(config, field)}; curves must share one schedule.")
    try:
      spec = as_optimizer(value, variant_config, mask)
    except TypeError as e:
      raise TypeError(f"optimizers[{label!r}]: {e}") from None
    variants[label] = (spec, variant_config, _describe(value))
  return variants


def network(stream: TaskStream, model: Any = None, where: Placement | None = None,
            preprocess: Callable[[jax.Array], jax.Array] | None = None,
            augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None
            ) -> tuple[dict[str, Any], bool]:
  """The network keyword arguments of :func:`ngm_jax.train.make_train_parts`
  (``model``, ``where``, ``preprocess``, ``augment``), the registered
  benchmark's where the caller gave none, and whether the network is the
  benchmark's convolutional one (which decides the CPU loop).

  A user's model gets the default placement (every kernel) unless ``where``
  is given, and the benchmark's preprocessing unless ``preprocess`` is.

  Raises:
    ValueError: a stream that is not a registered benchmark, without
      ``model`` and ``preprocess``.
  """
  record = benchmarks.BENCHMARKS.get(stream.name)
  if record is None:
    if model is None or preprocess is None:
      raise ValueError(
          f"stream {stream.name!r} is not a registered benchmark"
          f" ({', '.join(benchmarks.BENCHMARKS)}), so it has no default network: pass"
          " model= (a flax.linen.Module or an rngs -> nnx.Module constructor) and"
          " preprocess= (uint8 images -> float inputs).")
    return {"model": model, "where": where or kernels, "preprocess": preprocess,
            "augment": augment}, False
  own = model is None
  return {"model": record.model(stream.num_classes) if own else model,
          "where": where or (record.where if own else kernels),
          "preprocess": preprocess or record.preprocess,
          "augment": augment}, own and record.convolutional


def run_benchmark(
    stream: TaskStream,
    optimizers: Sequence[Any] | Mapping[str, Any],
    config: TrainConfig | None = None,
    *,
    num_seeds: int = 5,
    model: Any = None,
    where: Placement | None = None,
    preprocess: Callable[[jax.Array], jax.Array] | None = None,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    sampler: Sampler | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    loop: str = "auto",
    seed_axis: str = "auto",
    show_progress: bool = True,
    seed_hyperparams: Mapping[str, Mapping[str, Any]] | None = None,
    extra_meta: Mapping[str, Any] | None = None,
    devices: int | None = None,
    resume: bool = False,
    checkpoint_every_s: float | None = 60.0,
    seeds: Sequence[int] | None = None,
    compile_cache: bool = True,
) -> results.Result:
  """Trains every optimizer on seeds ``0..num_seeds-1``; returns the arrays.

  Args:
    stream: the task stream (:func:`ngm_jax.benchmarks.load_benchmark`, or
      one of your own).
    optimizers: built-in names, or ``{label: optimizer}`` where an optimizer
      is a built-in name, any ``optax.GradientTransformation`` (with or
      without :func:`ngm_jax.gain_modulation` anywhere inside: chains,
      ``optax.partition``, ``inject_hyperparams``), an
      :class:`ngm_jax.optimizers.Optimizer` (a transformation with training
      flags), or ``(optimizer, TrainConfig)`` for a variant with its own
      hyperparameters. ``entropy=H`` reaches every transformation that takes
      extra arguments; the gain is found with :func:`ngm_jax.gain_of`, and a
      transformation without one is recorded with gain 1
      (``result.meta["variants"][label]["has_gain"]`` says which).
    config: training and evaluation schedule (default: the registered
      benchmark's :attr:`ngm_jax.benchmarks.Benchmark.config`).
    num_seeds: seeds ``0..num_seeds-1``; seed ``s`` uses ``jax.random.key(s)``.
    model: a ``flax.linen.Module``, or a callable ``rngs -> flax.nnx.Module``,
      mapping preprocessed images ``[B, ...]`` to logits ``[B, classes]``
      (default: the benchmark's network, :mod:`ngm_jax.model_fns`).
    where: the gain placement, a predicate on parameter paths (default: the
      benchmark's for its own network, every Dense/Conv kernel,
      :func:`ngm_jax.placement.kernels`, for yours).
    preprocess: uint8 images → model inputs (default: the benchmark's; MNIST:
      standardised and flattened to ``[B, 784]``).
    augment: ``(key, images) -> images`` on every training minibatch.
    sampler: which rows each step trains on (default incremental joint
      training; e.g. a replay buffer, :mod:`ngm_jax.replay`).
    out: None (nothing is written) or a folder: ``run.json`` is written at
      the start, the curves after every optimizer, the report at the end
      (:func:`ngm_jax.results.save_result`, :func:`~ngm_jax.results.write_report`);
      the training carry is checkpointed in ``out/checkpoints/`` while it
      trains (removed when the run has finished). While a run with ``out``
      trains, SIGINT and SIGTERM stop it after the current segment (a few
      seconds), with a checkpoint: :class:`ngm_jax.checkpoint.RunStopped` is
      raised; the previous signal handlers are restored on return.
    overwrite: with ``out``, replace a run already there: the new run is
      written into ``<out>.partial`` and takes ``out``'s place only when it
      has finished, so a stopped run leaves the old one intact.
    resume: with ``out``, continue the run saved there (or in
      ``<out>.partial``, an unfinished overwrite) with the same arguments:
      finished variants are read from its ``curves.npz`` and never trained
      again, the variant it stopped in continues from its latest checkpoint;
      the curves are bit for bit those of an uninterrupted run. Nothing
      saved there: a new run starts.
    checkpoint_every_s: with ``out``, checkpoint at every task boundary, after
      every variant, on a stop, and at most this many seconds of training
      apart; None or 0: no checkpoints (a stopped variant then restarts).
      Every way of running (``loop``, ``seed_axis``) checkpoints and resumes
      mid-variant; a checkpoint holds every seed's carry whatever the mode,
      so a run resumed on another number of devices continues from it.
    compile_cache: use the persistent compilation cache
      (:func:`ngm_jax.compile_cache.enable`: ``$NGM_JAX_COMPILE_CACHE``, else
      ``~/.cache/ngm-jax/jax``; ``NGM_JAX_COMPILE_CACHE=off`` turns it off),
      so that a program compiled once on this machine is loaded, not
      compiled, by later processes. It takes effect if it is on before the
      process's first compile.
    seeds: the seeds to run instead of ``0..num_seeds-1`` (a seed may repeat,
      e.g. the same seeds for every configuration of a search); ``num_seeds``
      is then ``len(seeds)``.
    loop, seed_axis: how to run (:func:`ngm_jax.execution.train_seeds`), or
      ``"auto"`` (:func:`ngm_jax.execution.default_execution`).
    show_progress: a progress bar per optimizer.
    seed_hyperparams: ``{label: {name: [num_seeds, ...]}}``, per-seed values
      set by name in that variant's initial optimizer state.
    extra_meta: recorded in ``result.meta`` (and ``run.json``).
    devices: how many devices the seeds are split over (default: every
      device of every process). With more than one, each variant's seeds run
      as one scanned, vmapped program sharded over a ``("runs",)`` mesh
      (:mod:`ngm_jax.sharding`), or, with ``seed_axis="shard"`` (``"auto"``'s
      choice for the convolutional networks), one seed per device in
      rounds of ``devices`` seeds; with several processes
      (``jax.distributed.initialize``), process 0 alone writes ``out``.

  Returns:
    A :class:`ngm_jax.results.Result`: ``result.curves[label][curve]`` NumPy
    ``[num_seeds, ...]`` (``task1_acc``, ``task1_loss``, ``gain``,
    ``entropy``, ``train_loss``: one value per evaluation or iteration;
    ``task_acc``, ``task_loss``: ``[num_seeds, points, tasks]``),
    ``result.iterations``, ``result.metrics``, ``result.config``,
    ``result.meta``.

  Raises:
    TypeError, ValueError: bad arguments, before anything is trained; with
      ``resume``, a run in ``out`` made with other arguments.
    ngm_jax.streams.DatasetTooLargeError: the data would not fit the device.
    ngm_jax.checkpoint.RunStopped: SIGINT/SIGTERM stopped the run (with
      ``out``); what was done is saved and ``resume=True`` continues it.
  """
  if compile_cache:
    enable_compile_cache()
  if seeds is not None:
    seeds = list(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, (int, np.integer))
           or s < 0]
    if not seeds or bad:
      raise ValueError(f"seeds={seeds!r}: must be a non-empty list of integers >= 0.")
    num_seeds = len(seeds)
  if isinstance(num_seeds, bool) or not isinstance(num_seeds, (int, np.integer)) or num_seeds < 1:
    raise ValueError(f"num_seeds={num_seeds!r}: must be an integer >= 1.")
  if config is None:
    if stream.name not in benchmarks.BENCHMARKS:
      raise ValueError(f"stream {stream.name!r} is not a registered benchmark; pass config=.")
    config = benchmarks.get(stream.name).config
  if not isinstance(config, TrainConfig):
    raise TypeError(f"config={config!r}: expected an ngm_jax.TrainConfig.")
  net, convolutional = network(stream, model, where, preprocess, augment)
  mask = lambda params: gain_mask(params, net["where"])
  variants = resolve_variants(optimizers, config, mask)
  seed_hyperparams = dict(seed_hyperparams or {})
  unknown = sorted(set(seed_hyperparams) - set(variants))
  if unknown:
    raise ValueError(f"seed_hyperparams for {', '.join(unknown)}: not among the variants"
                     f" ({', '.join(variants)}).")
  mesh = run_mesh(devices)
  loop, seed_axis = resolve_execution(loop, seed_axis, convolutional, devices=mesh.size)
  writer = jax.process_index() == 0
  if checkpoint_every_s is not None and (isinstance(checkpoint_every_s, bool)
                                         or not np.isfinite(checkpoint_every_s)
                                         or checkpoint_every_s < 0):
    raise ValueError(f"checkpoint_every_s={checkpoint_every_s!r}: must be a number of seconds"
                     " >= 0 (0 or None: no checkpoints).")
  if resume and overwrite:
    raise ValueError("resume=True and overwrite=True: choose one (resume continues the run"
                     " in out, overwrite replaces it).")
  work = None
  if out is not None:
    out = Path(out)
    work = (results.prepare_out(out, overwrite, resume) if writer
            else results.work_folder(out, overwrite, resume))
  check_fits(stream)

  data = train_data(stream)
  num_seeds = int(num_seeds)
  seeds = [int(s) for s in seeds] if seeds is not None else list(range(num_seeds))
  keys = seed_keys(seeds)
  total = stream.num_tasks * config.iterations_per_task
  parts = {label: make_train_parts(
      stream, spec, variant_config, **net, sampler=sampler, data=data,
      unroll=(loop == "chunked"))
           for label, (spec, variant_config, _) in variants.items()}
  first = next(iter(parts.values()))
  params_shape = jax.eval_shape(lambda k: first.init(k, data).params, keys[0])
  device = jax.devices()[0]
  meta = {
      "benchmark": stream.name,
      "kind": (benchmarks.get(stream.name).kind if stream.name in benchmarks.BENCHMARKS
               else None),
      "num_tasks": stream.num_tasks,
      "task_names": list(stream.task_names),
      "train": dataclasses.asdict(config),
      "optimizers": list(variants),
      "variants": {
          label: {"optimizer": description,
                  "train": dataclasses.asdict(variant_config),
                  "has_gain": has_gain(spec.tx, params_shape),
                  "reset_at_task_boundaries": spec.reset_at_task_boundaries,
                  "reparameterise": spec.reparameterise}
          for label, (spec, variant_config, description) in variants.items()},
      "seeds": seeds,
      "seed_hyperparams": {label: {name: list(np.shape(v)) for name, v in hp.items()}
                           for label, hp in seed_hyperparams.items()},
      "task1_eval_size": task1_eval_size(stream, config),
      "task1_test_size": int(stream.test_task_ends[0]),
      "test_sizes": stream.task_sizes("test").tolist(),
      "train_size": int(stream.train_task_ends[-1]),
      "num_classes": stream.num_classes,
      "model": first.model.name,
      "model_kind": first.model.kind,
      "gain_placement": getattr(net["where"], "__name__", repr(net["where"])),
      "augment": net["augment"] is not None,
      "loop": loop,
      "seed_axis": seed_axis,
      "device": f"{device.platform}: {device.device_kind}",
      "mesh": describe_mesh(mesh),
      "jax_version": jax.__version__,
      "python": platform.python_version(),
      "command": results.command_line(),
      **(extra_meta or {}),
      "timings": {},
  }
  iterations = curve_iterations(config, stream.num_tasks)
  blocks_per_task = config.iterations_per_task // config.task_eval_every
  total_blocks = stream.num_tasks * blocks_per_task
  curves: dict[str, dict[str, np.ndarray]] = {}
  checkpoints = pending = None
  if work is not None:
    previous = _previous_run(work, meta) if resume else None
    if previous is not None:
      curves, pending, meta = previous
    if (checkpoint_every_s or resume) and any(label not in curves for label in variants):
      checkpoints = RunCheckpoints(work)
      if previous is not None and pending is None:
        pending = _pending_checkpoint(checkpoints, list(variants), curves)
    if resume and writer:
      _print_resume(out, work, previous, pending, list(variants), total)
    if writer:
      results.write_json(work / "run.json", meta)
  wall_start = time.perf_counter()
  with StopRequest(announce=writer) if work is not None else _NoStop() as stop:
    for n, (label, part) in enumerate(parts.items(), 1):
      if label in curves:
        continue
      if _agreed_signal(stop) is not None:
        raise RunStopped(_agreed_signal(stop), work)
      # Seeds one after another (sequential), or in rounds of one per device (shard).
      passes = {"sequential": num_seeds, "shard": -(-num_seeds // mesh.size)}.get(seed_axis, 1)
      start_state, before = None, {}
      if pending is not None and pending[1]["variant"] == label:
        step, before = pending
        carry, records = checkpoints.restore(
            step, host_carry_shape(part, keys, seed_hyperparams.get(label)))
        start_state = (carry, records, before["blocks_done"])
      saver = _Saver(label, n, total_blocks, blocks_per_task, total, num_seeds, stop,
                     checkpoints if checkpoint_every_s else None, checkpoint_every_s, before,
                     {"loop": loop, "seed_axis": seed_axis, "devices": int(mesh.size)})
      done_before = before.get("iterations_done", 0)
      bar = tqdm(total=total * passes, unit="it", initial=done_before * passes,
                 desc=f"[{n}/{len(parts)}] {label} x{num_seeds} seeds",
                 disable=not (show_progress and writer))
      try:
        curves[label], timing = train_seeds(
            part, keys, loop=loop, seed_axis=seed_axis,
            progress=lambda done: bar.update(max(0, done - bar.n)),
            hyperparams=seed_hyperparams.get(label), mesh=mesh,
            segments=Segments(blocks_per_task=blocks_per_task, resume=start_state,
                              on_segment=saver))
      except Stopped as e:
        bar.close()
        at = saver.saved_iterations if saver.saved_at_stop else e.iterations_done
        raise RunStopped(_agreed_signal(stop), work, label, at, total,
                         checkpointed=saver.saved_at_stop) from None
      bar.close()
      run_s = timing["run_s"] + before.get("run_s", 0.0)  # the sessions' training together
      meta["timings"][label] = {"compile_s": round(timing["compile_s"], 2),
                                "run_s": round(run_s, 2),
                                "iterations_per_s": round(total / run_s, 2),
                                **{k: timing[k] for k in ("chunks", "runs_per_chunk", "rounds",
                                                          "device_bytes") if k in timing}}
      if before:
        meta["timings"][label]["resumed_at_iteration"] = before["iterations_done"]
      if work is not None and writer:
        results.save_result(results.Result(curves, iterations, meta), work)
        results.append_log(work, {"optimizer": label, **meta["timings"][label]})
      if show_progress and writer:
        t = meta["timings"][label]
        print(f"  {label}: compile {t['compile_s']} s, run {t['run_s']} s"
              f" ({num_seeds} seeds x {total} iterations)", flush=True)
  meta["wall_s"] = round(time.perf_counter() - wall_start, 1)
  curves = {label: curves[label] for label in variants}
  result = results.Result(curves, iterations, meta)
  if work is not None:
    if writer:
      results.save_result(result, work)
      results.write_report(result, work)
    if checkpoints is not None:
      checkpoints.remove()
    if writer:
      results.finish_out(work, out)
  return result


#: What must agree between a run and the command that resumes it (run.json).
_SAME_RUN = ("benchmark", "kind", "num_tasks", "task_names", "train", "optimizers", "variants",
             "seeds", "seed_hyperparams", "task1_eval_size", "task1_test_size", "test_sizes",
             "train_size", "num_classes", "model", "model_kind", "gain_placement", "augment",
             "loop", "seed_axis", "benchmark_options", "test_subset_per_task",
             "test_subset_seed", "test_sizes_full")


def _previous_run(work: Path, meta: dict[str, Any]):
  """``(finished curves, pending checkpoint or None, meta)`` of the run saved in
  ``work``, or None if nothing is saved there.

  Raises:
    ValueError: the saved run was made with other arguments (named), or its
      files are damaged.
  """
  if not (work / "run.json").exists():
    return None
  old = results.read_json_record(work / "run.json")
  as_json = lambda value: json.loads(json.dumps(value))  # tuples -> lists, as run.json has them
  differ = [k for k in _SAME_RUN if as_json(old.get(k)) != as_json(meta.get(k))]
  if differ:
    details = "; ".join(f"{k}: saved {old.get(k)!r}, now {meta.get(k)!r}" for k in differ[:3])
    raise ValueError(f"resume: the run in {work} was made with other arguments ({details}"
                     f"{'; ...' if len(differ) > 3 else ''}). Resume it with the command it was"
                     " started with, or start a new run (another out, or overwrite).")
  finished = {}
  if (work / "curves.npz").exists():
    saved, _ = results.load_curves(work / "curves.npz")
    finished = {label: saved[label] for label in meta["optimizers"] if label in saved}
  meta = {**meta, "command": old.get("command", meta["command"]),
          "resumed": list(old.get("resumed", [])) + [results.command_line()],
          "timings": {label: t for label, t in old.get("timings", {}).items()
                      if label in finished}}
  return finished, None, meta


def _pending_checkpoint(checkpoints: RunCheckpoints, labels: list[str],
                        finished: dict[str, Any]):
  """``(step, meta)`` of the latest checkpoint if it is of a variant not
  finished, else None."""
  latest = checkpoints.latest()
  if latest is None:
    return None
  step, ckpt = latest
  if ckpt.get("variant") not in labels or ckpt["variant"] in finished:
    return None
  return step, ckpt


def _print_resume(out: Path, work: Path, previous, pending, labels: list[str],
                  total: int) -> None:
  if previous is None:
    print(f"Resume: nothing saved in {work}; starting a new run.", flush=True)
    return
  finished = [label for label in labels if label in previous[0]]
  parts = []
  if finished:
    parts.append(f"finished {', '.join(finished)} (curves.npz, not trained again)")
  if pending is not None:
    step, ckpt = pending
    parts.append(f"{ckpt['variant']} from iteration {ckpt['iterations_done']} of {total}"
                 f" (checkpoint {work / 'checkpoints' / str(step)})")
  rest = [label for label in labels
          if label not in finished and (pending is None or label != pending[1]["variant"])]
  if rest:
    parts.append(f"{', '.join(rest)} from the start")
  where = f"{work} (an unfinished --overwrite of {out})" if work != out else f"{work}"
  print(f"Resuming {where}: " + "; ".join(parts) + ".", flush=True)


class _NoStop:
  """No signal handling (a run without ``out``: there is nothing to save)."""
  signum = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return None


def _agreed_signal(stop) -> int | None:
  """The stop signal, the same on every process (one process's signal stops all)."""
  if jax.process_count() == 1:
    return stop.signum
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  mine = np.int32(stop.signum or 0)
  agreed = int(np.max(multihost_utils.process_allgather(mine)))
  return agreed or None


class _Saver:
  """``Segments.on_segment`` of a variant: checkpoints at task boundaries, at
  the end, on a stop, and when ``every_s`` seconds have passed since the last
  one; returns whether to stop."""

  def __init__(self, label, index, total_blocks, blocks_per_task, total, num_seeds, stop,
               checkpoints, every_s, before, execution=None):
    self.label, self.index = label, index
    self.total_blocks, self.blocks_per_task, self.total = total_blocks, blocks_per_task, total
    self.num_seeds, self.stop, self.checkpoints = num_seeds, stop, checkpoints
    self.every_s, self.before = every_s, before
    self.execution = dict(execution or {})  # recorded in each checkpoint's meta
    self.last = time.perf_counter()
    self.saved_iterations = 0
    self.saved_at_stop = False

  def __call__(self, done) -> bool:
    signum = _agreed_signal(self.stop)
    now = time.perf_counter()
    boundary = done.blocks_done % self.blocks_per_task == 0  # the last one: the variant's end
    due = signum is not None or boundary or (self.every_s and now - self.last >= self.every_s)
    if self.checkpoints is not None and done.state is not None and due:
      carry, records, blocks = done.state()
      per_block = self.total // self.total_blocks
      self.checkpoints.save(
          checkpoint_step(self.index, blocks, self.total_blocks), carry, records,
          {"variant": self.label, "variant_index": self.index, "blocks_done": blocks,
           "total_blocks": self.total_blocks, "iterations_done": blocks * per_block,
           "total_iterations": self.total, "num_seeds": self.num_seeds,
           "finished": blocks == self.total_blocks,
           "run_s": self.before.get("run_s", 0.0) + done.run_s,
           "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"), **self.execution})
      self.last = time.perf_counter()
      self.saved_iterations = blocks * per_block
      self.saved_at_stop = signum is not None
    return signum is not None
