"""Benchmark (not a test): the all-task evaluation at several evaluation batch sizes.

    python experiments/eval_batch.py --sizes 500,1000,2500,all --rounds 3

Compiles the evaluation of every task's test set (synthetic Split CIFAR-10:
10,000 test images, the slim ResNet-18, NGM-SGD's initial state) once per
``eval_batch_size`` (``all``: one batch), then times them alternately,
``--rounds`` times each (the order reversed every other round, so that a
shared machine's load falls on all alike), and prints the median and minimum
seconds, the temporaries XLA allocates, and the largest difference of the
per-task accuracies and losses from the first size's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from experiments.bench import synthetic_dataset
from ngm_jax import benchmarks
from ngm_jax.runner import network
from ngm_jax.streams import split_cifar10
from ngm_jax.train import make_train_parts


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="500,1000,2500,all")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--test", type=int, default=10000, help="test images (5 tasks)")
  args = parser.parse_args(argv)
  sizes = [None if s == "all" else int(s) for s in args.sizes.split(",")]
  record = benchmarks.get("split_cifar10")
  stream = split_cifar10(synthetic_dataset("cifar10", 2000, args.test))
  net, _ = network(stream, augment=record.augment)
  compiled, state = {}, None
  for size in sizes:
    config = dataclasses.replace(record.config, iterations_per_task=1, task_eval_every=1,
                                 eval_batch_size=size)
    parts = make_train_parts(stream, "ngm_sgd", config, **net, unroll=True)
    data = parts.data
    if state is None:
      state = jax.jit(lambda k, p=parts, d=data: p.init(k, d))(jax.random.key(0))
    t0 = time.perf_counter()
    compiled[size] = jax.jit(lambda s, p=parts, d=data: p.task_eval(s, d)).lower(state).compile()
    print(f"eval_batch_size {size}: compiled in {time.perf_counter() - t0:.1f} s, temporaries"
          f" {compiled[size].memory_analysis().temp_size_in_bytes / 1e6:.0f} MB", flush=True)
  reference = jax.device_get(compiled[sizes[0]](state))
  times = {size: [] for size in sizes}
  for r in range(args.rounds):
    for size in (sizes if r % 2 == 0 else sizes[::-1]):
      t0 = time.perf_counter()
      out = jax.block_until_ready(compiled[size](state))
      times[size].append(time.perf_counter() - t0)
      if r == 0:
        out = jax.device_get(out)
        print(f"eval_batch_size {size}: max |accuracy - first's|"
              f" {np.max(np.abs(out['task_acc'] - reference['task_acc'])):.3g}, max |loss -"
              f" first's| {np.max(np.abs(out['task_loss'] - reference['task_loss'])):.3g}",
              flush=True)
  print(json.dumps({str(s): {"median_s": round(statistics.median(v), 3),
                             "min_s": round(min(v), 3), "all_s": [round(x, 2) for x in v]}
                    for s, v in times.items()}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
