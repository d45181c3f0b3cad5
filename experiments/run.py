"""``python -m experiments.run`` (from the checkout) is the ``ngm-jax`` command.

Kept so that the commands saved in the docs and in run.json files work as
typed; the command itself is :mod:`ngm_jax.cli`.
"""

from __future__ import annotations

import sys

from ngm_jax.cli import main

__all__ = ["main"]

if __name__ == "__main__":
  sys.exit(main())
