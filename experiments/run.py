"""Command-line entry point: run a benchmark, save curves, tabulate, plot.

    python -m experiments.run run --benchmark split_mnist --data-dir DIR
    python -m experiments.run report results/split_mnist

``run`` trains every optimizer on every seed (per optimizer, the seeds are
one compiled program), saving curves after each optimizer, then writes the
metrics, the table and the figure. ``report`` re-makes metrics, table and
figure from the saved curves.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Sequence

from experiments import configs
from ngm_jax.benchmarks import model_setup
from ngm_jax.data import DataUnavailableError
from ngm_jax.experiment import report, run_benchmark
from ngm_jax.optimizers import OPTIMIZER_NAMES
from ngm_jax.streams import load_benchmark, subsample_test
from ngm_jax.train import LOOPS, SEED_AXES

# CLI flag → TrainConfig field.
_TRAIN_FLAGS = {
    "iterations_per_task": int,
    "batch_size": int,
    "learning_rate": float,
    "gamma": float,
    "g0": float,
    "eta": float,
    "const_gain": float,
    "eval_every": int,
    "task_eval_every": int,
    "eval_task1_limit": int,
    "eval_batch_size": int,
}
# Optimizers whose per-seed state comes from an NGM-SGD run (experiments/ablations.py).
_NEEDS_NGM_RUN = {"replayed_lr_sgd"}
_CLI_OPTIMIZERS = tuple(n for n in OPTIMIZER_NAMES if n not in _NEEDS_NGM_RUN)
# CLI flag → benchmark option (ngm_jax.streams.benchmark_options).
_BENCHMARK_FLAGS = {"num_tasks": int, "classes_per_task": int}
# Benchmark options whose flag has another name: option → (flag, choices).
_NAMED_BENCHMARK_FLAGS = {
    "interpolation": ("--rotation-interpolation", ("nearest", "bilinear")),
}


def _parse_optimizers(text: str) -> tuple[str, ...]:
  if text == "all":
    return ()  # the config's set
  names = tuple(n.strip() for n in text.split(",") if n.strip())
  if _NEEDS_NGM_RUN & set(names):
    raise argparse.ArgumentTypeError(
        "replayed_lr_sgd replays each seed's NGM-SGD gain, which this command does not"
        " have; run it with: python experiments/ablations.py --benchmark B --variants"
        " replayed_lr_sgd")
  unknown = [n for n in names if n not in _CLI_OPTIMIZERS]
  if unknown or not names:
    raise argparse.ArgumentTypeError(
        f"unknown optimizer(s) {unknown or text!r}; choose from"
        f" {', '.join(_CLI_OPTIMIZERS)} (comma-separated) or 'all'."
    )
  return names


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m experiments.run", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  run = sub.add_parser("run", help="train, save curves, write metrics, table and figure")
  run.add_argument("--benchmark", required=True,
                   help=f"one of: {', '.join(configs.available())}")
  run.add_argument("--optimizers", type=_parse_optimizers, default=None,
                   help="comma-separated names, or 'all' for the config's set "
                        f"(known: {', '.join(_CLI_OPTIMIZERS)})")
  run.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 (default: the config's, 5)")
  run.add_argument("--out", default=None, help="output folder (default: results/<benchmark>)")
  run.add_argument("--data-dir", default=None,
                   help="folder with the dataset's standard files (offline); default $NGM_JAX_DATA_DIR, else tensorflow-datasets")
  run.add_argument("--test-subset", type=int, default=None, metavar="N",
                   help="evaluate on a fixed random subset of N test images per task")
  run.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="on-device crop+flip augmentation (default: the config's)")
  run.add_argument("--loop", choices=("auto",) + LOOPS, default="auto",
                   help="one scanned program, or compiled chunks driven from Python (auto: by backend and model)")
  run.add_argument("--seed-axis", choices=("auto",) + SEED_AXES, default="auto",
                   help="seeds vmapped, or one after another in the program (auto: by backend and model)")
  run.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
  run.add_argument("--no-progress", action="store_true", help="no progress bar")
  for flag, kind in {**_TRAIN_FLAGS, **_BENCHMARK_FLAGS}.items():
    run.add_argument("--" + flag.replace("_", "-"), type=kind, default=None,
                     help=f"override the config's {flag}")
  for option, (flag, choices) in _NAMED_BENCHMARK_FLAGS.items():
    run.add_argument(flag, dest=option, choices=choices, default=None,
                     help=f"benchmark option {option} (rotated benchmarks; default: the config's)")
  report_cmd = sub.add_parser("report", help="re-make metrics, table and figure from saved curves")
  report_cmd.add_argument("out", help="a run's output folder")
  return parser


def run(args: argparse.Namespace):
  config = configs.get_config(args.benchmark)
  num_seeds = config.seeds if args.seeds is None else args.seeds
  if num_seeds < 1:
    raise ValueError(f"--seeds {num_seeds}: need at least 1 seed.")
  overrides = {f: getattr(args, f) for f in _TRAIN_FLAGS if getattr(args, f) is not None}
  train_config = dataclasses.replace(config.train, **overrides)
  options = {**config.options,
             **{f: getattr(args, f) for f in (*_BENCHMARK_FLAGS, *_NAMED_BENCHMARK_FLAGS)
                if getattr(args, f) is not None}}
  subset = args.test_subset if args.test_subset is not None else config.test_subset_per_task
  augment = config.augment if args.augment is None else args.augment
  print(f"Loading {args.benchmark} ...", flush=True)
  stream = load_benchmark(args.benchmark, args.data_dir, **options)
  if subset:
    stream = subsample_test(stream, subset)
  out = run_benchmark(
      stream, args.optimizers or config.optimizers, train_config,
      num_seeds,
      args.out or f"results/{args.benchmark}",
      setup=model_setup(stream, augment=augment), loop=args.loop,
      seed_axis=args.seed_axis, show_progress=not args.no_progress,
      overwrite=args.overwrite,
      extra_meta={"benchmark_options": options, "test_subset_per_task": subset,
                  "test_subset_seed": 0 if subset else None})
  print(f"Wrote {out}/: curves.npz, run.json, metrics.json, table.md, figure.png")


def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  try:
    if args.command == "run":
      run(args)
    else:
      report(args.out)
      print(f"Re-made {args.out}/metrics.json, table.md, figure.png")
  except (ValueError, DataUnavailableError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
