"""An experiment from the command line's flags: the config, the stream, what to record.

:func:`load_experiment` turns the flags of
:func:`ngm_jax.cli.args.add_experiment_flags` into the stream, the training
config and the record of what was chosen, checking every value before any
data are read. The config is the benchmark registry record's
(:meth:`ngm_jax.config.ExperimentConfig.of_benchmark`), or a config file's
(``--config experiments/configs/rotated_mnist.py``: a Python file whose
``get_config()`` returns an :class:`~ngm_jax.config.ExperimentConfig`), or
one the caller passes.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from ngm_jax import benchmarks, checks, provenance
from ngm_jax.cli.args import TRAIN_FLAGS, as_flags, flag_of, option_flags
from ngm_jax.config import ExperimentConfig, TrainConfig
from ngm_jax.streams import TaskStream, subsample_test

__all__ = ["Experiment", "default_config", "config_file", "experiment_config",
           "load_experiment", "train_config_from", "provenance_meta"]


class Experiment(NamedTuple):
  """A loaded experiment: config, stream, augmentation, and what to record."""

  config: ExperimentConfig
  train: TrainConfig
  stream: TaskStream
  augment: Any  # the benchmark's augmentation if asked for, else None
  num_seeds: int
  meta: dict[str, Any]


def default_config(benchmark: str) -> ExperimentConfig:
  """The command line's config of ``benchmark``: its registry record's.

  Raises:
    ValueError: an unknown benchmark (naming the registered ones).
  """
  return ExperimentConfig.of_benchmark(benchmarks.get(benchmark))


def config_file(path: str | os.PathLike) -> ExperimentConfig:
  """The config a Python file's ``get_config()`` returns (``--config FILE``).

  The file is run with the current folder first on ``sys.path`` (so the
  checkout's ``experiments/configs/*.py`` load from the checkout).

  Raises:
    ValueError: no such file, no ``get_config``, or it fails or returns no
      :class:`~ngm_jax.config.ExperimentConfig`.
  """
  file = Path(path)
  if not file.is_file():
    raise ValueError(f"--config {path}: no such file; give a Python file with get_config().")
  cwd = os.getcwd()
  if cwd not in sys.path and "" not in sys.path:
    sys.path.insert(0, cwd)
  spec = importlib.util.spec_from_file_location(f"ngm_jax_config_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
    config = module.get_config()
  except Exception as e:  # pylint: disable=broad-except  # the user's file: say whose
    raise ValueError(f"--config {path}: {type(e).__name__}: {e}") from None
  if not isinstance(config, ExperimentConfig):
    raise ValueError(f"--config {path}: get_config() returned {type(config).__name__}, not an"
                     " ngm_jax.config.ExperimentConfig.")
  return config


def experiment_config(args: argparse.Namespace) -> ExperimentConfig:
  """``--config FILE``'s config, else ``--benchmark``'s (:func:`default_config`).

  Raises:
    ValueError: neither given, an unknown benchmark, a bad file, or a
      ``--benchmark`` other than the file's.
  """
  path, name = getattr(args, "config", None), getattr(args, "benchmark", None)
  if path is None:
    if name is None:
      raise ValueError("give --benchmark NAME (its registry config) or --config FILE; names:"
                       f" {', '.join(benchmarks.names())}.")
    return default_config(name)
  config = config_file(path)
  if name is not None and name != config.benchmark:
    raise ValueError(f"--benchmark {name}: --config {path} is for {config.benchmark}; give"
                     " one of them.")
  return config


def train_config_from(args: argparse.Namespace, config: ExperimentConfig) -> TrainConfig:
  """The config's TrainConfig with the flags given; errors name the flags."""
  overrides = {f: getattr(args, f) for f in TRAIN_FLAGS if getattr(args, f, None) is not None}
  try:
    return dataclasses.replace(config.train, **overrides)
  except checks.ParameterError as e:
    raise ValueError(as_flags(e, {f: flag_of(f) for f in TRAIN_FLAGS})) from None
  except checks.ParameterTypeError as e:
    raise TypeError(as_flags(e, {f: flag_of(f) for f in TRAIN_FLAGS})) from None


def load_experiment(args: argparse.Namespace, config: ExperimentConfig | None = None
                    ) -> Experiment:
  """Loads the experiment the flags describe (the data last).

  Args:
    args: flags of :func:`ngm_jax.cli.args.add_experiment_flags` (any of them
      may be missing: the config's value is taken).
    config: the experiment's config; None: ``--config``'s, else
      ``--benchmark``'s registry record's (:func:`experiment_config`).

  Raises:
    ValueError: an unknown benchmark or a bad value, naming the flag.
    ngm_jax.data.DataUnavailableError: the data cannot be found.
  """
  config = experiment_config(args) if config is None else config
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
  flags = {option: flag for option, (flag, _) in option_flags().items()}
  options = {**config.options}
  for option, flag in flags.items():
    value = getattr(args, f"option_{option}", None)
    if value is not None:
      if option not in record.options:
        raise ValueError(f"{flag}: benchmark {record.name} has no such option; it takes"
                         f" {', '.join(flags[o] for o in record.options) or 'none'}.")
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
  except checks.ParameterError as e:  # a benchmark option out of range: say it with the flag
    if e.parameter not in options:
      raise
    raise ValueError(f"benchmark {config.benchmark}: {as_flags(e, flags)}") from None
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
