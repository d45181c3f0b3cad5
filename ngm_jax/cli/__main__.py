"""``python -m ngm_jax.cli``: the ``ngm-jax`` command."""

import sys

from ngm_jax.cli import main

if __name__ == "__main__":
  sys.exit(main())
