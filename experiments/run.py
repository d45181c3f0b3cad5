"""Command line: the stability-gap protocol on our optimizers and yours.

    ngm-jax run --benchmark split_mnist --data-dir DIR
    ngm-jax run --benchmark split_mnist --optimizers ngm_sgd,mylab.opt:make_tx
    ngm-jax report results/split_mnist

(``python -m experiments.run`` is the same command.) ``run`` trains every
optimizer on every seed (per optimizer, the seeds are one compiled program),
saving the curves after each optimizer, then writes the metrics, the table
and the figure; ``report`` re-makes those from the saved curves.

While it trains, the training carry is checkpointed in ``OUT/checkpoints/``
(every task boundary, at most every ``--checkpoint-every-s`` seconds). Ctrl-C
(SIGINT) or SIGTERM stops it within seconds with a checkpoint, prints the
command that continues it (the same arguments and ``--resume``) and exits
with 130 or 143; a killed run continues from its last checkpoint the same
way, with curves bit for bit those of an uninterrupted run.

An ``--optimizers`` entry is a built-in name or ``package.module:factory``:
the factory is imported and called (with ``learning_rate=`` the config's
learning rate if it takes that argument) and must return an optax
transformation (or an ``ngm_jax.Optimizer``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from experiments import common, configs, distributed
from ngm_jax.checkpoint import RunStopped
from ngm_jax.data import DataUnavailableError
from ngm_jax.execution import LOOPS, SEED_AXES
from ngm_jax.optimizers import OPTIMIZER_NAMES, Optimizer
from ngm_jax.results import report
from ngm_jax.runner import run_benchmark

# Optimizers whose per-seed state comes from an NGM-SGD run (experiments/ablations.py).
_NEEDS_NGM_RUN = {"replayed_lr_sgd"}
_CLI_OPTIMIZERS = tuple(n for n in OPTIMIZER_NAMES if n not in _NEEDS_NGM_RUN)


def _split_optimizers(text: str) -> tuple[str, ...]:
  """``--optimizers`` text → entries (checked for syntax only; factories are
  imported once the learning rate is known)."""
  if text == "all":
    return ()  # the config's set
  entries = tuple(n.strip() for n in text.split(",") if n.strip())
  if _NEEDS_NGM_RUN & set(entries):
    raise argparse.ArgumentTypeError(
        "replayed_lr_sgd replays each seed's NGM-SGD gain, which this command does not"
        " have; run it with: python experiments/ablations.py --benchmark B --variants"
        " replayed_lr_sgd")
  unknown = [n for n in entries if n not in _CLI_OPTIMIZERS and ":" not in n]
  if unknown or not entries:
    raise argparse.ArgumentTypeError(
        f"unknown optimizer(s) {', '.join(unknown) or repr(text)}; choose from"
        f" {', '.join(_CLI_OPTIMIZERS)}, or give your own as package.module:factory"
        " (comma-separated), or 'all'.")
  return entries


def load_factory(entry: str, learning_rate: float) -> Any:
  """``package.module:factory`` → the transformation the factory returns.

  The factory is called with ``learning_rate=`` if it takes that argument,
  else with no arguments.

  Raises:
    ValueError: a malformed entry, a module or attribute that cannot be
      imported, a factory that fails or returns no optax transformation.
  """
  module_name, _, attr = entry.partition(":")
  if not module_name or not attr:
    raise ValueError(f"--optimizers {entry}: write your optimizer as package.module:factory.")
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ValueError(f"--optimizers {entry}: cannot import module {module_name!r} ({e}).") from None
  factory = module
  for part in attr.split("."):
    if not hasattr(factory, part):
      raise ValueError(f"--optimizers {entry}: module {module_name!r} has no {attr!r}.")
    factory = getattr(factory, part)
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
    raise ValueError(f"--optimizers {entry}: calling {attr}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
                     f" raised {type(e).__name__}: {e}") from None
  if not isinstance(tx, Optimizer) and not (hasattr(tx, "init") and hasattr(tx, "update")):
    raise ValueError(f"--optimizers {entry}: {attr}() returned {type(tx).__name__}, not an"
                     " optax GradientTransformation.")
  return tx


def resolve_optimizers(entries: Sequence[str], learning_rate: float) -> dict[str, Any]:
  """``{label: name or transformation}``; a factory's label is its entry."""
  return {e: (load_factory(e, learning_rate) if ":" in e else e) for e in entries}


def _seconds(text: str) -> float:
  """``--checkpoint-every-s``: a number of seconds >= 0."""
  try:
    value = float(text)
  except ValueError:
    value = math.nan
  if not math.isfinite(value) or value < 0:
    raise argparse.ArgumentTypeError(
        f"{text} is not allowed: must be a number of seconds >= 0 (0: no checkpoints).")
  return value


def resume_command(argv: Sequence[str]) -> str:
  """The command that continues a stopped ``run``: its arguments, with
  ``--resume`` instead of ``--overwrite``."""
  prog = (["ngm-jax"] if Path(sys.argv[0]).name == "ngm-jax"
          else ["python", "-m", "experiments.run"])
  args = [a for a in argv if a != "--overwrite"]
  if "--resume" not in args:
    args.append("--resume")
  return shlex.join(prog + args)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="ngm-jax", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  run = sub.add_parser("run", help="train, save curves, write metrics, table and figure")
  common.add_experiment_flags(run)
  run.add_argument("--optimizers", type=_split_optimizers, default=None,
                   help="comma-separated built-in names or package.module:factory entries,"
                        f" or 'all' for the config's set (built-in: {', '.join(_CLI_OPTIMIZERS)})")
  run.add_argument("--out", default=None, help="output folder (default: results/<benchmark>)")
  run.add_argument("--loop", choices=("auto",) + LOOPS, default="auto",
                   help="one scanned program, or compiled chunks driven from Python"
                        " (auto: by backend and model)")
  run.add_argument("--seed-axis", choices=("auto",) + SEED_AXES, default="auto",
                   help="seeds vmapped, mapped, one after another, or one per device"
                        " (shard) (auto: by backend, model and device count)")
  run.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run in --out (kept until the new one has finished)")
  run.add_argument("--resume", action="store_true",
                   help="continue the run stopped in --out (give the same arguments): finished"
                        " optimizers are not trained again, the one it stopped in continues"
                        " from its last checkpoint")
  run.add_argument("--checkpoint-every-s", type=_seconds, default=60.0, metavar="S",
                   help="checkpoint the training carry at every task boundary and at most every"
                        " S seconds of training (default 60; 0: no checkpoints)")
  distributed.add_distributed_flags(run)
  run.add_argument("--no-progress", action="store_true", help="no progress bar")
  report_cmd = sub.add_parser("report", help="re-make metrics, table and figure from saved curves")
  report_cmd.add_argument("out", help="a run's output folder")
  return parser


def run(args: argparse.Namespace) -> None:
  # Every value is checked before the data are read.
  config = configs.get_config(args.benchmark)
  train = common.train_config_from(args, config)
  out = args.out or f"results/{args.benchmark}"
  if args.resume and args.overwrite:
    raise ValueError("--resume and --overwrite: choose one (--resume continues the run in"
                     f" {out}, --overwrite replaces it).")
  stopped = (Path(out) / "checkpoints").exists() or (
      (Path(out) / "run.json").exists() and not (Path(out) / "curves.npz").exists())
  if stopped and not (args.resume or args.overwrite):
    raise ValueError(f"--out {out}: holds a run that did not finish; pass --resume (with the"
                     " same arguments) to continue it, or --overwrite to replace it.")
  common.check_out(out, args.overwrite, resume=args.resume)
  optimizers = resolve_optimizers(args.optimizers or config.optimizers, train.learning_rate)
  experiment = common.load_experiment(args)
  try:
    result = run_benchmark(
        experiment.stream, optimizers, experiment.train, num_seeds=experiment.num_seeds,
        augment=experiment.augment, out=out, overwrite=args.overwrite, loop=args.loop,
        seed_axis=args.seed_axis, show_progress=not args.no_progress, devices=args.devices,
        extra_meta=experiment.meta, resume=args.resume,
        checkpoint_every_s=args.checkpoint_every_s)
  except ValueError as e:
    raise ValueError(str(e).replace("overwrite=True", "--overwrite")
                     .replace("resume=True", "--resume")
                     .replace("num_seeds=", "--seeds ")) from None
  del result
  print(f"Wrote {out}/: curves.npz, run.json, log.jsonl, metrics.json, failed_seeds.json,"
        " table.md, figure.png")


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = _parser().parse_args(argv)
  try:
    if args.command == "run":
      distributed.initialize(args)  # before anything else touches JAX
      run(args)
    else:
      report(args.out)
      print(f"Re-made {args.out}/metrics.json, failed_seeds.json, table.md, figure.png")
  except (ValueError, TypeError, DataUnavailableError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except RunStopped as e:
    print(f"Stopped: {e}.\nContinue with:\n  {resume_command(argv)}", file=sys.stderr,
          flush=True)
    return e.exit_code
  except KeyboardInterrupt:  # before training began, or a second Ctrl-C
    print("Interrupted." + (f" Continue with:\n  {resume_command(argv)}"
                            if args.command == "run" else ""), file=sys.stderr, flush=True)
    return 130
  return 0


if __name__ == "__main__":
  sys.exit(main())
