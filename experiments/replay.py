"""The stability gap under experience replay: NGM-SGD against the baselines.

    python -m experiments.replay --benchmark split_mnist --data-dir DIR --per-class 50 \
        [--seeds 5] [--out results/analysis/replay_split_mnist]

Instead of incremental joint training's access to every seen task, each
minibatch is half current task, half replay from a bounded buffer of
``--per-class`` examples per class filled by reservoir sampling
(:func:`ngm_jax.replay.replay_sampler`; during task 1 nothing is replayed
and the whole batch is from task 1). Everything else is the benchmark's
config (Split MNIST: 5 tasks x 200 iterations, batch 128, lr 0.01, γ 0.9,
g0 1, η 0.4, Task 1 evaluated on all its test images every iteration).
Writes ``OUT/``: curves.npz, run.json, log.jsonl, and, through
:func:`ngm_jax.results.write_report`, metrics.json, table.md and figure.png;
``ngm-jax report OUT`` re-makes the last three. Five
optimizers x five seeds took 19 minutes on two busy CPU cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

if __package__ in (None, ""):  # run as a script: make the repo importable
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from experiments import configs
from ngm_jax import benchmarks
from ngm_jax.cli.args import TRAIN_FLAGS, comma_separated, flag_of
from ngm_jax.cli.experiment import load_experiment
from ngm_jax.data import DataUnavailableError
from ngm_jax.optimizers import OPTIMIZER_NAMES
from ngm_jax.replay import replay_sampler
from ngm_jax.results import Result
from ngm_jax.runner import run_benchmark
from ngm_jax.streams import TaskStream
from ngm_jax.train import TrainConfig


def run_replay(
    stream: TaskStream,
    optimizers: Sequence[str],
    train_config: TrainConfig,
    per_class: int,
    num_seeds: int,
    out: str | Path | None = None,
    *,
    augment: Any = None,
    show_progress: bool = True,
    overwrite: bool = False,
    extra_meta: Mapping[str, Any] | None = None,
) -> Result:
  """Trains each optimizer with replay on seeds ``0..num_seeds-1``.

  Returns the :class:`ngm_jax.results.Result` of
  :func:`ngm_jax.run_benchmark` (its meta has the ``sampler``); with ``out``
  its files are written too, and ``benchmark_label`` in run.json names the replay
  setting, which the table and figure titles show.

  Args:
    stream: the benchmark.
    optimizers: names from :data:`ngm_jax.optimizers.OPTIMIZER_NAMES`.
    train_config: the training hyperparameters, shared by every optimizer.
    per_class: M, buffer slots per class.
    num_seeds: seeds 0..num_seeds-1, vmapped in one program per optimizer.
    out: output folder, or None to write nothing.
    augment: the benchmark's augmentation, or None.
    show_progress: a progress bar per optimizer.
    overwrite: replace an earlier run in ``out``.
    extra_meta: recorded in ``run.json``.

  Raises:
    ValueError: bad seeds or ``per_class``, an unknown optimizer, or an
      existing run without ``overwrite``.
  """
  if per_class < 1:
    raise ValueError(f"--per-class {per_class}: need at least 1 slot per class.")
  sampler = replay_sampler(stream, train_config.batch_size,
                           train_config.iterations_per_task, per_class)
  batch = train_config.batch_size
  extra_meta = dict(extra_meta or {})
  name = (benchmarks.get(stream.name).display_name if stream.name in benchmarks.BENCHMARKS
          else stream.name)
  meta = {
      # The run's title: run.json's "benchmark" stays the stream's registered name.
      "benchmark_label": extra_meta.pop("benchmark_label", None)
                         or f"{name} with replay ({per_class} per class)",
      "stream": stream.name,
      "sampler": {
          "kind": "replay",
          "per_class": per_class,
          "buffer_size": stream.num_classes * per_class,
          "current_per_batch": batch - batch // 2,
          "replay_per_batch": batch // 2,
          "rule": "class-balanced reservoir (Algorithm R per class) over the current-task"
                  " rows the sampler draws; the replay half is drawn uniformly from buffer"
                  " entries of earlier tasks, and from the current task while there are"
                  " none (all of task 1)",
      },
      **extra_meta,
  }
  return run_benchmark(stream, optimizers, train_config, num_seeds=num_seeds, augment=augment,
                       out=out, sampler=sampler, show_progress=show_progress,
                       overwrite=overwrite, extra_meta=meta)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m experiments.replay", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--benchmark", default="split_mnist",
                      help=f"one of: {', '.join(configs.available())}")
  parser.add_argument("--data-dir", default=None,
                      help="folder with the dataset's standard files (offline)")
  parser.add_argument("--per-class", type=int, required=True,
                      help="replay buffer slots per class (e.g. 50 or 200)")
  parser.add_argument("--seeds", type=int, default=None,
                      help="number of seeds 0..N-1 (default: the config's, 5)")
  parser.add_argument("--optimizers", default=None,
                      type=comma_separated(str, "--optimizers", choices=OPTIMIZER_NAMES,
                                           noun="optimizer"),
                      help="comma-separated names (default: the config's set)")
  parser.add_argument("--out", default=None,
                      help="output folder (default: results/analysis/replay_<benchmark>)")
  parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")
  for field, kind in TRAIN_FLAGS.items():
    parser.add_argument(flag_of(field), type=kind, default=None,
                        help=f"override the config's {field}")
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  try:
    config = configs.get_config(args.benchmark)
    if args.per_class < 1:  # checked before the data are loaded
      raise ValueError(f"--per-class {args.per_class}: must be an integer >= 1.")
    experiment = load_experiment(args, config)
    out = args.out or f"results/analysis/replay_{args.benchmark}"
    run_replay(
        experiment.stream, args.optimizers or config.optimizers, experiment.train,
        args.per_class, experiment.num_seeds, out, augment=experiment.augment,
        show_progress=not args.no_progress, overwrite=args.overwrite,
        extra_meta=experiment.meta)
  except (ValueError, DataUnavailableError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"Wrote {out}/: curves.npz, run.json, metrics.json, table.md, figure.png")
  return 0


if __name__ == "__main__":
  sys.exit(main())
