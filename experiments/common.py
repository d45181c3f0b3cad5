"""What every experiment command shares: its flags, and loading the experiment.

:func:`add_experiment_flags` adds the benchmark, data, seed and training
flags; :func:`load_experiment` turns them into the stream, the training
config, the network and the record of what was chosen, checking every value
before any data are read.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Callable, NamedTuple

from experiments import configs
from ngm_jax import benchmarks, checks, provenance
from ngm_jax.transforms import INTERPOLATIONS
from ngm_jax.streams import TaskStream, subsample_test
from ngm_jax.train import TrainConfig

__all__ = ["TRAIN_FLAGS", "BENCHMARK_FLAGS", "Experiment", "add_experiment_flags",
           "load_experiment", "train_config_from", "flag_type", "count_type", "check_out",
           "as_flags", "name_type"]

def flag_type(field: str, flag: str | None = None) -> Callable[[str], Any]:
  """An argparse ``type`` for hyperparameter ``field`` (:data:`ngm_jax.checks.RULES`):
  parses the text and checks the value before anything is loaded.

  A bad value is a usage error (exit code 2, no traceback) naming the flag,
  the value as typed and what is allowed, in the library's words, e.g.
  ``argument --eta: -1 is not allowed: must be a finite number >= 0 (η, the
  gain added per nat of entropy).``
  """
  rule = checks.RULES[field]
  allowed = rule.allowed_text.replace("None or ", "")  # None cannot be typed
  integer = rule.kind == "int"

  def parse(text: str) -> Any:
    try:
      value = int(text) if integer else float(text)
    except ValueError:
      raise argparse.ArgumentTypeError(
          f"{text!r} is not {'an integer' if integer else 'a number'}: must be {allowed}"
          f" ({rule.meaning}).") from None
    try:
      rule(flag or field, value)
    except (TypeError, ValueError):
      raise argparse.ArgumentTypeError(
          f"{text} is not allowed: must be {allowed} ({rule.meaning}).") from None
    return value

  parse.__name__ = rule.kind
  return parse


def count_type(what: str, minimum: int = 1) -> Callable[[str], int]:
  """An argparse ``type`` for a count (seeds, images, tasks): an integer >= ``minimum``."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      value = None
    if value is None or value < minimum:
      raise argparse.ArgumentTypeError(
          f"{text} is not allowed: must be an integer >= {minimum} ({what}).")
    return value

  parse.__name__ = "int"
  return parse


def name_type(text: str) -> str:
  """An argparse ``type`` for ``--name``: a title for the run's table and
  figure, one line of printable text."""
  name = text.strip()
  if not name or not name.isprintable():
    raise argparse.ArgumentTypeError(
        f"{text!r} is not allowed: must be a non-empty name on one line of printable"
        " characters (the run's title in run.json, table and figure).")
  return name


# CLI flag → TrainConfig field: each value's argparse type, which checks it.
TRAIN_FLAGS = {field: flag_type(field) for field in (
    "iterations_per_task", "batch_size", "learning_rate", "gamma", "g0", "eta", "const_gain",
    "eval_every", "task_eval_every", "eval_task1_limit", "eval_batch_size")}
# CLI flag → benchmark option (ngm_jax.benchmarks.Benchmark.options) and its type.
BENCHMARK_FLAGS = {"num_tasks": ("num_tasks", count_type("tasks in the stream")),
                   "classes_per_task": ("classes_per_task", count_type("classes per task")),
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
  parser.add_argument("--name", type=name_type, default=None,
                      help="what the data are, for the run's title (run.json's"
                           " benchmark_label), e.g. 'Split Fashion-MNIST' for a Fashion-MNIST"
                           " IDX folder given as --data-dir; default: the benchmark's name"
                           " (benchmark_label null)")
  parser.add_argument("--seeds", type=count_type("seeds 0..N-1"), default=None,
                      help="number of seeds 0..N-1 (default: the config's, 5)")
  parser.add_argument("--test-subset", type=count_type("test images kept per task"),
                      default=None, metavar="N",
                      help="evaluate on a fixed random subset of N test images per task")
  parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                      help="on-device crop+flip augmentation (default: the config's)")
  for flag, (_, kind) in BENCHMARK_FLAGS.items():
    parser.add_argument("--" + flag.replace("_", "-"), type=kind, default=None,
                        choices=INTERPOLATIONS if flag == "rotation_interpolation" else None,
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
  except (TypeError, ValueError) as e:
    raise type(e)(as_flags(str(e), list(TRAIN_FLAGS))) from None


def as_flags(message: str, fields) -> str:
  """A library message about fields (``TrainConfig.eta=-1.0: ...``,
  ``TrainConfig: eval_every=3 must divide task_eval_every=10``), in the
  command line's words (``--eta -1.0: ...``, ``--eval-every 3 must divide
  --task-eval-every 10``)."""
  message = re.sub(r"^(TrainConfig|[\w]+): ", "", message)
  for field in fields:
    message = re.sub(rf"(?<![\w-])(?:TrainConfig\.)?{field}=", f"--{field.replace('_', '-')} ",
                     message)
  return message


def check_out(out: str | os.PathLike, overwrite: bool, flag: str = "--out",
              resume: bool = False) -> None:
  """Checks an output folder before anything is loaded or trained.

  Raises:
    ValueError: ``out`` (or a folder above it) is a file, is not writable,
      or already holds a run and neither ``overwrite`` nor ``resume``.
  """
  out = Path(out)
  if out.exists() and not out.is_dir():
    raise ValueError(f"{flag} {out}: is a file, not a folder; choose a folder for the run.")
  above = out
  while not above.exists():
    above = above.parent
  if not above.is_dir():
    raise ValueError(f"{flag} {out}: {above} is a file, so no folder can be made under it.")
  if not os.access(above, os.W_OK | os.X_OK):
    raise ValueError(f"{flag} {out}: {above} is not writable.")
  held = [name for name in ("curves.npz", "run.json") if (out / name).exists()]
  if held and not (overwrite or resume):
    raise ValueError(f"{flag} {out}: already holds a run ({', '.join(held)}); pass --overwrite"
                     f" to replace it, or choose another {flag}.")


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
  data_dir = getattr(args, "data_dir", None)
  if data_dir is not None and not Path(data_dir).is_dir():
    raise ValueError(f"--data-dir {data_dir}: "
                     + ("is a file, not a folder." if Path(data_dir).exists()
                        else "no such folder."))
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
  try:
    stream = benchmarks.load_benchmark(config.benchmark, data_dir, **options)
  except ValueError as e:  # a benchmark option out of range: say it with the flag
    if not str(e).startswith(f"{config.benchmark}: "):
      raise
    flags = {option: flag for flag, (option, _) in BENCHMARK_FLAGS.items()}
    message = as_flags(str(e), flags)
    for option, flag in flags.items():
      message = message.replace(f"--{option.replace('_', '-')} ", f"--{flag.replace('_', '-')} ")
    raise ValueError(f"benchmark {config.benchmark}: {message}") from None
  # The sizes before subsetting: run.json's test_sizes are those evaluated on.
  full_sizes = [int(n) for n in stream.task_sizes("test")]
  if subset:
    stream = subsample_test(stream, subset)
  meta = {"benchmark_options": options, "test_subset_per_task": subset,
          "test_subset_seed": 0 if subset else None,
          "test_sizes_full": full_sizes if subset else None,
          # --name: the run's title in table and figure (None: the meta's "benchmark",
          # which a command may set itself, e.g. replay's "split_mnist with replay ...").
          "benchmark_label": getattr(args, "name", None),
          **provenance_meta(config.benchmark, data_dir)}
  return Experiment(config, train, stream, record.augment if augment else None, num_seeds,
                    meta)


def provenance_meta(benchmark: str, data_dir: str | os.PathLike | None) -> dict[str, Any]:
  """What ``run.json`` records of where a run came from (:mod:`ngm_jax.provenance`):
  ``versions`` (jax, jaxlib, optax, flax, numpy, orbax-checkpoint if installed),
  ``git`` (``{"commit", "dirty"}`` of the checkout the code runs from, else None)
  and ``data`` (the data files' SHA-256 and, for MNIST, whether they are the
  official files; or the tensorflow-datasets and dataset versions)."""
  return {"versions": provenance.versions(), "git": provenance.git_revision(),
          "data": provenance.data_provenance(benchmark, data_dir)}
