"""One benchmark, several optimizers, several seeds: run, save, tabulate, plot.

:func:`run_benchmark` trains every optimizer on every seed (per optimizer,
all seeds are one compiled program), saving the curves after each optimizer
so that nothing finished is lost; :func:`report` makes metrics, table and
figure from the saved curves. The files are described in
:mod:`ngm_jax.results`.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from tqdm import tqdm

from ngm_jax import analysis, plots, results
from ngm_jax.benchmarks import ModelSetup, model_setup
from ngm_jax.optimizers import training_options
from ngm_jax.streams import Sampler, TaskStream, check_fits
from ngm_jax.train import (LOOPS, SEED_AXES, TrainConfig, curve_iterations,
                           make_train_parts, seed_keys, task1_eval_size, train_seeds)

__all__ = ["default_execution", "run_benchmark", "report"]


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


def _resolve(loop: str, seed_axis: str, setup: ModelSetup) -> tuple[str, str]:
  auto_loop, auto_axis = default_execution(jax.default_backend(), setup.convolutional)
  loop = auto_loop if loop == "auto" else loop
  seed_axis = auto_axis if seed_axis == "auto" else seed_axis
  if loop not in LOOPS:
    raise ValueError(f"loop={loop!r}; choose from auto, {', '.join(LOOPS)}.")
  if seed_axis not in SEED_AXES:
    raise ValueError(f"seed_axis={seed_axis!r}; choose from auto, {', '.join(SEED_AXES)}.")
  return loop, seed_axis


def run_benchmark(
    stream: TaskStream,
    optimizers: Sequence[str] | Mapping[str, tuple[str, TrainConfig]],
    train_config: TrainConfig,
    num_seeds: int,
    out: str | Path,
    *,
    setup: ModelSetup | None = None,
    sampler: Sampler | None = None,
    loop: str = "auto",
    seed_axis: str = "auto",
    show_progress: bool = True,
    overwrite: bool = False,
    extra_meta: Mapping[str, Any] | None = None,
    seed_hyperparams: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
  """Trains each optimizer on seeds ``0..num_seeds-1`` and writes ``out/``.

  Args:
    stream: the benchmark.
    optimizers: names from :data:`ngm_jax.optimizers.OPTIMIZER_NAMES`, each
      trained with ``train_config``; or ``{label: (name, config)}`` to compare
      variants of one optimizer (e.g. ``g0_sgd`` at two constant gains), each
      with its own config; curves and tables are keyed by label.
    train_config: the training hyperparameters (the iterations, evaluation
      schedule and batch size of every variant must match it).
    num_seeds: seeds 0..num_seeds-1.
    out: output folder.
    setup: the network (default :func:`ngm_jax.benchmarks.model_setup`).
    sampler: which rows each step trains on (default incremental joint
      training, :func:`ngm_jax.streams.joint_sampler`), e.g. a replay buffer
      (:mod:`ngm_jax.replay`); built for ``stream`` and ``train_config``.
    loop, seed_axis: how to run (:func:`ngm_jax.train.train_seeds`), or
      ``"auto"`` (:func:`default_execution`).
    show_progress: a progress bar per optimizer.
    overwrite: replace an earlier run in ``out``.
    extra_meta: recorded in ``run.json`` (e.g. the benchmark's options).
    seed_hyperparams: ``{label: {name: [num_seeds, ...]}}``, per-seed values
      set in that variant's initial optimizer state (the ``hyperparams`` of
      :func:`ngm_jax.train.train_seeds`), e.g. the gain schedule of
      ``replayed_lr_sgd``; ``run.json`` records their names and shapes.

  Returns:
    ``out`` as a Path, holding run.json, curves.npz, log.jsonl, metrics.json,
    table.md and figure.png.

  Raises:
    ValueError: bad seeds, an existing run without ``overwrite``, an unknown
      loop or seed axis, or an unknown optimizer.
    ngm_jax.streams.DatasetTooLargeError: the data would not fit the device.
  """
  if num_seeds < 1:
    raise ValueError(f"--seeds {num_seeds}: need at least 1 seed.")
  out = Path(out)
  if (out / "curves.npz").exists() and not overwrite:
    raise ValueError(f"{out} already holds a run; pass --overwrite or choose another --out.")
  setup = setup or model_setup(stream)
  loop, seed_axis = _resolve(loop, seed_axis, setup)
  variants = (dict(optimizers) if isinstance(optimizers, Mapping)
              else {name: (name, train_config) for name in optimizers})
  schedule = ("iterations_per_task", "eval_every", "task_eval_every", "batch_size")
  for label, (name, config) in variants.items():  # fail before any training
    config.optimizer(name, setup.gain_mask)
    for field in schedule:
      if getattr(config, field) != getattr(train_config, field):
        raise ValueError(
            f"Variant {label!r}: {field}={getattr(config, field)} differs from the"
            f" run's {getattr(train_config, field)}; curves must share one schedule.")
  seed_hyperparams = dict(seed_hyperparams or {})
  unknown = sorted(set(seed_hyperparams) - set(variants))
  if unknown:
    raise ValueError(f"seed_hyperparams for {', '.join(unknown)}: not among the variants"
                     f" ({', '.join(variants)}).")
  check_fits(stream)
  out.mkdir(parents=True, exist_ok=True)

  total = stream.num_tasks * train_config.iterations_per_task
  seeds = list(range(num_seeds))
  keys = seed_keys(seeds)
  device = jax.devices()[0]
  meta = {
      "benchmark": stream.name,
      "num_tasks": stream.num_tasks,
      "task_names": list(stream.task_names),
      "train": dataclasses.asdict(train_config),
      "optimizers": list(variants),
      "variants": {label: {"optimizer": name, "train": dataclasses.asdict(config)}
                   for label, (name, config) in variants.items()},
      "seeds": seeds,
      "seed_hyperparams": {label: {name: list(np.shape(v)) for name, v in hp.items()}
                           for label, hp in seed_hyperparams.items()},
      "task1_eval_size": task1_eval_size(stream, train_config),
      "task1_test_size": int(stream.test_task_ends[0]),
      "test_sizes": stream.task_sizes("test").tolist(),
      "train_size": int(stream.train_task_ends[-1]),
      "num_classes": stream.num_classes,
      "model": type(setup.model).__name__,
      "augment": setup.augment is not None,
      "loop": loop,
      "seed_axis": seed_axis,
      "device": f"{device.platform}: {device.device_kind}",
      "jax_version": jax.__version__,
      "python": platform.python_version(),
      "command": results.command_line(),
      **(extra_meta or {}),
      "timings": {},
  }
  results.write_json(out / "run.json", meta)
  iterations = curve_iterations(train_config, stream.num_tasks)
  all_curves: dict[str, dict[str, np.ndarray]] = {}
  wall_start = time.perf_counter()
  with open(out / "log.jsonl", "w") as log:  # a fresh run (an old one needs overwrite)
    for n, (opt, (name, config)) in enumerate(variants.items(), 1):
      parts = make_train_parts(stream, name, config, **setup.kwargs(), sampler=sampler,
                               **training_options(name), unroll=(loop == "chunked"))
      bar = tqdm(total=total, desc=f"[{n}/{len(variants)}] {opt} x{num_seeds} seeds",
                 unit="it", disable=not show_progress)
      curves, timing = train_seeds(
          parts, keys, loop=loop, seed_axis=seed_axis,
          progress=lambda step: bar.update(int(np.max(step)) - bar.n),
          hyperparams=seed_hyperparams.get(opt))
      bar.close()
      all_curves[opt] = curves
      results.save_curves(out / "curves.npz", all_curves, iterations)
      timing = {"compile_s": round(timing["compile_s"], 2),
                "run_s": round(timing["run_s"], 2),
                "iterations_per_s": round(total / timing["run_s"], 2)}
      meta["timings"][opt] = timing
      results.write_json(out / "run.json", meta)
      log.write(json.dumps({"optimizer": opt, **timing}) + "\n")
      log.flush()
      print(f"  {opt}: compile {timing['compile_s']} s, run {timing['run_s']} s "
            f"({num_seeds} seeds x {total} iterations)", flush=True)
  meta["wall_s"] = round(time.perf_counter() - wall_start, 1)
  results.write_json(out / "run.json", meta)
  report(out)
  return out


def report(out: str | Path) -> dict:
  """Metrics, table and figure from ``out/curves.npz`` and ``out/run.json``.

  Raises:
    ValueError: ``out`` holds no saved run.
  """
  out = Path(out)
  if not (out / "curves.npz").exists() or not (out / "run.json").exists():
    raise ValueError(f"{out} holds no saved run (no curves.npz and run.json).")
  meta = results.read_json(out / "run.json")
  curves, iterations = results.load_curves(out / "curves.npz")
  k, i = meta["num_tasks"], meta["train"]["iterations_per_task"]
  metrics = results.compute_metrics(curves, iterations, k, i)
  results.write_json(out / "metrics.json", metrics)
  num_seeds = len(meta["seeds"])
  notes = [
      f"Task-1 accuracy evaluated every {meta['train']['eval_every']} iteration(s) on"
      f" {meta['task1_eval_size']} of {meta['task1_test_size']} Task-1 test images.",
  ]
  if meta.get("test_subset_per_task"):
    notes.append(f"Each task's test set limited to a fixed random subset of"
                 f" {meta['test_subset_per_task']} images (seed"
                 f" {meta.get('test_subset_seed', 0)}).")
  variants = meta.get("variants", {})
  resets = [label for label in meta["optimizers"]
            if variants.get(label, {}).get("optimizer", label).endswith("_reset")]
  if resets:
    notes.append(f"{', '.join(resets)} reset the optimizer state at every task"
                 " boundary: the only place task identity is used (an oracle).")
  failed, note = _failed_seeds(curves, meta.get("num_classes"))
  results.write_json(out / "failed_seeds.json", {opt: bad.tolist() for opt, bad in failed.items()})
  notes += [note] if note else []
  header = (f"# {meta['benchmark']}: {num_seeds} seeds, {k} tasks x {i} iterations\n\n"
            + "\n".join(notes) + "\n\n")
  without_failed = results.metrics_of_kept_seeds(curves, failed, iterations, k, i)
  (out / "table.md").write_text(
      header + results.metrics_table(metrics, num_seeds, failed, without_failed))
  plots.plot_stability_gap(
      curves, iterations, k, i,
      title=f"{meta['benchmark']} ({num_seeds} seeds, mean ± s.e.)",
      path=out / "figure.png",
      failed=failed,
  )
  return metrics


def _failed_seeds(curves, num_classes):
  """``({optimizer: [S] bool}, a note for the table or None)``; warns on stdout.

  ``num_classes`` None (runs saved before it was recorded): only divergence
  is checked.
  """
  failed = {opt: analysis.failed_seeds(c, num_classes) for opt, c in curves.items()}
  for opt, bad in failed.items():
    if bad.any():
      print(f"  warning: {opt}: {int(bad.sum())}/{bad.size} seeds failed"
            f" (seed index {', '.join(map(str, np.flatnonzero(bad)))})", flush=True)
  return failed, analysis.failed_seeds_note(failed, num_classes)
