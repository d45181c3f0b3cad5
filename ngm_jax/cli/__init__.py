"""Command line: the stability-gap protocol on our optimizers and yours.

    ngm-jax run --benchmark split_mnist --data-dir DIR
    ngm-jax run --benchmark split_mnist --optimizers ngm_sgd,mylab.opt:make_tx
    ngm-jax tune --benchmark split_mnist --optimizers ngm_sgd,sgd,adam --budget 16 --data-dir DIR
    ngm-jax report results/split_mnist

``python -m ngm_jax.cli`` is the same command, and so is ``python -m
experiments.run`` from the checkout. ``run`` trains every optimizer on every
seed (per optimizer, the seeds are one compiled program), saving the curves
after each optimizer, then writes the metrics, the table and the figure;
``report`` re-makes those from the saved curves. ``ngm-jax COMMAND --help``
lists each command's flags. A bad value ends a command with one line and exit
code 2; a run stopped by a signal prints the command that continues it.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Sequence

from ngm_jax.checkpoint import RunStopped
from ngm_jax.cli import report as report_command
from ngm_jax.cli import run as run_command
from ngm_jax.cli import tune as tune_command
from ngm_jax.data import DataUnavailableError
from ngm_jax.files import WriteError
from ngm_jax.segment_actions import PeerLost, peer_lost

__all__ = ["COMMANDS", "parser", "main", "resume_command"]

#: Subcommand name → its module: ``HELP`` (one line), ``add_arguments(parser)``
#: (its flags), ``run(args)`` (does it; returns None or an exit code). A new
#: subcommand is such a module and one entry here; :func:`main` answers its
#: ValueError, TypeError and DataUnavailableError with one line and exit code 2
#: (a WriteError, a file the disk refused, also with the command that resumes).
COMMANDS: dict[str, ModuleType] = {"run": run_command, "tune": tune_command,
                                   "report": report_command}


def parser() -> argparse.ArgumentParser:
  """The ``ngm-jax`` parser, one subparser per :data:`COMMANDS` entry."""
  top = argparse.ArgumentParser(prog="ngm-jax", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = top.add_subparsers(dest="command", required=True)
  for name, command in COMMANDS.items():
    command.add_arguments(sub.add_parser(
        name, help=command.HELP, description=command.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter))
  return top


def _program() -> list[str]:
  """How this process was started, as a command to type again."""
  path = Path(sys.argv[0])
  if path.name == "ngm-jax":
    return ["ngm-jax"]
  if path.name == "__main__.py" and path.parent.name == "cli":
    return ["python", "-m", "ngm_jax.cli"]
  return ["python", "-m", "experiments.run"]


def resume_command(argv: Sequence[str]) -> str:
  """The command that continues a stopped ``run``: its arguments, with
  ``--resume`` instead of ``--overwrite``."""
  args = [a for a in argv if a != "--overwrite"]
  if "--resume" not in args:
    args.append("--resume")
  return shlex.join(_program() + args)


def _stop_at_once_from_now() -> None:
  """A stopped program is ending: another Ctrl-C ends it at once, without
  Python's KeyboardInterrupt traceback from its exit handlers."""
  if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs ``ngm-jax`` with ``argv`` (default ``sys.argv[1:]``, the program's:
  then, once a run has stopped, another Ctrl-C ends the process at once);
  returns the exit code."""
  program = argv is None
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parser().parse_args(argv)
  resumable = getattr(args, "resume", None) is not None  # the command takes --resume
  try:
    code = COMMANDS[args.command].run(args)
  except WriteError as e:  # a full or read-only disk: what was saved is kept
    print(f"error: {e}" + (f"\nOnce it can be written, continue with:\n  {resume_command(argv)}"
                           if resumable else ""), file=sys.stderr, flush=True)
    return 2
  except (ValueError, TypeError, DataUnavailableError) as e:
    if peer_lost(e):  # JaxRuntimeError is a ValueError
      return _peer_lost(e, args, argv)
    print(f"error: {e}", file=sys.stderr)
    return 2
  except (RunStopped, PeerLost) as e:
    if program:
      _stop_at_once_from_now()
    print(f"Stopped: {e}.\nContinue with:\n  {resume_command(argv)}", file=sys.stderr,
          flush=True)
    return e.exit_code
  except Exception as e:  # pylint: disable=broad-except
    if not peer_lost(e):
      raise
    return _peer_lost(e, args, argv)
  except KeyboardInterrupt:  # before training began, or a second Ctrl-C
    if program:
      _stop_at_once_from_now()
    print("Interrupted." + (f" Continue with:\n  {resume_command(argv)}" if resumable else ""),
          file=sys.stderr, flush=True)
    return 130
  return code or 0


def _peer_lost(error: BaseException, args: argparse.Namespace, argv: Sequence[str]) -> int:
  """A collective that lost its peer outside training (setup, the last save):
  the message :class:`~ngm_jax.segment_actions.PeerLost` gives in training."""
  stopped = PeerLost(getattr(args, "out", None), error)
  print(f"Stopped: {stopped}.\nContinue with:\n  {resume_command(argv)}", file=sys.stderr,
        flush=True)
  return stopped.exit_code
