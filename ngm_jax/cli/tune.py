"""``ngm-jax tune``: every method tuned at the same budget on validation data.

    ngm-jax tune --benchmark split_mnist --optimizers ngm_sgd,sgd,msgd,adam,ema_sgd \\
        --budget 16 --search-seeds 3 --seeds 5 --data-dir DIR --out results/tuned

Each method gets exactly ``--budget`` configurations of its search space (a
grid on one dimension, a seeded quasi-random sample on several), trained
``--search-seeds`` seeds each on a validation split carved from each task's
training data (``--validation-fraction``, ``--validation-seed``); a whole
search is one compiled program. The configuration with the best validation
``--objective`` is trained again on the full training data with ``--seeds``
fresh seeds (1000, 1001, ...) and evaluated on the test set.

Writes ``OUT/tuning.json`` (budget, objective, the split, every trial, the
selection), ``OUT/tuning.md``, ``OUT/tradeoff.png``, ``OUT/search/<label>/``
and the final run's files (run.json, curves.npz, metrics.json, table.md,
figure.png). ``--resume`` continues a stopped tuning: finished searches are
read back, a stopped one continues from its checkpoint.

An ``--optimizers`` entry is a tunable built-in name or
``package.module:factory`` (imported from the current folder): the factory
takes its hyperparameters as keyword arguments and may declare
``factory.search_space = {"learning_rate": (1e-4, 0.1, "log"), ...}``
(default: the learning rate on a log scale from 1e-4 to 0.3).
"""

from __future__ import annotations

import argparse
import inspect
from typing import Any, Mapping

import jax

from ngm_jax import folder_lock
from ngm_jax.cli.args import (add_compile_cache_flag, add_experiment_flags, add_log_flag,
                              check_out_path, comma_separated, count_type, seconds_type)
from ngm_jax.cli.distributed import add_distributed_flags, initialize
from ngm_jax.cli.experiment import experiment_config, load_experiment, train_config_from
from ngm_jax.cli.run import find_factory
from ngm_jax.search import Dimension, Tunable, TUNABLE_NAMES
from ngm_jax.tuning import OBJECTIVES, tune

__all__ = ["HELP", "add_arguments", "run", "load_tunable"]

HELP = "tune every method at the same budget on validation data, then test the selection"

DEFAULT_SPACE = {"learning_rate": Dimension(1e-4, 0.3)}
_ENTRIES = comma_separated(str, "--optimizers")


def _optimizers(text: str) -> tuple[str, ...]:
  entries = _ENTRIES(text)
  unknown = [n for n in entries if n not in TUNABLE_NAMES and ":" not in n]
  if unknown:
    raise argparse.ArgumentTypeError(
        f"no search space for {', '.join(unknown)}; choose from {', '.join(TUNABLE_NAMES)},"
        " or give your own as package.module:factory (comma-separated).")
  return entries


def _fraction(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    value = None
  if value is None or not 0.0 < value < 1.0:
    raise argparse.ArgumentTypeError(f"{text!r}: must be a number in (0, 1).")
  return value


def _space(entry: str, declared: Any) -> dict[str, Dimension]:
  """A factory's ``search_space`` attribute → ``{name: Dimension}``."""
  if not isinstance(declared, Mapping) or not declared:
    raise ValueError(f"--optimizers {entry}: search_space must be a non-empty dict"
                     " {name: Dimension or (low, high[, 'log'|'linear'])}.")
  space = {}
  for name, dim in declared.items():
    if not isinstance(dim, Dimension):
      try:
        dim = Dimension(*dim)
      except (TypeError, ValueError) as e:
        raise ValueError(f"--optimizers {entry}: search_space[{name!r}]={dim!r}: {e}") from None
    space[name] = dim
  return space


def load_tunable(entry: str) -> Tunable:
  """``package.module:factory`` → a :class:`ngm_jax.search.Tunable` with the
  factory's declared ``search_space`` (default: :data:`DEFAULT_SPACE`).

  Raises:
    ValueError: a malformed entry, a module or factory that cannot be found,
      a bad search space.
  """
  factory = find_factory(entry)
  if not callable(factory) or inspect.isclass(factory):
    raise ValueError(f"--optimizers {entry}: not a factory function.")
  space = _space(entry, getattr(factory, "search_space", DEFAULT_SPACE))
  try:
    return Tunable(factory, space, name=None)
  except (TypeError, ValueError) as e:
    raise ValueError(f"--optimizers {entry}: {e}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The flags of ``tune``."""
  add_experiment_flags(parser)
  parser.add_argument("--optimizers", type=_optimizers, required=True,
                      help="comma-separated tunable built-in names or package.module:factory"
                           f" entries (built-in: {', '.join(TUNABLE_NAMES)})")
  parser.add_argument("--budget", type=count_type("--budget"), required=True,
                      help="configurations per method, the same for every method")
  parser.add_argument("--search-seeds", type=count_type("--search-seeds"), default=3,
                      help="seeds per configuration in the search (default 3)")
  parser.add_argument("--objective", choices=tuple(OBJECTIVES), default="wc_acc_all",
                      help="what selection optimises on validation (default wc_acc_all,"
                           " WC-ACC over all tasks; avg_sg is minimised)")
  parser.add_argument("--validation-fraction", type=_fraction, default=0.1,
                      help="fraction of each task's training data held out (default 0.1)")
  parser.add_argument("--validation-seed", type=count_type("--validation-seed", 0), default=0,
                      help="seed of the held-out rows (default 0)")
  parser.add_argument("--out", default=None,
                      help="output folder (default: results/<benchmark>_tuned)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace a tuning in --out (kept until the new one has finished)")
  parser.add_argument("--resume", action="store_true",
                      help="continue the tuning stopped in --out (give the same arguments)")
  parser.add_argument("--checkpoint-every-s", type=seconds_type, default=60.0, metavar="S",
                      help="checkpoint at every task boundary and at most every S seconds")
  add_distributed_flags(parser)
  add_compile_cache_flag(parser)
  add_log_flag(parser)
  parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> None:
  """Tunes and writes ``args.out``; flags are checked before the data are read."""
  initialize(args)
  config = experiment_config(args)
  train_config_from(args, config)  # the schedule flags, checked before the data are read
  out = args.out or f"results/{config.benchmark}_tuned"
  if args.resume and args.overwrite:
    raise ValueError("--resume and --overwrite: choose one.")
  optimizers = {e: (load_tunable(e) if ":" in e else e) for e in args.optimizers}
  check_out_path(out)
  with folder_lock.holding(out, hold=jax.process_index() == 0):  # one run per folder
    _tune(args, optimizers, config, out)
  print(f"Wrote {out}/: tuning.json, tuning.md, tradeoff.png, search/, and the final run's"
        " curves.npz, run.json, metrics.json, table.md, figure.png")


def _tune(args: argparse.Namespace, optimizers, config, out: str) -> None:
  experiment = load_experiment(args, config)
  tune(experiment.stream, optimizers, experiment.train,
       budget=args.budget, search_seeds=args.search_seeds, num_seeds=experiment.num_seeds,
       objective=args.objective, validation_fraction=args.validation_fraction,
       validation_seed=args.validation_seed, augment=experiment.augment, out=out,
       overwrite=args.overwrite, resume=args.resume, show_progress=not args.no_progress,
       devices=args.devices, checkpoint_every_s=args.checkpoint_every_s,
       compile_cache=not args.no_compile_cache, log=args.log)
