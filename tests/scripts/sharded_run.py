"""Runs 5 seeds x 2 optimizers on tiny data and saves the curves (a subprocess
of tests/test_sharding.py: the device count is fixed when JAX starts).

    python tests/scripts/sharded_run.py OUT.npz DEVICES [COORDINATOR NUM_PROCESSES PROCESS_ID]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import jax  # pylint: disable=g-import-not-at-top

if len(sys.argv) > 3:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(sys.argv[3], num_processes=int(sys.argv[4]),
                             process_id=int(sys.argv[5]))

import numpy as np  # pylint: disable=g-import-not-at-top

import ngm_jax  # pylint: disable=g-import-not-at-top
from tests.conftest import fake_mnist  # pylint: disable=g-import-not-at-top

out, devices = sys.argv[1], int(sys.argv[2])
stream = ngm_jax.split_mnist(fake_mnist(n_train_per_class=4, n_test_per_class=2))
config = ngm_jax.TrainConfig(iterations_per_task=3, batch_size=4, task_eval_every=3)
result = ngm_jax.run_benchmark(stream, ["ngm_sgd", "adam"], config, num_seeds=5,
                               devices=devices, show_progress=False)
if jax.process_index() == 0:
  np.savez(out, **{f"{label}/{name}": value for label, curves in result.curves.items()
                   for name, value in curves.items()})
  print("mesh", result.meta["mesh"])
