"""FLOPs of the protocol's pieces per benchmark network, and what a saved run achieved.

    python -m experiments.flops --data-dir DIR --run docs/runs/comparison/split_mnist \\
        --json docs/bench/flops_cpu.json
    python -m experiments.flops --benchmarks split_cifar10 --synthetic \\
        --json docs/bench/flops_cifar_cpu.json

For each benchmark at its protocol's sizes (its registry network): XLA's FLOP count of one
training step, one Task-1 evaluation and one all-task evaluation
(:func:`ngm_jax.cost.protocol_flops`, checked against a count by hand in
``tests/test_cost.py``). The device's fp32 peak is measured with a square
matmul; with ``--run``, the FLOP/s each optimizer of that saved run achieved
(its recorded training time against the FLOPs its schedule implies) and the
fraction of the measured peak.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import jax

from experiments.bench import synthetic_dataset
from ngm_jax import benchmarks
from ngm_jax.cost import matmul_peak, protocol_flops
from ngm_jax.results import load_result
from ngm_jax.runner import network
from ngm_jax.train import TrainConfig


def achieved(run: Path, per_benchmark: dict) -> dict:
  """FLOP/s each optimizer of the saved run in ``run`` achieved while training."""
  result = load_result(run)
  meta, train = result.meta, result.meta["train"]
  flops = per_benchmark[meta["benchmark"]]
  total_it = train["iterations_per_task"] * meta["num_tasks"]
  out = {}
  for label, t in meta["timings"].items():
    per_seed = (total_it * flops["train_step"] + total_it / train["eval_every"]
                * flops["task1_eval"] * meta["task1_eval_size"] / flops["task1_images"]
                + total_it / train["task_eval_every"] * flops["all_tasks_eval"])
    out[label] = {"flops": per_seed * len(meta["seeds"]), "run_s": t["run_s"],
                  "flop_per_s": per_seed * len(meta["seeds"]) / t["run_s"]}
  return out


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--benchmarks", default="split_mnist,rotated_mnist,permuted_mnist")
  parser.add_argument("--synthetic", action="store_true",
                      help="random data in the shapes and sizes of each benchmark's dataset"
                           " (the counts do not depend on pixel values)")
  parser.add_argument("--run", default=None, help="a saved run folder to rate")
  parser.add_argument("--json", default=None)
  args = parser.parse_args(argv)
  rows: dict = {"device": str(jax.devices()[0].device_kind), "benchmarks": {}}
  for name in args.benchmarks.split(","):
    record = benchmarks.get(name)
    options = {"train_per_task": 1000} if name == "permuted_mnist" else {}
    if args.synthetic:
      stream = record.build(synthetic_dataset(record.dataset), **options)
    else:
      stream = benchmarks.load_benchmark(name, args.data_dir, **options)
    config: TrainConfig = record.config
    net, _ = network(stream, augment=record.augment)  # the registry's network
    counts = protocol_flops(stream, "ngm_sgd", config, **net)
    counts["task1_images"] = int(stream.test_task_ends[0])
    counts["batch_size"] = config.batch_size
    counts["test_images"] = int(len(stream.test_labels))
    rows["benchmarks"][name] = counts
    print(f"{name}: train step {counts['train_step'] / 1e6:.1f} MFLOP (batch"
          f" {config.batch_size}), Task-1 evaluation {counts['task1_eval'] / 1e6:.1f} MFLOP"
          f" ({counts['task1_images']} images), all tasks {counts['all_tasks_eval'] / 1e6:.1f}"
          f" MFLOP ({counts['test_images']} images)", flush=True)
  peak = matmul_peak()
  rows["fp32_matmul_peak_flop_per_s"] = peak
  print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s", flush=True)
  if args.run:
    rated = achieved(Path(args.run), rows["benchmarks"])
    for label, r in rated.items():
      r["fraction_of_peak"] = r["flop_per_s"] / peak
      print(f"  {label}: {r['flop_per_s'] / 1e9:.2f} GFLOP/s ({100 * r['fraction_of_peak']:.1f} %"
            " of the matmul peak)", flush=True)
    rows["run"] = {"folder": args.run, "optimizers": rated}
  if args.json:
    Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
