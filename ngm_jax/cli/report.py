"""``ngm-jax report OUT``: metrics, table and figure again from a run's saved curves."""

from __future__ import annotations

import argparse

from ngm_jax.results import report

__all__ = ["HELP", "add_arguments", "run"]

HELP = "re-make metrics, table and figure from saved curves"


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The arguments of ``report``."""
  parser.add_argument("out", help="a run's output folder")


def run(args: argparse.Namespace) -> None:
  """Re-makes ``args.out``'s metrics.json, failed_seeds.json, table.md and figure.png.

  Raises:
    ValueError: the folder holds no readable run (naming the file and the fault).
  """
  report(args.out)
  print(f"Re-made {args.out}/metrics.json, failed_seeds.json, table.md, figure.png")
