"""Benchmark (not a test): training speed of the protocols, and of the ways to run them.

Every row is printed (one JSON line) as soon as it is measured and, with
``--json F``, ``F`` is rewritten after every row (``"complete": false`` until
the last one), so an interrupted run keeps what it measured.

``--benchmark`` is any name of the registry (:mod:`ngm_jax.benchmarks`,
default ``split_mnist``); what is timed follows the record: whole runs for a
network that is not convolutional (the MLP), timed intervals for a
convolutional one (the ResNet). The benchmark's config is
``experiments/configs/<name>.py``'s. ``--synthetic`` replaces the data with
random images of the dataset's shapes and sizes (:data:`SYNTHETIC`, by the
record's ``dataset``).

**Split MNIST** (the MLP; so ``rotated_mnist``, ``permuted_mnist``), the full
protocol, whole runs::

    python experiments/bench.py --data-dir DIR [--json F]

For one seed and for five vmapped seeds: compile ``jax.jit(jax.vmap(train))``
(timed apart), then time whole runs (5 tasks × 200 iterations, batch 128,
Task-1 test evaluation after every iteration, every task's test set every 10)
and report iterations per second. A second row per seed count evaluates only
at task ends, to show what the per-iteration evaluation costs.
``--data-as argument,constant`` compares the data as arguments of the program
with the data compiled into it; ``--repeats 0`` compiles only;
``--iterations-per-task N`` shortens the runs.

**Split CIFAR-10** (the slim ResNet-18; so the other convolutional
benchmarks), timed intervals::

    python experiments/bench.py --benchmark split_cifar10 --synthetic [--full]

Times one eval interval (one training step with on-device augmentation, then
the Task-1 evaluation) and one evaluation of every task's test set, for each
way of running the loop (``scan``: ``--iterations`` intervals in a
``lax.scan``; ``chunked``: one compiled, unrolled interval called from Python)
and of running the seeds (``vmap``, ``lax.map``, or one seed's program called
per seed from Python, ``sequential``). The protocol's iterations per second
are then ``1 / (t_interval + t_task_eval / 20)`` (the per-task evaluation
runs every 20 iterations). ``--synthetic`` uses random CIFAR-shaped data of
the real sizes (50,000 train, 10,000 test images; ``--synthetic-size`` other
sizes); the timing does not depend on pixel values.

The default is sized for a CPU: 2 seeds; the modes ``chunked:sequential``
(the CPU default of the library), ``chunked:vmap`` and ``scan:vmap`` (the
accelerator default); batch 32; 100 test images per task (so Task 1 is
evaluated on 100 images); 2 intervals per timing; best of 1. ``--full`` is for
accelerators: the protocol's sizes (batch 256, the whole test sets: Task 1 on
2,000 images, all 10,000 every 20 iterations), 1 and 5 seeds, all six modes,
3 intervals per timing, best of 2. Any size flag given overrides either.

**Cost** (every mode): each row also gives one seed's FLOPs per iteration
(XLA's count of a training step, the Task-1 evaluation and the all-task
evaluation per iteration, :func:`ngm_jax.cost.protocol_flops`), the FLOP/s
achieved (× seed-iterations per second) and the fraction of the device's
peak at the precision the run computed at: a square matmul measured at the
start (fp32 on a CPU; TF32 for float32 and bf16 for ``--compute-dtype
bfloat16`` on a GPU; :func:`ngm_jax.cost.device_peaks`, with NVIDIA's
datasheet figures in the JSON header beside them). ``--profile DIR`` records
a ``jax.profiler`` trace of the first row (its compiling and timed runs: one
program, so that XLA's operation names in the trace are that program's) and
prints its top costs (:mod:`ngm_jax.profiling` says how to open it).

**Comparisons** (``--compare``): each run in a subprocess of this script (a
fresh process, so that its peak RSS is its own and its device count can be
set with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``), the rows
then compared with the first run as ratios, and their curves with its
curves::

    python experiments/bench.py --compare --data-dir DIR
    python experiments/bench.py --compare --benchmark split_cifar10 --synthetic

The sizes of a comparison follow the record too (the MLP's or the ResNet's).
Split MNIST, full protocol, 5 seeds (``--iterations-per-task N`` shortens
it): the library's program (:func:`ngm_jax.run_benchmark`, one compiled
``lax.scan`` with the seeds vmapped) on 1, 2, 4 and 8 devices (the seeds
sharded over a ``("runs",)`` mesh, padded to a multiple of the device count),
and a per-step Python loop of the same protocol in JAX (``python``: one jitted
call per iteration holding the training step and the Task-1 evaluation, a
Python ``for`` over iterations, every task's test set every 10, the metrics
read back to the host after every iteration as the paper's PyTorch scripts do
with ``.item()``, the seeds one after another).

Split CIFAR-10, short synthetic run (2 seeds, 2 iterations per task = 10
iterations, batch 16, 50 test images per task): ``chunked:sequential`` (the
CPU default), ``chunked:vmap``, ``scan:sequential`` and ``scan:vmap`` on one
device; ``scan:vmap`` sharded over 2 devices (one seed per device, the vmap
of size 1 on each); and ``seed_axis="shard"`` chunked and scanned (one seed
per device with ``jax.shard_map``, no vmap at all), the run ``auto`` picks
for the ResNet on a CPU with several devices.

Each row: compile and run time (``run_benchmark``'s timings, or the loop's),
XLA's memory analysis of the compiled program per device (``device_bytes``:
arguments, outputs and temporaries), the process's peak RSS, and the curves'
agreement with the first row (training records bitwise equal or not, largest
absolute difference of any curve).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from experiments import configs
from experiments.bench_cost import (cost_fields, first_row_profiled, fraction_text,
                                    measure_peaks_again)
from ngm_jax.benchmarks import get as get_benchmark
from ngm_jax.benchmarks import load_benchmark
from ngm_jax.benchmarks import names as benchmark_names
from ngm_jax.cost import device_peaks, flops_per_iteration, protocol_flops
from ngm_jax.data import ImageDataset
from ngm_jax.execution import LOOPS, SEED_AXES, program_bytes
from ngm_jax.profiling import format_top_costs, top_costs
from ngm_jax.runner import network, run_benchmark
from ngm_jax.streams import subsample_test
from ngm_jax.train import make_train, make_train_parts, seed_keys

ALL_MODES = ("scan:vmap,chunked:vmap,scan:map,chunked:map,scan:sequential,"
             "chunked:sequential")
#: Sizes of a convolutional benchmark's speed table (``--benchmark
#: split_cifar10``): a CPU default and the protocol's (``--full``). ``None``:
#: the protocol's own value.
IMAGE_SIZES = {
    "cpu": {"seeds": "2", "modes": "chunked:sequential,chunked:vmap,scan:vmap",
            "iterations": 2, "batch_size": 32, "test_subset": 100,
            "eval_task1_limit": None, "repeats": 1},
    "full": {"seeds": "1,5", "modes": ALL_MODES, "iterations": 3, "batch_size": None,
             "test_subset": None, "eval_task1_limit": None, "repeats": 2},
}
#: Sizes of ``--compare``, per kind of network (:func:`sizes_key`; ``--full``
#: for the convolutional one).
COMPARE_SIZES = {
    "mlp": {"seeds": "5", "runs": "scan:vmap@1,scan:vmap@2,scan:vmap@4,scan:vmap@8,python@1",
            "iterations_per_task": None, "batch_size": None, "test_subset": None,
            "eval_task1_limit": None},
    "convolutional": {"seeds": "2", "runs": "chunked:sequential@1,chunked:vmap@1,"
                                              "scan:sequential@1,scan:vmap@1,scan:vmap@S,"
                                              "chunked:shard@S,scan:shard@S",
                      "iterations_per_task": 2, "batch_size": 16, "test_subset": 50,
                      "eval_task1_limit": None},
    "convolutional_full": {"seeds": "5", "runs": "chunked:sequential@1,scan:vmap@1,"
                                                 "scan:vmap@S",
                           "iterations_per_task": 40, "batch_size": None,
                           "test_subset": None, "eval_task1_limit": None},
}
#: ``--synthetic``: random data in the shapes of the dataset a record reads
#: (its ``dataset``): image shape, classes, train and test sizes, and the
#: superclasses (fine label // 5, 20 of 5 classes) for CIFAR-100.
SYNTHETIC = {
    "mnist": {"shape": (28, 28), "classes": 10, "train": 60000, "test": 10000},
    "cifar10": {"shape": (32, 32, 3), "classes": 10, "train": 50000, "test": 10000},
    "cifar100": {"shape": (32, 32, 3), "classes": 100, "train": 50000, "test": 10000,
                 "coarse_per": 5},
    "miniimagenet": {"shape": (84, 84, 3), "classes": 100, "train": 50000, "test": 10000},
}
#: Curves that are functions of the training trajectory alone (and accuracies):
#: equal bit for bit when two ways of running train the same way.
TRAINING_CURVES = ("train_loss", "entropy", "gain", "task1_acc", "task_acc", "diverged_at")


def peak_rss_mb() -> float:
  """This process's peak resident memory so far, in MB (on CPU the devices'
  memory is host memory)."""
  return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Rows:
  """Rows printed as they come and the ``--json`` file rewritten after each."""

  def __init__(self, path: str | None, header: dict[str, Any]):
    self.path = Path(path) if path else None
    self.header = header
    self.rows: list[dict] = []
    self.start = time.perf_counter()  # the command's wall time so far, "wall_s" in the file
    if self.path:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self._write(complete=False)

  def add(self, row: dict) -> None:
    self.rows.append(row)
    print(json.dumps(row), flush=True)
    self._write(complete=False)

  def close(self) -> None:
    self._write(complete=True)

  def _write(self, complete: bool) -> None:
    if self.path is None:
      return
    tmp = self.path.with_name(self.path.name + ".tmp")
    wall_s = round(time.perf_counter() - self.start, 1)
    tmp.write_text(json.dumps({**self.header, "complete": complete, "wall_s": wall_s,
                               "rows": self.rows}, indent=2) + "\n")
    tmp.replace(self.path)


def _best_of(fn, repeats):
  runs = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    runs.append(time.perf_counter() - t0)
  return min(runs)


def _memory(compiled) -> dict[str, float]:
  """The compiled program's memory analysis, in MB (what XLA reports)."""
  analysis = compiled.memory_analysis()
  fields = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
            "generated_code_size_in_bytes")
  out = {f.replace("_size_in_bytes", "_mb"): round(getattr(analysis, f, 0) / 1e6, 2)
         for f in fields if analysis is not None}
  return out


# --- The stream ---------------------------------------------------------------


def sizes_key(benchmark: str) -> str:
  """``"convolutional"`` or ``"mlp"``: which sizes and timings a registered
  benchmark gets (its record's ``convolutional``)."""
  return "convolutional" if get_benchmark(benchmark).convolutional else "mlp"


def synthetic_dataset(dataset: str, train: int | None = None, test: int | None = None,
                      seed: int = 0) -> ImageDataset:
  """Random uint8 images and balanced labels in the shapes of ``dataset`` (a
  key of :data:`SYNTHETIC`), by default of its sizes.

  Raises:
    ValueError: a dataset :data:`SYNTHETIC` does not describe (naming those it does).
  """
  if dataset not in SYNTHETIC:
    raise ValueError(f"--synthetic: no synthetic data for dataset {dataset!r}; there are for"
                     f" {', '.join(SYNTHETIC)}.")
  spec = SYNTHETIC[dataset]
  rng = np.random.default_rng(seed)
  classes = spec["classes"]

  def split(n):
    labels = np.repeat(np.arange(classes, dtype=np.int32), -(-n // classes))[:n]
    return rng.integers(0, 256, (n,) + spec["shape"], dtype=np.uint8), labels

  (train_x, train_y), (test_x, test_y) = split(train or spec["train"]), split(test or spec["test"])
  per = spec.get("coarse_per")
  coarse = (lambda y: (y // per).astype(np.int32)) if per else (lambda y: None)
  return ImageDataset(train_x, train_y, test_x, test_y, coarse(train_y), coarse(test_y))


def synthetic_cifar10(seed: int = 0, train: int = 50000, test: int = 10000) -> ImageDataset:
  """Random uint8 images and balanced labels with CIFAR-10's shapes (and, by
  default, its sizes)."""
  return synthetic_dataset("cifar10", train, test, seed)


def bench_stream(args):
  """``args.benchmark``'s stream with its config's options, synthetic
  (``--synthetic``, ``--synthetic-size TRAIN,TEST``) or loaded, on
  ``--test-subset`` images per task; and a note saying which."""
  record = get_benchmark(args.benchmark)
  options = record.check_options(configs.get_config(args.benchmark).options)
  if getattr(args, "synthetic", False):
    size = getattr(args, "synthetic_size", None)
    train, test = (int(n) for n in size.split(",")) if size else (None, None)
    stream = record.build(synthetic_dataset(record.dataset, train, test), **options)
    note = f"synthetic {record.dataset}-shaped data"
  else:
    stream = load_benchmark(args.benchmark, args.data_dir, **options)
    note = record.dataset or args.benchmark
  if getattr(args, "test_subset", None):
    stream = subsample_test(stream, args.test_subset)
  return stream, note


# --- Networks that are not convolutional (Split MNIST): whole runs -----------


def time_protocol(stream, train_config, optimizer, num_seeds, repeats, data_as="argument"):
  """Compile time, memory and best-of-``repeats`` run time of one vmapped program.

  ``data_as="argument"``: the data are arguments of the program (the
  library's way). ``"constant"``: closed over by the jitted function, so
  XLA compiles them into the program as constants (the way before the data
  became arguments), kept to measure what that costs.
  """
  train, data = make_train(stream, optimizer, train_config)
  keys = seed_keys(num_seeds)
  seeds = jax.vmap(train, in_axes=(0, None))
  t0 = time.perf_counter()
  if data_as == "argument":
    compiled = jax.jit(seeds).lower(keys, data).compile()
    run = lambda: compiled(keys, data)
  else:
    compiled = jax.jit(lambda k: seeds(k, data)).lower(keys).compile()
    run = lambda: compiled(keys)
  compile_s = time.perf_counter() - t0
  best = _best_of(run, repeats) if repeats > 0 else None  # 0: compile only
  iterations = stream.num_tasks * train_config.iterations_per_task
  rate = lambda n: round(n / best, 1) if best else None
  return {
      "seeds": num_seeds,
      "data_as": data_as,
      # The process's peak resident memory so far (run one --data-as per process
      # to compare them): on CPU the device memory is host memory.
      "peak_rss_mb": peak_rss_mb(),
      **_memory(compiled),
      "eval_every": train_config.eval_every,
      "iterations": iterations,
      "compile_s": round(compile_s, 2),
      "run_s": round(best, 2) if best else None,
      "iterations_per_s": rate(iterations),
      "seed_iterations_per_s": rate(num_seeds * iterations),
  }


def _shortened(config, iterations_per_task):
  """``config`` with ``iterations_per_task`` (if given), the per-task
  evaluation every task's end if its interval no longer divides it."""
  if not iterations_per_task:
    return config
  every = config.task_eval_every
  return dataclasses.replace(config, iterations_per_task=iterations_per_task,
                             task_eval_every=every if iterations_per_task % every == 0
                             else iterations_per_task)


def bench_runs(args, rows: Rows) -> list[dict]:
  """Whole runs of ``args.benchmark`` (the Split MNIST protocol's table)."""
  config = _shortened(configs.get_config(args.benchmark).train, args.iterations_per_task)
  config = dataclasses.replace(config, compute_dtype=args.compute_dtype)
  no_eval = dataclasses.replace(config, eval_every=config.iterations_per_task,
                                task_eval_every=config.iterations_per_task)
  stream, _ = bench_stream(args)
  counts = protocol_flops(stream, args.optimizer, config)
  rows.header["flops"] = counts
  for num_seeds in (int(s) for s in args.seeds.split(",")):
    for cfg in (config, no_eval):
      for data_as in args.data_as.split(","):
        with first_row_profiled(args):
          row = time_protocol(stream, cfg, args.optimizer, num_seeds, args.repeats, data_as)
        rows.add({**row, **cost_fields(flops_per_iteration(counts, cfg),
                                       row["seed_iterations_per_s"], rows.header,
                                       cfg.compute_dtype)})
  return rows.rows


def _print_runs(rows: list[dict]) -> None:
  print("\n| seeds | data as | Task-1 eval every | compile (s) | run (s) | iterations/s |"
        " seed-iterations/s | MFLOP / iteration | GFLOP/s | of peak | arguments (MB) |"
        " temporaries (MB) | peak RSS (MB) |")
  print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
  for r in rows:
    print(f"| {r['seeds']} | {r['data_as']} | {r['eval_every']} | {r['compile_s']} |"
          f" {r['run_s']} | {r['iterations_per_s']} | {r['seed_iterations_per_s']} |"
          f" {r.get('mflop_per_iteration')} | {r.get('achieved_gflop_per_s')} |"
          f" {fraction_text(r)} |"
          f" {r.get('argument_mb')} | {r.get('temp_mb')} | {r['peak_rss_mb']} |")


# --- Convolutional networks (Split CIFAR-10): timed intervals ---------------


def time_image_mode(parts, keys, loop, seed_axis, iterations, repeats):
  """Seconds per eval interval and per all-task evaluation for one way of
  running; compile times apart."""
  over = {"vmap": jax.vmap, "map": lambda f: lambda x: jax.lax.map(f, x),
          "sequential": lambda f: f}[seed_axis]
  # "sequential": one seed's program, called for each seed in turn.
  batches = [keys[i] for i in range(len(keys))] if seed_axis == "sequential" else [keys]
  data = parts.data
  init = jax.jit(over(lambda k: parts.init(k, data)))
  states = [init(k) for k in batches]
  if loop == "scan":
    body = lambda s: jax.lax.scan(lambda c, _: parts.eval_interval(c, data), s, None,
                                  length=iterations)
  else:
    body = lambda s: parts.eval_interval(s, data)
  t0 = time.perf_counter()
  interval = jax.jit(over(body)).lower(states[0]).compile()
  task_eval = jax.jit(over(lambda s: parts.task_eval(s, data))).lower(states[0]).compile()
  compile_s = time.perf_counter() - t0

  def run_intervals():
    records = []
    for s in states:
      for _ in range(1 if loop == "scan" else iterations):
        s, r = interval(s)
      records.append(r)
    return records

  per_interval = _best_of(run_intervals, repeats) / iterations
  per_task_eval = _best_of(lambda: [task_eval(s) for s in states], repeats)
  return compile_s, per_interval, per_task_eval


def bench_image(args, rows: Rows) -> list[dict]:
  """Timed intervals of ``args.benchmark`` (the Split CIFAR-10 speed table)."""
  stream, data_note = bench_stream(args)
  config = configs.get_config(args.benchmark)
  overrides = {k: v for k, v in (("batch_size", args.batch_size),
                                 ("eval_task1_limit", args.eval_task1_limit)) if v}
  train_config = dataclasses.replace(config.train, iterations_per_task=1, task_eval_every=1,
                                     compute_dtype=args.compute_dtype, **overrides)
  record = get_benchmark(args.benchmark)
  net, _ = network(stream, augment=record.augment if config.augment else None)
  modes = [m.split(":") for m in args.modes.split(",")]
  task1 = min(int(stream.test_task_ends[0]), train_config.eval_task1_limit or 10**9)
  print(f"{args.benchmark} ({data_note}), {args.optimizer}, batch {train_config.batch_size},"
        f" Task-1 evaluation on {task1} images every iteration, all"
        f" {len(stream.test_labels)} test images every {config.train.task_eval_every};"
        f" best of {args.repeats}, {args.iterations} intervals per timing", flush=True)
  counts = protocol_flops(stream, args.optimizer, train_config, **net)
  rows.header["flops"] = counts
  per_seed_iteration = flops_per_iteration(counts, train_config, config.train.task_eval_every)
  for num_seeds in (int(s) for s in args.seeds.split(",")):
    keys = seed_keys(num_seeds)
    for loop, seed_axis in modes:
      if num_seeds == 1 and seed_axis == "map":
        continue  # one seed: lax.map is the sequential program inside a loop
      parts = make_train_parts(stream, args.optimizer, train_config, **net,
                               unroll=(loop == "chunked"))
      with first_row_profiled(args):
        compile_s, t_interval, t_task_eval = time_image_mode(
            parts, keys, loop, seed_axis, args.iterations, args.repeats)
      per_iteration = t_interval + t_task_eval / config.train.task_eval_every
      rows.add({"seeds": num_seeds, "loop": loop, "seed_axis": seed_axis,
                "batch_size": train_config.batch_size, "task1_images": task1,
                "test_images": len(stream.test_labels),
                "compile_s": round(compile_s, 1), "interval_s": round(t_interval, 3),
                "task_eval_s": round(t_task_eval, 3),
                "iterations_per_s": round(1 / per_iteration, 4),
                "seed_iterations_per_s": round(num_seeds / per_iteration, 4),
                "peak_rss_mb": peak_rss_mb(),
                **cost_fields(per_seed_iteration, num_seeds / per_iteration, rows.header,
                              train_config.compute_dtype)})
  return rows.rows


def _print_image(rows: list[dict]) -> None:
  print("\n| seeds | loop | seeds run by | compile (s) | s / interval | s / all-task eval |"
        " iterations/s | seed-iterations/s | MFLOP / iteration | GFLOP/s | of peak |")
  print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
  for r in rows:
    print(f"| {r['seeds']} | {r['loop']} | {r['seed_axis']} | {r['compile_s']} |"
          f" {r['interval_s']} | {r['task_eval_s']} | {r['iterations_per_s']} |"
          f" {r['seed_iterations_per_s']} | {r.get('mflop_per_iteration')} |"
          f" {r.get('achieved_gflop_per_s')} | {fraction_text(r)} |")


# --- Comparisons: one subprocess per run -------------------------------------


def python_loop(parts, keys) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """The protocol as a per-step Python loop: one jitted call per eval interval
  (with ``eval_every=1``: one training step and the Task-1 evaluation,
  straight-line code when ``parts`` was made with ``unroll=True``), its
  records read back to the host at once (as ``.item()`` does in PyTorch),
  every task's test set every ``intervals_per_task_eval`` calls, the seeds one
  after another. Returns curves shaped as :func:`ngm_jax.execution.train_seeds`'s
  and ``{"compile_s", "run_s", "device_bytes"}`` (the largest of the compiled
  functions' memory analyses)."""
  data = parts.data
  t0 = time.perf_counter()
  init = jax.jit(lambda k, d: parts.init(k, d)).lower(keys[0], data).compile()
  state = init(keys[0], data)
  interval = jax.jit(lambda s, d: parts.eval_interval(s, d), donate_argnums=0
                     ).lower(state, data).compile()
  task_eval = jax.jit(lambda s, d: parts.task_eval(s, d)).lower(state, data).compile()
  compile_s = time.perf_counter() - t0
  device_bytes = max(program_bytes(c) or 0 for c in (init, interval, task_eval))
  t1 = time.perf_counter()
  seeds = []
  for key in keys:
    state = init(key, data)
    steps, task1, per_task = [], [], []
    for i in range(1, parts.num_intervals + 1):
      state, (s, t) = interval(state, data)
      s, t = jax.device_get((s, t))  # the host reads the metrics every iteration
      steps.append(s)
      task1.append(t)
      if i % parts.intervals_per_task_eval == 0:
        per_task.append(jax.device_get(task_eval(state, data)))
    curves = {k: np.concatenate([np.reshape(r[k], -1) for r in steps]) for k in steps[0]}
    curves.update({k: np.stack([r[k] for r in task1]) for k in task1[0]})
    curves.update({k: np.stack([r[k] for r in per_task]) for k in per_task[0]})
    curves["diverged_at"] = np.asarray(jax.device_get(state.diverged_at))
    seeds.append(curves)
  run_s = time.perf_counter() - t1
  curves = {k: np.stack([c[k] for c in seeds]) for k in seeds[0]}
  return curves, {"compile_s": compile_s, "run_s": run_s, "device_bytes": device_bytes}


def parse_run(spec: str, num_seeds: int) -> tuple[str, str, int]:
  """``"loop:seed_axis@devices"`` or ``"python@devices"`` (``@S``: one device
  per seed) → ``(loop, seed_axis, devices)``; the Python loop is
  ``("python", "sequential", 1)``."""
  mode, _, devices = spec.partition("@")
  devices = num_seeds if devices == "S" else int(devices or 1)
  if mode == "python":
    return "python", "sequential", devices
  loop, _, seed_axis = mode.partition(":")
  if loop not in LOOPS or seed_axis not in SEED_AXES:
    raise ValueError(f"--runs: {spec!r}; give loop:seed_axis@devices (e.g. scan:vmap@2)"
                     " or python@1.")
  return loop, seed_axis, devices


def compare_setup(args):
  """The stream, config and network keyword arguments of a comparison run."""
  record = get_benchmark(args.benchmark)
  stream, _ = bench_stream(args)
  augment = record.augment if configs.get_config(args.benchmark).augment else None
  config = record.config
  overrides = {k: v for k, v in (("iterations_per_task", args.iterations_per_task),
                                 ("batch_size", args.batch_size),
                                 ("eval_task1_limit", args.eval_task1_limit)) if v}
  if "iterations_per_task" in overrides and (
      overrides["iterations_per_task"] % config.task_eval_every):
    overrides["task_eval_every"] = overrides["iterations_per_task"]
  config = dataclasses.replace(config, compute_dtype=args.compute_dtype, **overrides)
  net, _ = network(stream, augment=augment)
  return stream, config, net, augment


def compare_child(args) -> int:
  """One comparison run (``--child SPEC``): writes ``row.json`` and
  ``curves.npz`` into ``--child-out``."""
  num_seeds = int(args.seeds)
  loop, seed_axis, devices = parse_run(args.child, num_seeds)
  stream, config, net, augment = compare_setup(args)
  if loop == "python":
    parts = make_train_parts(stream, args.optimizer, config, **net, unroll=True)
    curves, timing = python_loop(parts, seed_keys(num_seeds))
    runs = num_seeds
  else:
    result = run_benchmark(stream, [args.optimizer], config, num_seeds=num_seeds,
                           augment=augment, loop=loop, seed_axis=seed_axis,
                           devices=devices, show_progress=False)
    curves = result.curves[args.optimizer]
    timing = result.meta["timings"][args.optimizer]
    if seed_axis == "shard":  # rounds of one seed per device
      runs = timing["rounds"] * devices
    else:
      per_chunk = timing.get("runs_per_chunk", num_seeds)
      runs = -(-per_chunk // devices) * devices * timing.get("chunks", 1)  # padded
  iterations = stream.num_tasks * config.iterations_per_task
  row = {"run": args.child, "loop": loop, "seed_axis": seed_axis, "devices": devices,
         "device_count": jax.device_count(), "seeds": num_seeds,
         "runs_computed": runs,  # with padding to a multiple of the devices
         "iterations": iterations, "batch_size": config.batch_size,
         "task1_images": int(curves_task1_size(stream, config)),
         "test_images": len(stream.test_labels),
         "compile_s": round(timing["compile_s"], 2), "run_s": round(timing["run_s"], 3),
         "seed_iterations_per_s": round(num_seeds * iterations / timing["run_s"], 2),
         "chunks": timing.get("chunks"), "device_bytes": timing.get("device_bytes"),
         "peak_rss_mb": peak_rss_mb()}
  out = Path(args.child_out)
  np.savez(out / "curves.npz", **curves)
  (out / "row.json").write_text(json.dumps(row) + "\n")
  return 0


def curves_task1_size(stream, config) -> int:
  return min(int(stream.test_task_ends[0]), config.eval_task1_limit or 10**9)


def compare_curves(curves: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict:
  """Agreement with the reference run's curves: training records (and
  accuracies) bitwise equal or not, and the largest absolute difference of
  each curve."""
  diffs = {k: float(np.max(np.abs(np.asarray(curves[k], np.float64)
                                  - np.asarray(ref[k], np.float64)), initial=0.0))
           for k in sorted(ref) if k in curves and np.shape(curves[k]) == np.shape(ref[k])}
  same_shape = set(diffs) == set(ref) == set(curves)
  bitwise = same_shape and all(np.array_equal(curves[k], ref[k])
                               for k in TRAINING_CURVES if k in ref)
  differs = [np.any(np.asarray(curves[k]) != np.asarray(ref[k]), axis=0)
             for k in ("train_loss", "entropy", "gain") if k in ref and k in diffs]
  first = np.flatnonzero(np.any(differs, axis=0)) if differs else []
  return {"training_bitwise": bool(bitwise),
          # the first iteration (1-based) whose training record differs in any seed
          "first_training_difference": int(first[0]) + 1 if len(first) else None,
          "all_bitwise": bool(same_shape and all(v == 0 for v in diffs.values())),
          "max_abs_diff": max(diffs.values(), default=None) if same_shape else None,
          "max_abs_diff_by_curve": diffs}


def _child_command(args, spec: str, out: Path) -> list[str]:
  cmd = [sys.executable, str(Path(__file__).resolve()), "--benchmark", args.benchmark,
         "--optimizer", args.optimizer, "--seeds", str(args.seeds), "--child", spec,
         "--child-out", str(out), "--compute-dtype", args.compute_dtype]
  for flag, value in (("--data-dir", args.data_dir), ("--iterations-per-task",
                                                       args.iterations_per_task),
                      ("--batch-size", args.batch_size), ("--test-subset", args.test_subset),
                      ("--eval-task1-limit", args.eval_task1_limit),
                      ("--synthetic-size", args.synthetic_size if args.synthetic else None)):
    if value:
      cmd += [flag, str(value)]
  if args.synthetic:
    cmd.append("--synthetic")
  return cmd


def compare(args, rows: Rows) -> list[dict]:
  """Every run of ``--runs`` in its own subprocess, one after another; each
  row compared with the first."""
  num_seeds = int(args.seeds)
  specs = args.runs.split(",")
  fake = jax.default_backend() == "cpu"
  stream, config, net, _ = compare_setup(args)
  rows.header["flops"] = protocol_flops(stream, args.optimizer, config, **net)
  per_seed_iteration = flops_per_iteration(rows.header["flops"], config)
  ref = ref_curves = None
  with tempfile.TemporaryDirectory() as tmp:
    for n, spec in enumerate(specs):
      _, _, devices = parse_run(spec, num_seeds)
      env = dict(os.environ)
      if fake:  # the device count is fixed when JAX starts
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            f" --xla_force_host_platform_device_count={devices}").strip()
        env["JAX_PLATFORMS"] = "cpu"
      elif devices > jax.device_count():
        print(f"{spec}: skipped, {jax.device_count()} devices here", flush=True)
        continue
      out = Path(tmp) / str(n)
      out.mkdir()
      t0 = time.perf_counter()
      proc = subprocess.run(_child_command(args, spec, out), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
      wall = time.perf_counter() - t0
      if proc.returncode != 0:
        raise RuntimeError(f"{spec} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
      row = json.loads((out / "row.json").read_text())
      curves = dict(np.load(out / "curves.npz"))
      if args.json:  # the curves beside the rows, for a closer look
        folder = Path(args.json).with_name(Path(args.json).stem + "_curves")
        folder.mkdir(parents=True, exist_ok=True)
        name = spec.replace(":", "_").replace("@", "_on_")
        np.savez(folder / f"{n}_{name}.npz", **curves)
      if ref is None:
        ref, ref_curves = row, curves
      row.update({
          "process_wall_s": round(wall, 1),
          "run_vs_first": round(row["run_s"] / ref["run_s"], 3),
          "compile_vs_first": round(row["compile_s"] / ref["compile_s"], 3),
          **compare_curves(curves, ref_curves),
          **cost_fields(per_seed_iteration, row["seed_iterations_per_s"], rows.header,
                        config.compute_dtype)})
      rows.add(row)
  return rows.rows


def _mb(n):
  return "—" if n is None else f"{n / 1e6:.1f}"


def _print_compare(rows, args):
  first = rows[0]["run"] if rows else ""
  print(f"\n{args.benchmark}, {args.optimizer}, {rows[0]['seeds'] if rows else '?'} seeds x"
        f" {rows[0]['iterations'] if rows else '?'} iterations, batch"
        f" {rows[0]['batch_size'] if rows else '?'}; ratios against {first}:\n")
  print("| run | devices | runs computed | compile (s) | run (s) | run ÷ first |"
        " seed-iterations/s | GFLOP/s | of peak | device bytes (MB) | peak RSS (MB) |"
        " process (s) | training bitwise | first differing iteration | max abs diff |")
  print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
  for r in rows:
    diff = r["max_abs_diff"]
    print(f"| {r['run']} | {r['devices']} | {r['runs_computed']} | {r['compile_s']} |"
          f" {r['run_s']} | {r['run_vs_first']} | {r['seed_iterations_per_s']} |"
          f" {r.get('achieved_gflop_per_s')} | {fraction_text(r)} |"
          f" {_mb(r['device_bytes'])} | {r['peak_rss_mb']} | {r['process_wall_s']} |"
          f" {'yes' if r['training_bitwise'] else 'no'} |"
          f" {r['first_training_difference'] or '—'} |"
          f" {'—' if diff is None else f'{diff:.2g}'} |")


# --- CLI ---------------------------------------------------------------------


def _apply_sizes(args) -> None:
  """Fills the size flags left unset from the defaults of the chosen mode."""
  kind = sizes_key(args.benchmark)
  if args.compare:
    sizes = COMPARE_SIZES[kind + ("_full" if args.full and kind == "convolutional" else "")]
  elif kind == "convolutional":
    sizes = IMAGE_SIZES["full" if args.full else "cpu"]
  else:
    sizes = {"seeds": "1,5", "repeats": 2}
  for name, value in sizes.items():
    if getattr(args, name, None) is None:
      setattr(args, name, value)
  if args.compare:
    args.runs = args.runs.replace("@S", f"@{args.seeds}")
  if args.repeats is None:
    args.repeats = 2


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--benchmark", choices=benchmark_names(), default="split_mnist",
                      help="a registered benchmark (ngm_jax.benchmarks)")
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--synthetic", action="store_true",
                      help="random data in the shapes of the benchmark's dataset (no dataset"
                           f" needed; for {', '.join(SYNTHETIC)})")
  parser.add_argument("--synthetic-size", default=None,
                      help="TRAIN,TEST images of the synthetic data (default the dataset's)")
  parser.add_argument("--optimizer", default="ngm_sgd")
  parser.add_argument("--full", action="store_true",
                      help="convolutional benchmarks: the protocol's sizes, all modes"
                           " (accelerators)")
  parser.add_argument("--compare", action="store_true",
                      help="compare ways of running (--runs), each in a subprocess")
  parser.add_argument("--runs", default=None,
                      help="--compare: comma-separated loop:seed_axis@devices or python@1"
                           " (@S: one device per seed); the first is the reference")
  parser.add_argument("--iterations-per-task", type=int, default=None,
                      help="--compare and whole runs (MLP): shorten the protocol")
  parser.add_argument("--seeds", default=None, help="comma-separated seed counts")
  parser.add_argument("--modes", default=None,
                      help="convolutional benchmarks: comma-separated loop:seed_axis pairs")
  parser.add_argument("--iterations", type=int, default=None,
                      help="convolutional benchmarks: eval intervals per timing")
  parser.add_argument("--batch-size", type=int, default=None,
                      help="convolutional benchmarks: override the protocol's batch")
  parser.add_argument("--eval-task1-limit", type=int, default=None,
                      help="convolutional benchmarks: Task-1 evaluation on the first N"
                           " images only")
  parser.add_argument("--test-subset", type=int, default=None,
                      help="a fixed random subset of N test images per task")
  parser.add_argument("--data-as", default="argument",
                      help="MLP benchmarks: comma-separated 'argument' (the library's way)"
                           " and/or 'constant' (data compiled into the program)")
  parser.add_argument("--repeats", type=int, default=None,
                      help="timed runs per row, best kept (0: compile and measure memory only)")
  parser.add_argument("--json", default=None,
                      help="also write the rows here (rewritten after every row)")
  parser.add_argument("--compute-dtype", choices=("float32", "bfloat16"), default="float32",
                      help="the dtype the network computes in (TrainConfig.compute_dtype;"
                           " parameters stay float32)")
  parser.add_argument("--profile", default=None, metavar="DIR",
                      help="record a jax.profiler trace of the first row into DIR (open"
                           " DIR/plugins/profile/*/perfetto_trace.json.gz at ui.perfetto.dev,"
                           " or DIR with TensorBoard/XProf) and print its top costs")
  parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    return compare_child(args)
  if args.profile and args.compare:
    parser.error("--profile: not with --compare (its runs are subprocesses); profile one way"
                 " of running without --compare")
  _apply_sizes(args)

  device = jax.devices()[0]
  print(f"{args.benchmark}: {device.platform} ({device.device_kind}), jax {jax.__version__}",
        flush=True)
  header = {"benchmark": args.benchmark, "device": f"{device.platform}: {device.device_kind}",
            "jax": jax.__version__, "optimizer": args.optimizer,
            "synthetic": bool(args.synthetic),
            "command": " ".join(["experiments/bench.py"] + list(sys.argv[1:] if argv is None
                                                                else argv)),
            "settings": {k: v for k, v in vars(args).items()
                         if k not in ("json", "child", "child_out")}}
  header["peaks"] = device_peaks()  # FLOP/s of a matmul: what the rows are rated against
  print("matmul peaks (measured): " + ", ".join(
      f"{k} {v['measured'] / 1e9:.1f} GFLOP/s" for k, v in header["peaks"].items()), flush=True)
  rows = Rows(args.json, header)
  if args.compare:
    compare(args, rows)
  elif sizes_key(args.benchmark) == "mlp":
    bench_runs(args, rows)
  else:
    bench_image(args, rows)
  measure_peaks_again(rows)
  if args.compare:
    _print_compare(rows.rows, args)
  else:
    (_print_runs if sizes_key(args.benchmark) == "mlp" else _print_image)(rows.rows)
  if args.profile:
    costs = top_costs(args.profile)
    rows.header["profile"] = {"folder": args.profile, "top_costs": costs}
    print("\nTop costs of the first row's profile (self times; Python and compiler threads"
          " left out):\n" + format_top_costs(costs), flush=True)
  rows.close()
  return 0


if __name__ == "__main__":
  sys.exit(main())
