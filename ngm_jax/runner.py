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

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import numpy as np
from tqdm import tqdm

from ngm_jax import benchmarks, folder_lock, logs, results
from ngm_jax.checkpoint import RunCheckpoints, RunStopped, StopRequest
from ngm_jax.execution import (Segments, Stopped, host_carry_shape, resolve_execution,
                               train_seeds)
from ngm_jax.optimizers import has_gain
from ngm_jax.placement import Placement, gain_mask
from ngm_jax.resume import describe as describe_resume, plan as resume_plan
from ngm_jax.run_record import protocol_record, run_record, variant_record
from ngm_jax.segment_actions import PeerLost, SegmentActions, agree, peer_lost
from ngm_jax.sharding import run_mesh
from ngm_jax.memory import check_fits
from ngm_jax.compile_cache import enable as enable_compile_cache
from ngm_jax.sampling import Sampler
from ngm_jax.streams import TaskStream
from ngm_jax.train import (TrainConfig, curve_iterations, make_train_parts, seed_keys,
                           train_data)
from ngm_jax.variants import network, resolve_variants

__all__ = ["run_benchmark", "resolve_variants", "network"]


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
    log: Sequence[Any] = ("csv",),
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
    log: live metrics after every segment (:mod:`ngm_jax.logs`): ``"tensorboard"``,
      ``"wandb"``, your own :class:`ngm_jax.logs.MetricWriter` s; ``out/metrics.csv``
      (``"csv"``) whenever ``out`` is given. A resumed run continues them.
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
  seeds = _seed_list(seeds, num_seeds)
  config = _config_of(stream, config)
  _check_options(checkpoint_every_s, resume, overwrite)
  sinks = logs.parse_log(log, out)
  net, convolutional = network(stream, model, where, preprocess, augment)
  variants = resolve_variants(optimizers, config, lambda p: gain_mask(p, net["where"]))
  seed_hyperparams = _seed_hyperparams_of(seed_hyperparams, variants)
  mesh = run_mesh(devices)
  loop, seed_axis = resolve_execution(loop, seed_axis, convolutional, devices=mesh.size)
  writer = jax.process_index() == 0
  out = Path(out) if out is not None else None
  work = _work_folder(out, overwrite, resume, writer)
  with _released_on_error(out if writer else None):
    check_fits(stream)

    data = train_data(stream)
    keys = seed_keys(seeds)
    parts = {label: make_train_parts(stream, spec, variant_config, **net, sampler=sampler,
                                     data=data, unroll=(loop == "chunked"))
             for label, (spec, variant_config, _) in variants.items()}
    record = _record(stream, config, variants, parts, net, data, keys, seeds, seed_hyperparams,
                     {"loop": loop, "seed_axis": seed_axis}, mesh, extra_meta)
    start = resume_plan(work, record, resume=resume, checkpoint=bool(checkpoint_every_s))
    if resume and writer:
      print(describe_resume(start, out, work, stream.num_tasks * config.iterations_per_task),
            flush=True)
    meta, curves = start.meta, dict(start.curves)
    iterations = curve_iterations(config, stream.num_tasks)
    if work is not None and writer:
      results.write_json(work / "run.json", meta)
    run_log = logs.open_run_log(sinks, work, writer=writer, resume=start.previous, meta=meta,
                                iterations=iterations)
    run = _Run(stream, config, keys, mesh, loop, seed_axis, work, writer, show_progress,
               start.checkpoints if checkpoint_every_s else None, checkpoint_every_s, run_log)
    wall_start = time.perf_counter()
    with StopRequest(announce=writer) if work is not None else contextlib.nullcontext(
        _NO_STOP) as stop, run_log:
      for n, (label, part) in enumerate(parts.items(), 1):
        if label in curves:
          continue
        signum = agree(stop.signum, False, work).signum  # one collective, every process
        if signum is not None:
          raise RunStopped(signum, work)
        pending = start.pending if start.pending and start.pending[1]["variant"] == label else None
        curves[label], meta["timings"][label] = _train_variant(
            run, label, n, len(parts), part, seed_hyperparams.get(label), stop, pending,
            start.checkpoints)
        if work is not None and writer:
          results.save_result(results.Result(curves, iterations, meta), work)
          results.append_log(work, {"optimizer": label, **meta["timings"][label]})
    meta["wall_s"] = round(time.perf_counter() - wall_start, 1)
    result = results.Result({label: curves[label] for label in variants}, iterations, meta)
    _finish(result, out, work, writer, start.checkpoints)
    return result


# The steps of run_benchmark, in the order it takes them.

def _seed_list(seeds: Sequence[int] | None, num_seeds: int) -> list[int]:
  """The seeds to run: ``seeds`` as given, else ``0..num_seeds-1`` (checked)."""
  if seeds is not None:
    seeds = list(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, (int, np.integer))
           or s < 0]
    if not seeds or bad:
      raise ValueError(f"seeds={seeds!r}: must be a non-empty list of integers >= 0.")
    return [int(s) for s in seeds]
  if isinstance(num_seeds, bool) or not isinstance(num_seeds, (int, np.integer)) or num_seeds < 1:
    raise ValueError(f"num_seeds={num_seeds!r}: must be an integer >= 1.")
  return list(range(int(num_seeds)))


def _config_of(stream: TaskStream, config: TrainConfig | None) -> TrainConfig:
  """``config``, or the registered benchmark's."""
  if config is None:
    if stream.name not in benchmarks.BENCHMARKS:
      raise ValueError(f"stream {stream.name!r} is not a registered benchmark; pass config=.")
    config = benchmarks.get(stream.name).config
  if not isinstance(config, TrainConfig):
    raise TypeError(f"config={config!r}: expected an ngm_jax.TrainConfig.")
  return config


def _check_options(checkpoint_every_s: float | None, resume: bool, overwrite: bool) -> None:
  if checkpoint_every_s is not None and (isinstance(checkpoint_every_s, bool)
                                         or not np.isfinite(checkpoint_every_s)
                                         or checkpoint_every_s < 0):
    raise ValueError(f"checkpoint_every_s={checkpoint_every_s!r}: must be a number of seconds"
                     " >= 0 (0 or None: no checkpoints).")
  if resume and overwrite:
    raise ValueError("resume=True and overwrite=True: choose one (resume continues the run"
                     " in out, overwrite replaces it).")


def _seed_hyperparams_of(seed_hyperparams: Mapping[str, Any] | None,
                         variants: Mapping[str, Any]) -> dict[str, Any]:
  seed_hyperparams = dict(seed_hyperparams or {})
  unknown = sorted(set(seed_hyperparams) - set(variants))
  if unknown:
    raise ValueError(f"seed_hyperparams for {', '.join(unknown)}: not among the variants"
                     f" ({', '.join(variants)}).")
  return seed_hyperparams


def _work_folder(out: Path | None, overwrite: bool, resume: bool, writer: bool) -> Path | None:
  """The folder the run writes (``out``, or ``<out>.partial`` for an
  overwrite); process 0 prepares it, the others only name it."""
  if out is None:
    return None
  return (results.prepare_out(out, overwrite, resume) if writer
          else results.work_folder(out, overwrite, resume))


def _record(stream, config, variants, parts, net, data, keys, seeds, seed_hyperparams,
            execution, mesh, extra_meta) -> dict[str, Any]:
  """This run's ``run.json`` record (:mod:`ngm_jax.run_record`)."""
  first = next(iter(parts.values()))
  params_shape = jax.eval_shape(lambda k: first.init(k, data).params, keys[0])
  registered = stream.name in benchmarks.BENCHMARKS
  protocol = protocol_record(
      stream, config, seeds=seeds, model=first.model.name, augment=net["augment"] is not None,
      kind=benchmarks.get(stream.name).kind if registered else None,
      model_kind=first.model.kind,
      gain_placement=getattr(net["where"], "__name__", repr(net["where"])))
  protocol.setdefault("kind", None)  # recorded as null for a user's stream
  protocol["seed_hyperparams"] = {label: {name: list(np.shape(v)) for name, v in hp.items()}
                                  for label, hp in seed_hyperparams.items()}
  entries = {label: variant_record(description, variant_config,
                                   has_gain=has_gain(spec.tx, params_shape),
                                   reset_at_task_boundaries=spec.reset_at_task_boundaries,
                                   reparameterise=spec.reparameterise)
             for label, (spec, variant_config, description) in variants.items()}
  return run_record(protocol, entries, execution=execution, mesh=mesh, extra=extra_meta)


class _Run(NamedTuple):
  """What every variant of a run shares."""
  stream: TaskStream
  config: TrainConfig
  keys: Any
  mesh: Any
  loop: str
  seed_axis: str
  work: Path | None
  writer: bool
  show_progress: bool
  checkpoints: RunCheckpoints | None
  checkpoint_every_s: float | None
  log: logs.RunLog

  @property
  def total(self) -> int:
    return self.stream.num_tasks * self.config.iterations_per_task

  @property
  def blocks_per_task(self) -> int:
    return self.config.iterations_per_task // self.config.task_eval_every


def _train_variant(run: _Run, label: str, n: int, count: int, part: Any, hyperparams: Any,
                   stop: Any, pending: tuple[int, dict] | None,
                   checkpoints: RunCheckpoints | None) -> tuple[dict, dict]:
  """One variant, every seed, from the start or its checkpoint: its curves
  and its ``timings`` entry.

  Raises:
    RunStopped: a signal stopped it (after a checkpoint when there is one).
  """
  num_seeds, total = len(run.keys), run.total
  total_blocks = run.stream.num_tasks * run.blocks_per_task
  start_state, before = None, {}
  if pending is not None:
    step, before = pending
    carry, records = checkpoints.restore(step, host_carry_shape(part, run.keys, hyperparams))
    start_state = (carry, records, before["blocks_done"])
  actions = SegmentActions(
      label, n, total_blocks=total_blocks, blocks_per_task=run.blocks_per_task, total=total,
      num_seeds=num_seeds, stop=stop, checkpoints=run.checkpoints,
      every_s=run.checkpoint_every_s, before=before, folder=run.work,
      execution={"loop": run.loop, "seed_axis": run.seed_axis, "devices": int(run.mesh.size)},
      log=run.log.begin(label, start_state))
  # Seeds one after another (sequential), or in rounds of one per device (shard).
  passes = {"sequential": num_seeds, "shard": -(-num_seeds // run.mesh.size)}.get(
      run.seed_axis, 1)
  bar = tqdm(total=total * passes, unit="it", initial=before.get("iterations_done", 0) * passes,
             desc=f"[{n}/{count}] {label} x{num_seeds} seeds",
             disable=not (run.show_progress and run.writer))
  try:
    curves, timing = train_seeds(
        part, run.keys, loop=run.loop, seed_axis=run.seed_axis,
        progress=lambda done: bar.update(max(0, done - bar.n)), hyperparams=hyperparams,
        mesh=run.mesh, segments=Segments(blocks_per_task=run.blocks_per_task,
                                         resume=start_state, on_segment=actions))
  except Stopped as e:
    at = actions.saved_iterations if actions.saved_at_stop else e.iterations_done
    raise RunStopped(actions.signum, run.work, label, at, total,
                     checkpointed=actions.saved_at_stop) from None
  except Exception as e:  # pylint: disable=broad-except
    if peer_lost(e):  # a gather of the records, a save: another process is gone
      raise PeerLost(run.work, e) from None
    raise
  finally:
    bar.close()
  run.log.end(label, curves)
  run_s = timing["run_s"] + before.get("run_s", 0.0)  # the sessions' training together
  timings = {"compile_s": round(timing["compile_s"], 2), "run_s": round(run_s, 2),
             "iterations_per_s": round(total / run_s, 2),
             **{k: timing[k] for k in ("chunks", "runs_per_chunk", "rounds", "device_bytes")
                if k in timing}}
  if before:
    timings["resumed_at_iteration"] = before["iterations_done"]
  if run.show_progress and run.writer:
    print(f"  {label}: compile {timings['compile_s']} s, run {timings['run_s']} s"
          f" ({num_seeds} seeds x {total} iterations)", flush=True)
  return curves, timings


def _finish(result: results.Result, out: Path | None, work: Path | None, writer: bool,
            checkpoints: RunCheckpoints | None) -> None:
  """The finished run's files: curves, report, checkpoints removed, and the
  work folder in ``out``'s place."""
  if work is None:
    return
  if writer:
    results.save_result(result, work)
    results.write_report(result, work)
  if checkpoints is not None:
    checkpoints.remove()
  if writer:
    results.finish_out(work, out)


@contextlib.contextmanager
def _released_on_error(out: Path | None):
  """Gives ``out``'s folder lock back if the run ends in an error (a finished
  run gives it back when its folder takes ``out``'s place)."""
  try:
    yield
  except BaseException:
    if out is not None:
      folder_lock.release(out, run=True)  # kept while a caller's holding() block is open
    raise


class _NoStopRequest(NamedTuple):
  """A run without ``out`` has nothing to save: no signal handling."""
  signum: None = None


_NO_STOP = _NoStopRequest()
