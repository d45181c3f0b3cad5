"""The stability-gap protocol run on a user's optimizers and network.

:func:`run_benchmark` trains each optimizer (a built-in name or any optax
transformation) on every seed with incremental joint training, evaluates
Task 1 at every iteration inside the compiled program, and returns a
:class:`ngm_jax.results.Result` of NumPy arrays (seed first) with the paper's
metrics. It writes nothing unless given ``out``; then it saves after every
optimizer, so that nothing finished is lost, and writes the report
(:func:`ngm_jax.results.write_report`) at the end::

    result = ngm_jax.run_benchmark(stream, {"ngm": "ngm_sgd", "mine": my_tx}, num_seeds=5)
    result.curves["mine"]["task1_acc"]     # [5, iterations]
    result.metrics["mine"]["avg_sg"]["mean"]
"""

from __future__ import annotations

import dataclasses
import platform
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from tqdm import tqdm

from ngm_jax import benchmarks, results
from ngm_jax.execution import resolve_execution, train_seeds
from ngm_jax.optimizers import Optimizer, as_optimizer, has_gain
from ngm_jax.placement import Placement, gain_mask, kernels
from ngm_jax.sharding import describe_mesh, run_mesh
from ngm_jax.memory import check_fits
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
    out: None (nothing is written) or a folder: the curves and ``run.json``
      are saved after every optimizer, the report at the end
      (:func:`ngm_jax.results.save_result`, :func:`~ngm_jax.results.write_report`).
    overwrite: with ``out``, replace a run already there.
    loop, seed_axis: how to run (:func:`ngm_jax.execution.train_seeds`), or
      ``"auto"`` (:func:`ngm_jax.execution.default_execution`).
    show_progress: a progress bar per optimizer.
    seed_hyperparams: ``{label: {name: [num_seeds, ...]}}``, per-seed values
      set by name in that variant's initial optimizer state.
    extra_meta: recorded in ``result.meta`` (and ``run.json``).
    devices: how many devices the seeds are split over (default: every
      device of every process). With more than one, each variant's seeds run
      as one scanned, vmapped program sharded over a ``("runs",)`` mesh
      (:mod:`ngm_jax.sharding`); with several processes
      (``jax.distributed.initialize``), process 0 alone writes ``out``.

  Returns:
    A :class:`ngm_jax.results.Result`: ``result.curves[label][curve]`` NumPy
    ``[num_seeds, ...]`` (``task1_acc``, ``task1_loss``, ``gain``,
    ``entropy``, ``train_loss``: one value per evaluation or iteration;
    ``task_acc``, ``task_loss``: ``[num_seeds, points, tasks]``),
    ``result.iterations``, ``result.metrics``, ``result.config``,
    ``result.meta``.

  Raises:
    TypeError, ValueError: bad arguments, before anything is trained.
    ngm_jax.streams.DatasetTooLargeError: the data would not fit the device.
  """
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
  if mesh.size > 1 or jax.process_count() > 1:
    if (loop, seed_axis) == ("auto", "auto"):
      loop, seed_axis = "scan", "vmap"
    elif (loop, seed_axis) != ("scan", "vmap"):
      raise ValueError(f"loop={loop!r}, seed_axis={seed_axis!r} on {mesh.size} devices: the"
                       " sharded run is loop='scan', seed_axis='vmap' (or devices=1).")
  loop, seed_axis = resolve_execution(loop, seed_axis, convolutional)
  writer = jax.process_index() == 0
  if out is not None and writer:
    out = results.prepare_out(out, overwrite)
  check_fits(stream)

  data = train_data(stream)
  num_seeds = int(num_seeds)
  keys = seed_keys(num_seeds)
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
      "seeds": list(range(num_seeds)),
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
  curves: dict[str, dict[str, np.ndarray]] = {}
  wall_start = time.perf_counter()
  for n, (label, part) in enumerate(parts.items(), 1):
    sequential = seed_axis == "sequential"
    bar = tqdm(total=total * (num_seeds if sequential else 1), unit="it",
               desc=f"[{n}/{len(parts)}] {label} x{num_seeds} seeds",
               disable=not (show_progress and writer))
    curves[label], timing = train_seeds(
        part, keys, loop=loop, seed_axis=seed_axis,
        progress=lambda done: bar.update(max(0, done - bar.n)),
        hyperparams=seed_hyperparams.get(label), mesh=mesh)
    bar.close()
    meta["timings"][label] = {"compile_s": round(timing["compile_s"], 2),
                              "run_s": round(timing["run_s"], 2),
                              "iterations_per_s": round(total / timing["run_s"], 2),
                              **{k: timing[k] for k in ("chunks", "runs_per_chunk",
                                                        "device_bytes") if k in timing}}
    if out is not None and writer:
      results.save_result(results.Result(curves, iterations, meta), out)
      results.append_log(out, {"optimizer": label, **meta["timings"][label]})
    if show_progress and writer:
      t = meta["timings"][label]
      print(f"  {label}: compile {t['compile_s']} s, run {t['run_s']} s"
            f" ({num_seeds} seeds x {total} iterations)", flush=True)
  meta["wall_s"] = round(time.perf_counter() - wall_start, 1)
  result = results.Result(curves, iterations, meta)
  if out is not None and writer:
    results.save_result(result, out)
    results.write_report(result, out)
  return result
