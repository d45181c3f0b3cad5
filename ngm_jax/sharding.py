"""Runs (seeds, variants, hyperparameter points) sharded over devices and hosts.

A batch of runs is one axis, ``"runs"``, of a one-dimensional device mesh
(``jax.make_mesh``). The per-run inputs (PRNG key data, per-run
hyperparameters) are placed with ``NamedSharding(mesh, P("runs"))`` and the
data replicated with ``P()``; the vmapped program compiled by ``jax.jit``
then runs each device's share of the runs on that device. A batch that does
not divide the device count is padded with copies of its last run, and the
padding dropped from the results (:func:`pad_runs`, :func:`unpad_runs`).

With several processes (``jax.distributed.initialize``), the same code places
each process's share on its local devices (``jax.make_array_from_callback``
asks only for the addressable shards) and :func:`gather` brings every run's
results to every process.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

__all__ = ["RUNS", "run_mesh", "pad_runs", "unpad_runs", "shard_runs", "replicate", "gather",
           "describe_mesh"]

#: The mesh axis the runs are spread over.
RUNS = "runs"


def run_mesh(num_devices: int | None = None, devices: Sequence[Any] | None = None) -> Mesh:
  """A one-axis mesh ``("runs",)`` over ``num_devices`` devices (default: every
  device of every process, ``jax.devices()``).

  Raises:
    ValueError: ``num_devices`` < 1 or more than there are.
  """
  devices = list(jax.devices() if devices is None else devices)
  if num_devices is None:
    num_devices = len(devices)
  if (isinstance(num_devices, bool) or not isinstance(num_devices, (int, np.integer))
      or not 1 <= num_devices <= len(devices)):
    raise ValueError(f"num_devices={num_devices!r}: must be an integer in [1, {len(devices)}]"
                     f" (the devices available: {len(devices)}).")
  if jax.process_count() > 1 and num_devices != len(devices):
    raise ValueError(f"num_devices={num_devices}: with {jax.process_count()} processes every"
                     " device takes part; run with all of them.")
  # Auto axes: XLA's partitioner places every intermediate (the vmapped
  # minibatch gathers included) from the input shardings.
  return jax.make_mesh((num_devices,), (RUNS,), axis_types=(AxisType.Auto,),
                       devices=devices[:num_devices])


def describe_mesh(mesh: Mesh) -> dict[str, Any]:
  """The mesh as a record for ``run.json``."""
  device = mesh.devices.flat[0]
  return {"axis": RUNS, "devices": int(mesh.size), "device_kind": device.device_kind,
          "platform": device.platform, "processes": jax.process_count()}


def pad_runs(tree: Any, multiple: int) -> tuple[Any, int]:
  """Pads every leaf's leading (runs) axis to a multiple of ``multiple`` with
  copies of its last run; returns ``(padded, original count)``."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return tree, 0
  n = int(np.shape(leaves[0])[0])
  target = math.ceil(n / multiple) * multiple
  if target == n:
    return tree, n
  pad = lambda a: np.concatenate([np.asarray(a)] + [np.asarray(a)[-1:]] * (target - n))
  return jax.tree.map(pad, tree), n


def unpad_runs(tree: Any, n: int) -> Any:
  """The first ``n`` runs of every leaf."""
  return jax.tree.map(lambda a: a[:n], tree)


def _global(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
  array = np.asarray(array)
  return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def shard_runs(tree: Any, mesh: Mesh) -> Any:
  """NumPy leaves ``[runs, ...]`` (runs a multiple of the mesh size) → global
  arrays split along ``runs`` over the mesh."""
  sharding = NamedSharding(mesh, PartitionSpec(RUNS))
  return jax.tree.map(lambda a: _global(a, sharding), tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """NumPy (or host-readable) leaves → global arrays with a full copy on every
  device of the mesh (the data: sent once per device, then arguments)."""
  sharding = NamedSharding(mesh, PartitionSpec())
  return jax.tree.map(lambda a: _global(np.asarray(a), sharding), tree)


def gather(tree: Any) -> Any:
  """Global arrays → NumPy arrays on this process (every process gets all)."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
