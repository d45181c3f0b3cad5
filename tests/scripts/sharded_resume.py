"""Stops and resumes the sharded modes on 3 fake CPU devices (a subprocess of
tests/test_resume.py: the device count is fixed when JAX starts).

    XLA_FLAGS=--xla_force_host_platform_device_count=3 \
        python tests/scripts/sharded_resume.py OUT.npz RUN_DIR

Saves ``CASE/curve`` arrays and ``CASE/_segments`` (the segments the call
ran) for each case: for one seed per device (``shard``, scan and chunked)
and the scanned, vmapped seeds (``vmap``), the uninterrupted run on 2
devices (``ref``), the run resumed from a stop at block 4 on 2 devices
(``same``) and on another device count (``other``: 3 devices for shard, 1
for vmap), and resumed from a perturbed carry (``perturbed``); for
``run_benchmark`` with ``seed_axis="shard"``, the run stopped by SIGTERM on
2 devices and resumed with ``devices=3`` from its orbax checkpoint
(``runner/resumed``, ``runner/_segments`` the segments it ran), against the
uninterrupted one (``runner/ref``).
"""

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

import ngm_jax  # pylint: disable=g-import-not-at-top
from ngm_jax import runner, segment_actions  # pylint: disable=g-import-not-at-top
from ngm_jax.checkpoint import RunStopped  # pylint: disable=g-import-not-at-top
from ngm_jax.execution import Segments, Stopped, train_seeds  # pylint: disable=g-import-not-at-top
from ngm_jax.sharding import run_mesh  # pylint: disable=g-import-not-at-top
from ngm_jax.train import TrainConfig, make_train_parts, seed_keys  # pylint: disable=g-import-not-at-top
from tests.conftest import fake_mnist, stop_at  # pylint: disable=g-import-not-at-top

out, run_dir = sys.argv[1], Path(sys.argv[2])
assert jax.device_count() == 3, jax.devices()
stream = ngm_jax.split_mnist(fake_mnist())
config = TrainConfig(iterations_per_task=6, batch_size=8, eta=0.4, eval_every=1,
                     task_eval_every=3)  # 2 blocks per task, 10 in all
keys = seed_keys(3)
saved = {}


def keep(case, curves, timing):
  saved.update({f"{case}/{k}": v for k, v in curves.items()})
  saved[f"{case}/_segments"] = np.asarray(timing["segments"])


for loop, seed_axis, other in (("scan", "shard", 3), ("chunked", "shard", 3),
                               ("scan", "vmap", 1)):
  name = f"{loop}:{seed_axis}"
  parts = make_train_parts(stream, "adam", config, unroll=(loop == "chunked"))
  run = lambda devices, **kw: train_seeds(parts, keys, loop=loop, seed_axis=seed_axis,
                                          mesh=run_mesh(devices), **kw)
  keep(f"{name}/ref", *run(2))
  state = {}
  try:
    run(2, segments=Segments(blocks_per_task=2, on_segment=stop_at(4, state)))
    raise AssertionError(f"{name}: not stopped")
  except Stopped:
    pass
  carry, records, blocks = state["state"]
  saved[f"{name}/_blocks"] = np.asarray(blocks)
  keep(f"{name}/same", *run(2, segments=Segments(blocks_per_task=2, resume=state["state"])))
  keep(f"{name}/other", *run(other, segments=Segments(blocks_per_task=2,
                                                       resume=state["state"])))
  perturbed = carry._replace(params=jax.tree.map(lambda a: a * 1.5, carry.params))
  keep(f"{name}/perturbed", *run(2, segments=Segments(blocks_per_task=2,
                                                       resume=(perturbed, records, blocks))))
  print(name, "stopped at block", blocks, flush=True)

# run_benchmark: a checkpoint made on 2 devices, resumed on 3.
kw = dict(num_seeds=3, loop="chunked", seed_axis="shard", show_progress=False)
reference = ngm_jax.run_benchmark(stream, ["ngm_sgd"], config, devices=2, **kw)
saver = segment_actions.SegmentActions.__call__


def signal_at_4(self, done):
  if done.blocks_done == 4:
    signal.raise_signal(signal.SIGTERM)
  return saver(self, done)


segment_actions.SegmentActions.__call__ = signal_at_4
try:
  ngm_jax.run_benchmark(stream, ["ngm_sgd"], config, devices=2, out=run_dir, **kw)
  raise AssertionError("runner: not stopped")
except RunStopped as e:
  assert e.checkpointed, e
  saved["runner/_stopped_at"] = np.asarray(e.iteration)
segment_actions.SegmentActions.__call__ = saver
segments = []  # the segments each train_seeds call of the resumed run ran
train = runner.train_seeds
runner.train_seeds = lambda *a, **k: (lambda out: segments.append(out[1]["segments"]) or out)(
    train(*a, **k))
resumed = ngm_jax.run_benchmark(stream, ["ngm_sgd"], config, devices=3, out=run_dir,
                                resume=True, **kw)
saved.update({f"runner/ref/{k}": v for k, v in reference.curves["ngm_sgd"].items()})
saved.update({f"runner/resumed/{k}": v for k, v in resumed.curves["ngm_sgd"].items()})
timings = resumed.meta["timings"]["ngm_sgd"]
saved["runner/_resumed_at"] = np.asarray(timings.get("resumed_at_iteration", -1))
saved["runner/_rounds"] = np.asarray(timings["rounds"])
saved["runner/_segments"] = np.asarray(segments)
np.savez(out, **saved)
print("saved", len(saved), flush=True)
