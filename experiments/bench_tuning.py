"""One search as one program against the same runs one by one (issue 17, item 6).

    python -m experiments.bench_tuning --data-dir DIR --json docs/bench/tuning_cpu.json

A search of ``--budget`` SGD learning rates × ``--search-seeds`` seeds on Split
MNIST's validation split, timed two ways in this process: (a) the tuner's
way, one :func:`ngm_jax.runner.run_benchmark` variant with every
configuration × seed on the runs axis (``optax.inject_hyperparams``, one
compiled program); (b) every configuration × seed as its own run (its own
optimizer, compiled and run alone), what a Python loop over a grid does.
Both use the same schedule and report compile and run seconds; the Task-1
curves of (a) and (b) are compared run by run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ngm_jax import benchmarks
from ngm_jax.runner import run_benchmark
from ngm_jax.search import builtin_tunable, configurations
from ngm_jax.validation import validation_split


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--budget", type=int, default=16)
  parser.add_argument("--search-seeds", type=int, default=3)
  parser.add_argument("--iterations-per-task", type=int, default=50)
  parser.add_argument("--json", default=None)
  args = parser.parse_args(argv)
  stream = benchmarks.load_benchmark("split_mnist", args.data_dir)
  config = dataclasses.replace(benchmarks.get("split_mnist").config,
                               iterations_per_task=args.iterations_per_task, eval_every=5,
                               task_eval_every=args.iterations_per_task // 2)
  search, _ = validation_split(stream)
  tunable = builtin_tunable("sgd", config)
  trials = configurations(tunable.space, args.budget)
  lrs = np.repeat([t["learning_rate"] for t in trials], args.search_seeds).astype(np.float32)
  seeds = list(range(args.search_seeds)) * args.budget
  quiet = dict(show_progress=False, checkpoint_every_s=None)

  t0 = time.perf_counter()
  one = run_benchmark(search, {"sgd": tunable.injected()}, config, seeds=seeds,
                      seed_hyperparams={"sgd": {"learning_rate": lrs}}, **quiet)
  one_wall = time.perf_counter() - t0
  rows = {"one_program": {"wall_s": round(one_wall, 2), **one.meta["timings"]["sgd"]}}
  print(f"one program, {len(seeds)} runs: {one_wall:.1f} s", flush=True)

  t0 = time.perf_counter()
  compile_s = run_s = 0.0
  max_diff = 0.0
  for r, (lr, seed) in enumerate(zip(lrs, seeds)):
    alone = run_benchmark(search, {"sgd": tunable.optimizer({"learning_rate": float(lr)})},
                          config, seeds=[seed], **quiet)
    compile_s += alone.meta["timings"]["sgd"]["compile_s"]
    run_s += alone.meta["timings"]["sgd"]["run_s"]
    diff = np.abs(alone.curves["sgd"]["task1_acc"][0] - one.curves["sgd"]["task1_acc"][r])
    max_diff = max(max_diff, float(diff.max()))
  loop_wall = time.perf_counter() - t0
  rows["separate_runs"] = {"wall_s": round(loop_wall, 2), "compile_s": round(compile_s, 2),
                           "run_s": round(run_s, 2), "runs": len(seeds)}
  rows["max_abs_task1_acc_difference"] = max_diff
  rows["schedule"] = dataclasses.asdict(config)
  rows["ratio_separate_over_one"] = round(loop_wall / one_wall, 2)
  print(f"{len(seeds)} separate runs: {loop_wall:.1f} s ({loop_wall / one_wall:.2f}x);"
        f" largest Task-1 accuracy difference {max_diff:.4f}", flush=True)
  if args.json:
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
