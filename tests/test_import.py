"""Importing the package and the CLI starts nothing: no JAX backend, no matplotlib."""

import subprocess
import sys


def test_import_starts_no_backend_and_no_plotting():
  # jax.distributed.initialize must come before any backend starts, so the
  # CLI's imports (the benchmark registry included) must not start one.
  code = ("import sys, experiments.run, ngm_jax; from jax._src import xla_bridge as xb; "
          "print(bool(xb._backends), 'matplotlib' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["False", "False"]
