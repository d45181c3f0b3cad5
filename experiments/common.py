"""What every experiment command shares: its flags, and loading the experiment.

:func:`add_experiment_flags` adds the benchmark, data, seed and training
flags; :func:`load_experiment` turns them into the stream, the training
config, the network and the record of what was chosen, checking every value
before any data are read.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, NamedTuple

from experiments import configs
from ngm_jax import benchmarks
from ngm_jax.streams import TaskStream, subsample_test
from ngm_jax.train import TrainConfig

__all__ = ["TRAIN_FLAGS", "BENCHMARK_FLAGS", "Experiment", "add_experiment_flags",
           "load_experiment", "train_config_from"]

# CLI flag → TrainConfig field.
TRAIN_FLAGS = {
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
# CLI flag → benchmark option (ngm_jax.benchmarks.Benchmark.options).
BENCHMARK_FLAGS = {"num_tasks": ("num_tasks", int),
                   "classes_per_task": ("classes_per_task", int),
                   "rotation_interpolation": ("interpolation", str)}


class Experiment(NamedTuple):
  """A loaded experiment: config, stream, augmentation, and what to record."""

  config: configs.ExperimentConfig
  train: TrainConfig
  stream: TaskStream
  augment: Any  # the benchmark's augmentation if asked for, else None
  num_seeds: int
  meta: dict[str, Any]


def add_experiment_flags(parser: argparse.ArgumentParser, *, default_benchmark=None) -> None:
  """``--benchmark``, ``--data-dir``, ``--seeds``, ``--test-subset``,
  ``--augment``, the benchmark options and one flag per training field."""
  parser.add_argument("--benchmark", required=default_benchmark is None,
                      default=default_benchmark,
                      help=f"one of: {', '.join(configs.available())}")
  parser.add_argument("--data-dir", default=None,
                      help="folder with the dataset's standard files (offline); default"
                           " $NGM_JAX_DATA_DIR, else tensorflow-datasets")
  parser.add_argument("--seeds", type=int, default=None,
                      help="number of seeds 0..N-1 (default: the config's, 5)")
  parser.add_argument("--test-subset", type=int, default=None, metavar="N",
                      help="evaluate on a fixed random subset of N test images per task")
  parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                      help="on-device crop+flip augmentation (default: the config's)")
  for flag, (_, kind) in BENCHMARK_FLAGS.items():
    parser.add_argument("--" + flag.replace("_", "-"), type=kind, default=None,
                        help="benchmark option (default: the config's)")
  for flag, kind in TRAIN_FLAGS.items():
    parser.add_argument("--" + flag.replace("_", "-"), type=kind, default=None,
                        help=f"override the config's {flag}")


def train_config_from(args: argparse.Namespace, config: configs.ExperimentConfig
                      ) -> TrainConfig:
  """The config's TrainConfig with the flags given; errors name the flag."""
  overrides = {f: getattr(args, f) for f in TRAIN_FLAGS if getattr(args, f, None) is not None}
  try:
    return dataclasses.replace(config.train, **overrides)
  except ValueError as e:
    raise ValueError(_as_flags(str(e))) from None


def _as_flags(message: str) -> str:
  """A library message about TrainConfig fields, in the CLI's words."""
  for field in TRAIN_FLAGS:
    message = message.replace(f"TrainConfig.{field}=", f"--{field.replace('_', '-')} ")
    message = message.replace(f"{field}=", f"--{field.replace('_', '-')} ")
  return message.replace("TrainConfig: ", "")


def load_experiment(args: argparse.Namespace) -> Experiment:
  """Loads the experiment the flags describe (the data last).

  Raises:
    ValueError: an unknown benchmark or a bad value, naming the flag.
    ngm_jax.data.DataUnavailableError: the data cannot be found.
  """
  config = configs.get_config(args.benchmark)
  record = benchmarks.get(config.benchmark)
  seeds = getattr(args, "seeds", None)
  num_seeds = config.seeds if seeds is None else seeds
  if num_seeds < 1:
    raise ValueError(f"--seeds {num_seeds}: need at least 1 seed.")
  train = train_config_from(args, config)
  options = {**config.options}
  for flag, (option, _) in BENCHMARK_FLAGS.items():
    value = getattr(args, flag, None)
    if value is not None:
      if option not in record.options:
        raise ValueError(f"--{flag.replace('_', '-')}: benchmark {record.name} has no such"
                         f" option; it takes {', '.join(record.options) or 'none'}.")
      options[option] = value
  options = record.check_options(options)
  subset = getattr(args, "test_subset", None)
  subset = config.test_subset_per_task if subset is None else subset
  if subset is not None and subset < 1:
    raise ValueError(f"--test-subset {subset}: must be an integer >= 1.")
  augment = getattr(args, "augment", None)
  augment = config.augment if augment is None else augment
  if augment and record.augment is None:
    raise ValueError(f"--augment: benchmark {record.name} has no augmentation.")
  print(f"Loading {config.benchmark} ...", flush=True)
  stream = benchmarks.load_benchmark(config.benchmark, getattr(args, "data_dir", None),
                                     **options)
  # The sizes before subsetting: run.json's test_sizes are those evaluated on.
  full_sizes = [int(n) for n in stream.task_sizes("test")]
  if subset:
    stream = subsample_test(stream, subset)
  meta = {"benchmark_options": options, "test_subset_per_task": subset,
          "test_subset_seed": 0 if subset else None,
          "test_sizes_full": full_sizes if subset else None}
  return Experiment(config, train, stream, record.augment if augment else None, num_seeds,
                    meta)
