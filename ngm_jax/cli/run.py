"""``ngm-jax run``: train every optimizer on every seed, save, report.

Per optimizer, the seeds are one compiled program; the curves are saved after
each optimizer, then the metrics, the table and the figure are written.

While it trains, the training carry is checkpointed in ``OUT/checkpoints/``
(every task boundary, at most every ``--checkpoint-every-s`` seconds). Ctrl-C
(SIGINT) or SIGTERM stops it within seconds with a checkpoint, prints the
command that continues it (the same arguments and ``--resume``) and exits
with 130 or 143; a killed run continues from its last checkpoint the same
way, with curves bit for bit those of an uninterrupted run.

An ``--optimizers`` entry is a built-in name or ``package.module:factory``:
the module is imported from the current folder or the installed packages, the
factory is called (with ``learning_rate=`` the config's learning rate if it
takes that argument) and must return an optax transformation (or an
``ngm_jax.Optimizer``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import jax

from ngm_jax import folder_lock
from ngm_jax.cli.args import (add_compile_cache_flag, add_experiment_flags, add_log_flag,
                              check_out, check_out_path, comma_separated, flag_of_record,
                              seconds_type)
from ngm_jax.cli.distributed import add_distributed_flags, initialize
from ngm_jax.cli.experiment import experiment_config, load_experiment, train_config_from
from ngm_jax.execution import LOOPS, SEED_AXES
from ngm_jax.optimizers import OPTIMIZER_NAMES, Optimizer
from ngm_jax.run_record import ResumeMismatch
from ngm_jax.runner import run_benchmark
from ngm_jax.results import display_name
from ngm_jax.tables import run_summary

__all__ = ["HELP", "add_arguments", "run", "find_factory", "load_factory", "resolve_optimizers"]

HELP = "train, save curves, write metrics, table and figure"

# Optimizers whose per-seed state comes from an NGM-SGD run (experiments/ablations.py).
_NEEDS_NGM_RUN = {"replayed_lr_sgd"}
_CLI_OPTIMIZERS = tuple(n for n in OPTIMIZER_NAMES if n not in _NEEDS_NGM_RUN)
_ENTRIES = comma_separated(str, "--optimizers")


def _optimizers(text: str) -> tuple[str, ...]:
  """``--optimizers`` text → entries (checked for syntax only; factories are
  imported once the learning rate is known); ``all``: () for the config's set."""
  if text == "all":
    return ()
  entries = _ENTRIES(text)
  if _NEEDS_NGM_RUN & set(entries):
    raise argparse.ArgumentTypeError(
        "replayed_lr_sgd replays each seed's NGM-SGD gain, which this command does not"
        " have; run it with: python experiments/ablations.py --benchmark B --variants"
        " replayed_lr_sgd")
  unknown = [n for n in entries if n not in _CLI_OPTIMIZERS and ":" not in n]
  if unknown:
    raise argparse.ArgumentTypeError(
        f"unknown optimizer(s) {', '.join(unknown)}; choose from"
        f" {', '.join(_CLI_OPTIMIZERS)}, or give your own as package.module:factory"
        " (comma-separated), or 'all'.")
  return entries


def _import_from_cwd(module_name: str):
  """Imports ``module_name`` with the current folder first on ``sys.path``, as
  ``python -m`` has it (an installed console script does not)."""
  cwd = os.getcwd()
  if cwd not in sys.path and "" not in sys.path:
    sys.path.insert(0, cwd)
  importlib.invalidate_caches()
  return importlib.import_module(module_name)


def find_factory(entry: str) -> Any:
  """``package.module:factory`` → the object it names (the module imported
  from the current folder or the installed packages).

  Raises:
    ValueError: a malformed entry, a module that cannot be imported, a name
      the module does not have.
  """
  module_name, _, attr = entry.partition(":")
  if not module_name or not attr:
    raise ValueError(f"--optimizers {entry}: write your optimizer as package.module:factory.")
  try:
    module = _import_from_cwd(module_name)
  except ImportError as e:
    raise ValueError(f"--optimizers {entry}: cannot import module {module_name!r} from"
                     f" {os.getcwd()} or the installed packages ({e}).") from None
  found = module
  for part in attr.split("."):
    if not hasattr(found, part):
      raise ValueError(f"--optimizers {entry}: module {module_name!r} has no {attr!r}.")
    found = getattr(found, part)
  return found


def load_factory(entry: str, learning_rate: float) -> Any:
  """``package.module:factory`` → the transformation the factory returns.

  The module is imported from the current folder or the installed packages.
  The factory is called with ``learning_rate=`` if it takes that argument,
  else with no arguments.

  Raises:
    ValueError: a malformed entry, a module or attribute that cannot be
      imported, a factory that fails or returns no optax transformation.
  """
  factory = find_factory(entry)
  attr = entry.partition(":")[2]
  if not callable(factory):
    raise ValueError(f"--optimizers {entry}: {attr!r} is not callable.")
  try:
    params = inspect.signature(factory).parameters
  except (TypeError, ValueError):
    params = {}
  kwargs = {"learning_rate": learning_rate} if "learning_rate" in params else {}
  try:
    tx = factory(**kwargs)
  except Exception as e:  # pylint: disable=broad-except  # the user's code: say whose
    call = f"{attr}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    raise ValueError(f"--optimizers {entry}: calling {call} raised {type(e).__name__}:"
                     f" {e}") from None
  if not isinstance(tx, Optimizer) and not (hasattr(tx, "init") and hasattr(tx, "update")):
    raise ValueError(f"--optimizers {entry}: {attr}() returned {type(tx).__name__}, not an"
                     " optax GradientTransformation.")
  return tx


def resolve_optimizers(entries: Sequence[str], learning_rate: float) -> dict[str, Any]:
  """``{label: name or transformation}``; a factory's label is its entry."""
  return {e: (load_factory(e, learning_rate) if ":" in e else e) for e in entries}


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The flags of ``run``."""
  add_experiment_flags(parser)
  parser.add_argument("--optimizers", type=_optimizers, default=None,
                      help="comma-separated built-in names or package.module:factory entries"
                           " (imported from the current folder or the installed packages),"
                           " or 'all' for the config's set (built-in:"
                           f" {', '.join(_CLI_OPTIMIZERS)})")
  parser.add_argument("--out", default=None, help="output folder (default: results/<benchmark>)")
  parser.add_argument("--loop", choices=("auto",) + LOOPS, default="auto",
                      help="one scanned program, or compiled chunks driven from Python"
                           " (auto: by backend and model)")
  parser.add_argument("--seed-axis", choices=("auto",) + SEED_AXES, default="auto",
                      help="seeds vmapped, mapped, one after another, or one per device"
                           " (shard) (auto: by backend, model and device count)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace an earlier run in --out (kept until the new one has finished)")
  parser.add_argument("--resume", action="store_true",
                      help="continue the run stopped in --out (give the same arguments): finished"
                           " optimizers are not trained again, the one it stopped in continues"
                           " from its last checkpoint")
  parser.add_argument("--checkpoint-every-s", type=seconds_type, default=60.0,
                      metavar="S",
                      help="checkpoint the training carry at every task boundary and at most every"
                           " S seconds of training (default 60; 0: no checkpoints)")
  add_log_flag(parser)
  add_distributed_flags(parser)
  add_compile_cache_flag(parser)
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> None:
  """Trains and writes ``args.out``; every value is checked before the data are read.

  Raises:
    ValueError: a bad value or combination (naming the flag), an output
      folder that cannot be used.
    ngm_jax.checkpoint.RunStopped: stopped by a signal (after a checkpoint).
  """
  initialize(args)  # before anything else touches JAX
  config = experiment_config(args)
  train = train_config_from(args, config)
  out = args.out or f"results/{config.benchmark}"
  if args.resume and args.overwrite:
    raise ValueError("--resume and --overwrite: choose one (--resume continues the run in"
                     f" {out}, --overwrite replaces it).")
  check_out_path(out)
  # One run per folder (process 0 holds the lock): a run writing there is
  # named before anything else is said about the folder.
  with folder_lock.holding(out, hold=jax.process_index() == 0):
    _run(args, config, train, out)


def _run(args: argparse.Namespace, config, train, out: str) -> None:
  """:func:`run` with ``out``'s lock held."""
  stopped = (Path(out) / "checkpoints").exists() or (
      (Path(out) / "run.json").exists() and not (Path(out) / "curves.npz").exists())
  if stopped and not (args.resume or args.overwrite):
    raise ValueError(f"--out {out}: holds a run that did not finish; pass --resume (with the"
                     " same arguments) to continue it, or --overwrite to replace it.")
  check_out(out, args.overwrite, resume=args.resume)
  optimizers = resolve_optimizers(args.optimizers or config.optimizers, train.learning_rate)
  experiment = load_experiment(args, config)
  try:
    result = run_benchmark(
        experiment.stream, optimizers, experiment.train, num_seeds=experiment.num_seeds,
        augment=experiment.augment, out=out, overwrite=args.overwrite, loop=args.loop,
        seed_axis=args.seed_axis, show_progress=not args.no_progress, devices=args.devices,
        extra_meta=experiment.meta, resume=args.resume,
        checkpoint_every_s=args.checkpoint_every_s, compile_cache=not args.no_compile_cache,
        log=args.log)
  except ResumeMismatch as e:  # say which flag differs
    raise e.told(flag_of_record) from None
  if jax.process_index() == 0:  # one summary, from the process that wrote the files
    meta = result.meta
    title = (f"{display_name(meta)}: {result.num_seeds} seeds,"
             f" {meta['num_tasks']} tasks x {meta['train']['iterations_per_task']} iterations,"
             f" {meta.get('wall_s', '?')} s")
    print(run_summary(result.metrics, meta.get("timings", {}), title, out), flush=True)
    if "tensorboard" in args.log:
      print(f"TensorBoard: tensorboard --logdir {Path(out) / 'tensorboard'}", flush=True)
