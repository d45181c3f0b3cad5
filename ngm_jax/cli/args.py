"""What the commands share: argparse value types, the experiment flags, and
library errors told with the flags' names.

Every value is checked by its argparse ``type`` as the command line is read,
so a bad one is a usage error (exit code 2, no traceback) before anything is
loaded. Errors the library raises later about a named parameter
(:class:`ngm_jax.checks.ParameterError`) are told with the flag that sets the
parameter (:func:`as_flags`), by the error's structure, not its text.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

from ngm_jax import benchmarks, checks
from ngm_jax.transforms import INTERPOLATIONS

__all__ = ["comma_separated", "flag_type", "count_type", "name_type", "seconds_type",
           "TRAIN_FLAGS", "option_flags", "flag_of", "flag_of_record", "registry_defaults",
           "as_flags", "add_experiment_flags", "add_log_flag", "check_out", "check_out_path"]


def flag_of(name: str) -> str:
  """A parameter's flag: ``eval_task1_limit`` → ``--eval-task1-limit``."""
  return "--" + name.replace("_", "-")


def comma_separated(kind: Callable[[str], Any], flag: str, sort_unique: bool = False, *,
                    choices: Collection[str] | None = None, noun: str = "value"
                    ) -> Callable[[str], tuple]:
  """An argparse ``type``: ``"1,2,3"`` → a tuple of ``kind`` values.

  The one reader of comma-separated lists in the commands.

  Args:
    kind: ``int``, ``float`` or ``str`` (any ``str -> value``).
    flag: the option's name, for error messages (e.g. ``"--etas"``).
    sort_unique: sort the values and drop repeats.
    choices: the values allowed (names), if only some are.
    noun: what a value is, for the message naming those not in ``choices``
      (``"optimizer"``: "unknown optimizer(s) rmsprop; choose from ...").

  The returned function raises ``argparse.ArgumentTypeError`` naming the flag
  and the text for a value ``kind`` cannot read, for no value at all, and for
  values not in ``choices`` (naming them and the allowed ones).
  """
  def parse(text: str) -> tuple:
    try:
      values = [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError as err:
      raise argparse.ArgumentTypeError(f"{flag} {text!r}: {err}") from None
    if not values:
      raise argparse.ArgumentTypeError(
          f"{flag} {text!r}: give comma-separated {getattr(kind, '__name__', 'value')}s.")
    unknown = [v for v in values if choices is not None and v not in choices]
    if unknown:
      raise argparse.ArgumentTypeError(
          f"unknown {noun}(s) {', '.join(map(str, unknown))}; choose from"
          f" {', '.join(choices)} (comma-separated).")
    return tuple(sorted(set(values))) if sort_unique else tuple(values)

  return parse


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
      value = text if rule.kind == "choice" else int(text) if integer else float(text)
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


def seconds_type(text: str) -> float:
  """An argparse ``type`` for a duration: a number of seconds >= 0."""
  try:
    value = float(text)
  except ValueError:
    value = math.nan
  if not math.isfinite(value) or value < 0:
    raise argparse.ArgumentTypeError(
        f"{text} is not allowed: must be a number of seconds >= 0 (0: no checkpoints).")
  return value


def _option_value(text: str) -> Any:
  """A benchmark option without a type of its own: an integer if it reads as one,
  else the text (the benchmark checks it)."""
  try:
    return int(text)
  except ValueError:
    return text


# TrainConfig field → its argparse type, which checks it; the flag is flag_of(field).
TRAIN_FLAGS = {field: flag_type(field) for field in (
    "iterations_per_task", "batch_size", "learning_rate", "gamma", "g0", "eta", "const_gain",
    "eval_every", "task_eval_every", "eval_task1_limit", "eval_batch_size", "compute_dtype")}
# Benchmark options whose flag or type says more than the option's name and default.
_OPTION_FLAGS = {
    "num_tasks": ("--num-tasks", count_type("tasks in the stream")),
    "classes_per_task": ("--classes-per-task", count_type("classes per task")),
    "interpolation": ("--rotation-interpolation", str),
}


def option_flags() -> dict[str, tuple[str, Callable[[str], Any]]]:
  """Every option of every registered benchmark (:data:`ngm_jax.benchmarks.BENCHMARKS`)
  → ``(flag, argparse type)``: ``num_tasks`` → ``--num-tasks``; an option the
  command line knows nothing more of reads an integer or a word."""
  options = dict.fromkeys(o for record in benchmarks.BENCHMARKS.values() for o in record.options)
  return {o: _OPTION_FLAGS.get(o, (flag_of(o), _option_value)) for o in options}


# run.json's keys (ngm_jax.run_record) set by a flag of their own.
_RECORD_FLAGS = {"benchmark": "--benchmark", "seeds": "--seeds", "optimizers": "--optimizers",
                 "augment": "--augment", "loop": "--loop", "seed_axis": "--seed-axis",
                 "test_subset_per_task": "--test-subset", "task1_eval_size": "--eval-task1-limit",
                 "num_tasks": "--num-tasks"}


def flag_of_record(path: Sequence[str]) -> str | None:
  """The flag that sets a ``run.json`` setting, for a refused ``--resume``
  (:meth:`ngm_jax.run_record.ResumeMismatch.told`): ``("train", "eta")`` →
  ``--eta``, a variant's ``("variants", "ngm_sgd", "train", "eta")`` →
  ``--eta (ngm_sgd)``, ``("benchmark_options", "num_tasks")`` →
  ``--num-tasks``; None for a setting no flag sets."""
  path = tuple(path)
  if len(path) == 2 and path[0] == "train" and path[1] in TRAIN_FLAGS:
    return flag_of(path[1])
  if len(path) == 4 and path[0] == "variants" and path[2] == "train" and path[3] in TRAIN_FLAGS:
    return f"{flag_of(path[3])} ({path[1]})"
  if len(path) >= 2 and path[0] == "variants":
    return f"--optimizers ({path[1]})"
  if len(path) == 2 and path[0] == "benchmark_options":
    return option_flags().get(path[1], (flag_of(path[1]),))[0]
  return _RECORD_FLAGS.get(path[0]) if len(path) == 1 else None


def _grouped(values: Mapping[str, Any]) -> str:
  """``{benchmark: value}`` → ``"200 split_mnist; 400 rotated_mnist, permuted_mnist"``
  (None: ``none``); one value for all: ``"0.01, every benchmark"``."""
  groups: dict[str, list[str]] = {}
  for name, value in values.items():
    text = "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    groups.setdefault(text, []).append(name)
  if len(groups) == 1 and len(values) == len(benchmarks.BENCHMARKS):
    return f"{next(iter(groups))}, every benchmark"
  return "; ".join(f"{value} {', '.join(names)}" for value, names in groups.items())


def registry_defaults(field: str, option: bool = False) -> str:
  """The registered benchmarks' values of TrainConfig ``field`` (or, with
  ``option``, of the benchmark option ``field``, for the benchmarks that take
  it), for ``--help``: ``"0.4 split_mnist; 0.5 rotated_mnist, permuted_mnist"``."""
  if option:
    return _grouped({name: record.options[field] for name, record in benchmarks.BENCHMARKS.items()
                     if field in record.options})
  return _grouped({name: getattr(record.config, field)
                   for name, record in benchmarks.BENCHMARKS.items()})


def as_flags(error: checks.ParameterError | checks.ParameterTypeError,
             flags: Mapping[str, str]) -> str:
  """``error`` told with each parameter it names written as its flag
  (``flags``: parameter → flag) and the value: ``--eval-every 3 must divide
  --task-eval-every 10.``; a parameter without a flag stays ``name=value``."""
  return error.told(lambda name, value: (f"{flags[name]} {value}" if name in flags
                                         else f"{name}={value!r}"))


def add_experiment_flags(parser: argparse.ArgumentParser, *, default_benchmark=None,
                         config: bool = True) -> None:
  """``--benchmark`` (and ``--config`` unless ``config`` is False), ``--data-dir``,
  ``--name``, ``--seeds``, ``--test-subset``, ``--augment``, the benchmarks'
  options and one flag per training field."""
  parser.add_argument("--benchmark", default=default_benchmark,
                      help=f"one of: {', '.join(benchmarks.names())} (its registry config:"
                           " the paper's)")
  if config:
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="a Python file whose get_config() returns an"
                             " ngm_jax.config.ExperimentConfig, e.g."
                             " experiments/configs/rotated_mnist.py (what the docs ran);"
                             " instead of --benchmark's registry config")
  parser.add_argument("--data-dir", default=None,
                      help="folder with the dataset's standard files (offline); default"
                           " $NGM_JAX_DATA_DIR, else tensorflow-datasets if installed, else"
                           " downloaded and checked into $NGM_JAX_CACHE_DIR")
  parser.add_argument("--name", type=name_type, default=None,
                      help="what the data are, for the run's title (run.json's"
                           " benchmark_label), e.g. 'Split Fashion-MNIST' for a Fashion-MNIST"
                           " IDX folder given as --data-dir; default: the benchmark's name"
                           " (benchmark_label null)")
  parser.add_argument("--seeds", type=count_type("seeds 0..N-1"), default=None,
                      help="number of seeds 0..N-1 (default: the config's, 5)")
  parser.add_argument("--test-subset", type=count_type("test images kept per task"),
                      default=None, metavar="N",
                      help="evaluate on a fixed random subset of N test images per task (default:"
                           " the config's; the registry's: every test image)")
  parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                      help="on-device crop+flip augmentation (default: the config's; the"
                           " registry's: off; experiments/configs/split_cifar10.py and"
                           " split_cifar100.py: on)")
  for option, (flag, kind) in option_flags().items():
    choices = INTERPOLATIONS if option == "interpolation" else None
    parser.add_argument(flag, type=kind, default=None, dest=f"option_{option}", choices=choices,
                        metavar=None if choices else option.upper(),
                        help=f"override the config's benchmark option {option} (the registry's"
                             f" configs: {registry_defaults(option, option=True)})")
  for field, kind in TRAIN_FLAGS.items():
    parser.add_argument(flag_of(field), type=kind, default=None,
                        help=f"override the config's {field} (the registry's configs:"
                             f" {registry_defaults(field)})")


def add_compile_cache_flag(parser: argparse.ArgumentParser) -> None:
  """``--no-compile-cache`` (the persistent compilation cache is on by default,
  :mod:`ngm_jax.compile_cache`)."""
  parser.add_argument("--no-compile-cache", action="store_true",
                      help="do not read or write the persistent compilation cache (default: on,"
                           " in $NGM_JAX_COMPILE_CACHE or ~/.cache/ngm-jax/jax)")


def _log_sinks(text: str) -> tuple[str, ...]:
  """``--log`` text → sink names, each known and its library installed
  (:func:`ngm_jax.logs.check_sinks`: a missing one names its extra)."""
  from ngm_jax.logs import SINKS, check_sinks  # pylint: disable=g-import-not-at-top
  names = comma_separated(str, "--log", choices=tuple(SINKS), noun="log sink")(text)
  try:
    check_sinks(names, "--log")
  except ValueError as e:
    raise argparse.ArgumentTypeError(str(e)) from None
  return names


def add_log_flag(parser: argparse.ArgumentParser) -> None:
  """``--log csv,tensorboard,wandb``: where live metrics go (:mod:`ngm_jax.logs`)."""
  parser.add_argument("--log", type=_log_sinks, default=("csv",), metavar="SINKS",
                      help="live metrics after every segment, comma-separated: csv"
                           " (OUT/metrics.csv, always written), tensorboard (OUT/tensorboard/;"
                           " pip install 'ngm-jax[tensorboard]'), wandb (a W&B run per"
                           " optimizer, files in OUT/wandb/; pip install 'ngm-jax[wandb]';"
                           " WANDB_MODE=offline needs no account) (default: csv)")


def check_out_path(out: str | os.PathLike, flag: str = "--out") -> None:
  """Checks that a folder can be made or written at ``out``.

  Raises:
    ValueError: ``out`` (or a folder above it) is a file, or is not writable.
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


def check_out(out: str | os.PathLike, overwrite: bool, flag: str = "--out",
              resume: bool = False) -> None:
  """Checks an output folder before anything is loaded or trained.

  Raises:
    ValueError: ``out`` (or a folder above it) is a file, is not writable,
      or already holds a run and neither ``overwrite`` nor ``resume``.
  """
  out = Path(out)
  check_out_path(out, flag)
  held = [name for name in ("curves.npz", "run.json") if (out / name).exists()]
  if held and not (overwrite or resume):
    raise ValueError(f"{flag} {out}: already holds a run ({', '.join(held)}); pass --overwrite"
                     f" to replace it, or choose another {flag}.")
