"""The fair comparison: every method tuned at the same budget on validation data.

    python -m experiments.comparison --benchmark split_mnist --data-dir DIR \\
        --budget 6 --search-seeds 2 --seeds 5 --out results/comparison/split_mnist

For each method (NGM-SGD, SGD, momentum SGD, Adam, the constant-gain control
and the mitigations EMA-SGD and warm-up SGD) ``budget`` configurations of its
search space are trained on a validation split (10 % of each task's training
data, seed 0), ``search_seeds`` seeds each, with a coarser evaluation grid
during the search (Task 1 every 5 iterations); the best by validation WC-ACC over all tasks (De Lange et al.)
is trained again with fresh seeds at the benchmark's protocol and tested
(:func:`ngm_jax.tuning.tune`). ``--resume`` continues a stopped comparison.
Time here (2 CPU cores, shared): see docs/comparison.md.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Sequence

from ngm_jax import benchmarks
from ngm_jax.cli.args import comma_separated
from ngm_jax.streams import subsample_test
from ngm_jax.tuning import OBJECTIVES, tune

METHODS = ("ngm_sgd", "sgd", "msgd", "adam", "g0_sgd", "ema_sgd", "warmup_sgd")


def search_schedule(config, eval_every: int = 5, task_eval_every: int = 50):
  """``config`` with a coarser evaluation grid for the search, where it fits
  the task length (else the config's own)."""
  if config.iterations_per_task % task_eval_every or task_eval_every % eval_every:
    return config
  return dataclasses.replace(config, eval_every=eval_every, task_eval_every=task_eval_every)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--benchmark", required=True, choices=benchmarks.names())
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--methods", type=comma_separated(str, "--methods"), default=METHODS)
  parser.add_argument("--budget", type=int, default=6)
  parser.add_argument("--search-seeds", type=int, default=2)
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--objective", default="wc_acc_all", choices=tuple(OBJECTIVES))
  parser.add_argument("--iterations-per-task", type=int, default=None,
                      help="override the config's iterations_per_task (stated in the results)")
  parser.add_argument("--train-per-task", type=int, default=None,
                      help="permuted_mnist: training images per task (default: all)")
  parser.add_argument("--eval-task1-limit", type=int, default=None,
                      help="evaluate Task 1 on its first N test images (as the docs' Rotated"
                           " MNIST runs: 2000)")
  parser.add_argument("--task-eval-every", type=int, default=None,
                      help="override the config's task_eval_every (short reduced-size runs)")
  parser.add_argument("--synthetic", default=None, metavar="TRAIN,TEST",
                      help="random data of the benchmark's shapes, TRAIN and TEST images in all"
                           " (the image benchmarks' reduced-size rehearsal), instead of --data-dir")
  parser.add_argument("--test-subset", type=int, default=None, metavar="N",
                      help="final runs: evaluate on a fixed random subset of N test images per"
                           " task (seed 0; never read by the search)")
  parser.add_argument("--batch-size", type=int, default=None,
                      help="override the config's batch_size (reduced-size rehearsals)")
  parser.add_argument("--out", required=True)
  parser.add_argument("--resume", action="store_true")
  parser.add_argument("--overwrite", action="store_true")
  args = parser.parse_args(argv)
  options = {"train_per_task": args.train_per_task} if args.train_per_task else {}
  record = benchmarks.get(args.benchmark)
  if args.synthetic:
    from experiments.bench import synthetic_dataset  # pylint: disable=import-outside-toplevel
    train, test = (int(n) for n in args.synthetic.split(","))
    stream = record.build(synthetic_dataset(record.dataset, train, test),
                          **record.check_options(options))
  else:
    stream = benchmarks.load_benchmark(args.benchmark, args.data_dir, **options)
  if args.test_subset:
    stream = subsample_test(stream, args.test_subset)
  overrides = {"iterations_per_task": args.iterations_per_task, "batch_size": args.batch_size,
               "task_eval_every": args.task_eval_every, "eval_task1_limit": args.eval_task1_limit}
  config = dataclasses.replace(record.config,
                               **{k: v for k, v in overrides.items() if v is not None})
  tune(stream, list(args.methods), config,
       budget=args.budget, search_seeds=args.search_seeds, num_seeds=args.seeds,
       objective=args.objective, search_config=search_schedule(config), out=args.out,
       resume=args.resume, overwrite=args.overwrite)
  print(f"Wrote {args.out}: tuning.json, search/, table.md, figure.png", flush=True)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
