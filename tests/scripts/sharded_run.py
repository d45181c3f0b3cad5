"""Runs 5 seeds x 2 optimizers on tiny data and saves the curves (a subprocess
of tests/test_sharding.py: the device count is fixed when JAX starts).

    python tests/scripts/sharded_run.py [--runs=SPEC,...] OUT.npz DEVICES
        [COORDINATOR NUM_PROCESSES PROCESS_ID]

Without ``--runs``: one run on DEVICES devices, the default loop and seed
axis, saved as ``label/curve``. With it: one run per ``loop:seed_axis@devices``
SPEC (DEVICES unused), saved as ``SPEC/label/curve``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import jax  # pylint: disable=g-import-not-at-top

args = sys.argv[1:]
specs = args.pop(0).split("=", 1)[1].split(",") if args[0].startswith("--runs=") else None
if len(args) > 2:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(args[2], num_processes=int(args[3]), process_id=int(args[4]))

import numpy as np  # pylint: disable=g-import-not-at-top

import ngm_jax  # pylint: disable=g-import-not-at-top
from tests.conftest import fake_mnist  # pylint: disable=g-import-not-at-top

out, devices = args[0], int(args[1])
stream = ngm_jax.split_mnist(fake_mnist(n_train_per_class=4, n_test_per_class=2))
config = ngm_jax.TrainConfig(iterations_per_task=3, batch_size=4, task_eval_every=3)
saved = {}
for spec in specs or [None]:
  if spec is None:
    loop, seed_axis, count, prefix = "auto", "auto", devices, ""
  else:
    execution, count = spec.split("@")
    (loop, seed_axis), count, prefix = execution.split(":"), int(count), spec + "/"
  result = ngm_jax.run_benchmark(stream, ["ngm_sgd", "adam"], config, num_seeds=5,
                                 loop=loop, seed_axis=seed_axis, devices=count,
                                 show_progress=False)
  saved.update({f"{prefix}{label}/{name}": value for label, curves in result.curves.items()
                for name, value in curves.items()})
  print(spec or "default", "ran as", result.meta["loop"], result.meta["seed_axis"],
        "mesh", result.meta["mesh"])
if jax.process_index() == 0:
  np.savez(out, **saved)
