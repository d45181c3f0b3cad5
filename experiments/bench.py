"""Benchmark (not a test): training speed of the protocols, and of the ways to run them.

Split MNIST (the MLP), the full protocol, whole runs::

    python experiments/bench.py --data-dir ../shared/data/mnist [--json F]

For one seed and for five vmapped seeds: compile ``jax.jit(jax.vmap(train))``
(timed apart), then time whole runs (5 tasks × 200 iterations, batch 128,
Task-1 test evaluation after every iteration, every task's test set every 10)
and report iterations per second. A second row per seed count evaluates only
at task ends, to show what the per-iteration evaluation costs.

Split CIFAR-10 (the slim ResNet-18), a reduced iteration count::

    python experiments/bench.py --benchmark split_cifar10 [--data-dir DIR | --synthetic]

Times one eval interval (one training step at batch 256 with on-device
augmentation, then the Task-1 evaluation on its 2,000 test images) and one
evaluation of every task's test set, for each way of running the loop
(``scan``: ``--iterations`` intervals in a ``lax.scan``; ``chunked``: one
compiled, unrolled interval called from Python) and of running the seeds
(``vmap``, ``lax.map``, or one seed's program called per seed from Python,
``sequential``), for one and for five seeds. The protocol's
iterations per second are then ``1 / (t_interval + t_task_eval / 20)`` (the
per-task evaluation runs every 20 iterations). ``--synthetic`` uses random
CIFAR-shaped data of the real sizes (50,000 train, 10,000 test images), for
machines without the dataset; the timing does not depend on pixel values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from experiments import configs
from ngm_jax.benchmarks import get as get_benchmark
from ngm_jax.benchmarks import load_benchmark
from ngm_jax.data import ImageDataset
from ngm_jax.runner import network
from ngm_jax.streams import split_cifar10, subsample_test
from ngm_jax.train import make_train, make_train_parts, seed_keys


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
      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      **_memory(compiled),
      "eval_every": train_config.eval_every,
      "iterations": iterations,
      "compile_s": round(compile_s, 2),
      "run_s": round(best, 2) if best else None,
      "iterations_per_s": rate(iterations),
      "seed_iterations_per_s": rate(num_seeds * iterations),
  }


def bench_mnist(args) -> list[dict]:
  config = configs.get_config("split_mnist").train
  no_eval = dataclasses.replace(config, eval_every=config.iterations_per_task,
                                task_eval_every=config.iterations_per_task)
  stream = load_benchmark("split_mnist", args.data_dir)
  rows = []
  for num_seeds in (int(s) for s in args.seeds.split(",")):
    for cfg in (config, no_eval):
      for data_as in args.data_as.split(","):
        row = time_protocol(stream, cfg, args.optimizer, num_seeds, args.repeats, data_as)
        rows.append(row)
        print(json.dumps(row), flush=True)
  print("\n| seeds | data as | Task-1 eval every | compile (s) | run (s) | iterations/s |"
        " seed-iterations/s | arguments (MB) | temporaries (MB) | peak RSS (MB) |")
  print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
  for r in rows:
    print(f"| {r['seeds']} | {r['data_as']} | {r['eval_every']} | {r['compile_s']} |"
          f" {r['run_s']} | {r['iterations_per_s']} | {r['seed_iterations_per_s']} |"
          f" {r.get('argument_mb')} | {r.get('temp_mb')} | {r['peak_rss_mb']} |")
  return rows


def synthetic_cifar10(seed: int = 0) -> ImageDataset:
  """Random uint8 images and labels with CIFAR-10's shapes and sizes."""
  rng = np.random.default_rng(seed)
  return ImageDataset(
      rng.integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8),
      np.repeat(np.arange(10, dtype=np.int32), 5000),
      rng.integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8),
      np.repeat(np.arange(10, dtype=np.int32), 1000),
  )


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


def bench_image(args) -> list[dict]:
  if args.synthetic:
    stream, data_note = split_cifar10(synthetic_cifar10()), "synthetic CIFAR-shaped data"
  else:
    stream, data_note = load_benchmark("split_cifar10", args.data_dir), "CIFAR-10"
  if args.test_subset:
    stream = subsample_test(stream, args.test_subset)
  config = configs.get_config("split_cifar10")
  overrides = {k: v for k, v in (("batch_size", args.batch_size),
                                 ("eval_task1_limit", args.eval_task1_limit)) if v}
  train_config = dataclasses.replace(config.train, iterations_per_task=1, task_eval_every=1,
                                     **overrides)
  record = get_benchmark("split_cifar10")
  net, _ = network(stream, augment=record.augment if config.augment else None)
  rows = []
  modes = [m.split(":") for m in args.modes.split(",")]
  for num_seeds in (int(s) for s in args.seeds.split(",")):
    keys = seed_keys(num_seeds)
    for loop, seed_axis in modes:
      if num_seeds == 1 and seed_axis == "map":
        continue  # one seed: lax.map is the sequential program inside a loop
      parts = make_train_parts(stream, args.optimizer, train_config, **net,
                               unroll=(loop == "chunked"))
      compile_s, t_interval, t_task_eval = time_image_mode(
          parts, keys, loop, seed_axis, args.iterations, args.repeats)
      per_iteration = t_interval + t_task_eval / config.train.task_eval_every
      row = {"seeds": num_seeds, "loop": loop, "seed_axis": seed_axis,
             "compile_s": round(compile_s, 1), "interval_s": round(t_interval, 3),
             "task_eval_s": round(t_task_eval, 3),
             "iterations_per_s": round(1 / per_iteration, 4),
             "seed_iterations_per_s": round(num_seeds / per_iteration, 4)}
      rows.append(row)
      print(json.dumps(row), flush=True)
  print(f"\nsplit_cifar10 ({data_note}), {args.optimizer}, batch"
        f" {train_config.batch_size}, Task-1 evaluation on"
        f" {min(int(stream.test_task_ends[0]), train_config.eval_task1_limit or 10**9)}"
        " images every iteration, all"
        f" {len(stream.test_labels)} test images every {config.train.task_eval_every};"
        f" best of {args.repeats}, {args.iterations} intervals per timing:\n")
  print("| seeds | loop | seeds run by | compile (s) | s / interval | s / all-task eval |"
        " iterations/s | seed-iterations/s |")
  print("|---:|---|---|---:|---:|---:|---:|---:|")
  for r in rows:
    print(f"| {r['seeds']} | {r['loop']} | {r['seed_axis']} | {r['compile_s']} |"
          f" {r['interval_s']} | {r['task_eval_s']} | {r['iterations_per_s']} |"
          f" {r['seed_iterations_per_s']} |")
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--benchmark", choices=("split_mnist", "split_cifar10"),
                      default="split_mnist")
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--synthetic", action="store_true",
                      help="split_cifar10 on random CIFAR-shaped data (no dataset needed)")
  parser.add_argument("--optimizer", default="ngm_sgd")
  parser.add_argument("--seeds", default="1,5", help="comma-separated seed counts")
  parser.add_argument("--modes", default="scan:vmap,chunked:vmap,scan:map,chunked:map,"
                      "scan:sequential,chunked:sequential",
                      help="split_cifar10: comma-separated loop:seed_axis pairs")
  parser.add_argument("--iterations", type=int, default=3,
                      help="split_cifar10: eval intervals per timing")
  parser.add_argument("--batch-size", type=int, default=None,
                      help="split_cifar10: override the protocol's batch 256 (smoke tests)")
  parser.add_argument("--eval-task1-limit", type=int, default=None,
                      help="split_cifar10: Task-1 evaluation on the first N images only")
  parser.add_argument("--test-subset", type=int, default=None,
                      help="split_cifar10: a fixed random subset of N test images per task")
  parser.add_argument("--data-as", default="argument",
                      help="split_mnist: comma-separated 'argument' (the library's way)"
                           " and/or 'constant' (data compiled into the program)")
  parser.add_argument("--repeats", type=int, default=2,
                      help="timed runs per row, best kept (0: compile and measure memory only)")
  parser.add_argument("--json", default=None, help="also write the rows here")
  args = parser.parse_args(argv)

  device = jax.devices()[0]
  print(f"{args.benchmark}: {device.platform} ({device.device_kind}), jax {jax.__version__}",
        flush=True)
  rows = bench_mnist(args) if args.benchmark == "split_mnist" else bench_image(args)
  if args.json:
    Path(args.json).write_text(json.dumps(
        {"benchmark": args.benchmark, "device": f"{device.platform}: {device.device_kind}",
         "jax": jax.__version__, "optimizer": args.optimizer,
         "synthetic": bool(args.synthetic), "rows": rows}, indent=2) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
