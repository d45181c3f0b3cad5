"""Benchmark (not a test): speed of the full Split MNIST protocol.

    python experiments/bench.py --data-dir ../shared/data/mnist [--json bench.json]

For one seed and for S vmapped seeds, compiles ``jax.jit(jax.vmap(train))``
(timed apart), then times whole runs of the protocol (5 tasks × 200
iterations, batch 128, Task-1 test evaluation after every iteration, every
task's test set every 10) and reports iterations per second. A second row per
seed count turns the per-iteration evaluation off (evaluation only every 200
iterations), to show what the evaluation costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # pylint: disable=g-import-not-at-top

from experiments import configs
from ngm_jax.streams import load_benchmark
from ngm_jax.train import make_train, seed_keys


def time_protocol(stream, train_config, optimizer, num_seeds, repeats):
  """Compile time and best-of-``repeats`` run time of one vmapped program."""
  train = make_train(stream, optimizer, train_config)
  keys = seed_keys(num_seeds)
  t0 = time.perf_counter()
  compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
  compile_s = time.perf_counter() - t0
  runs = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(keys))
    runs.append(time.perf_counter() - t0)
  iterations = stream.num_tasks * train_config.iterations_per_task
  best = min(runs)
  return {
      "seeds": num_seeds,
      "eval_every": train_config.eval_every,
      "iterations": iterations,
      "compile_s": round(compile_s, 2),
      "run_s": round(best, 2),
      "iterations_per_s": round(iterations / best, 1),
      "seed_iterations_per_s": round(num_seeds * iterations / best, 1),
  }


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--optimizer", default="ngm_sgd")
  parser.add_argument("--seeds", default="1,5", help="comma-separated seed counts")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--json", default=None, help="also write the rows here")
  args = parser.parse_args(argv)

  config = configs.get_config("split_mnist").train
  no_eval = dataclasses.replace(config, eval_every=config.iterations_per_task,
                                task_eval_every=config.iterations_per_task)
  stream = load_benchmark("split_mnist", args.data_dir)
  device = jax.devices()[0]
  rows = []
  for num_seeds in (int(s) for s in args.seeds.split(",")):
    for cfg in (config, no_eval):
      row = time_protocol(stream, cfg, args.optimizer, num_seeds, args.repeats)
      rows.append(row)
      print(json.dumps(row), flush=True)

  print(f"\nSplit MNIST, {args.optimizer}, {device.platform} ({device.device_kind}),"
        f" jax {jax.__version__}, best of {args.repeats} runs:\n")
  print("| seeds | Task-1 eval every | compile (s) | run (s) | iterations/s | seed-iterations/s |")
  print("|---:|---:|---:|---:|---:|---:|")
  for r in rows:
    print(f"| {r['seeds']} | {r['eval_every']} | {r['compile_s']} | {r['run_s']} |"
          f" {r['iterations_per_s']} | {r['seed_iterations_per_s']} |")
  if args.json:
    Path(args.json).write_text(json.dumps(
        {"device": f"{device.platform}: {device.device_kind}", "jax": jax.__version__,
         "optimizer": args.optimizer, "rows": rows}, indent=2) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
