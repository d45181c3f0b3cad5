"""Will a task stream fit on the device? Bytes needed against memory held.

:func:`check_fits` compares the bytes a stream's arrays need on the device
(:func:`stream_nbytes`) with a share of the device's memory
(:func:`device_memory_bytes`) and raises :class:`DatasetTooLargeError` rather
than letting the run fail later, out of memory.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from ngm_jax.task_stream import TaskStream

__all__ = [
    "DatasetTooLargeError",
    "check_fits",
    "device_memory_bytes",
    "stream_nbytes",
]


class DatasetTooLargeError(ValueError):
  """A stream's arrays would not fit in the device's memory."""


def stream_nbytes(stream: TaskStream) -> int:
  """Bytes the trainer puts on the device for ``stream``: uint8 images and
  int32 labels of train and test, the task ends, and an int32 task id per
  test row."""
  arrays = (
      stream.train_images, stream.train_labels, stream.train_task_ends,
      stream.test_images, stream.test_labels, stream.test_task_ends,
  )
  return int(sum(np.asarray(a).nbytes for a in arrays)) + 4 * len(stream.test_labels)


def device_memory_bytes(device: Any = None) -> tuple[int, str]:
  """The memory of ``device`` (default ``jax.devices()[0]``) in bytes, and
  what it is: the allocator's ``bytes_limit`` where the device reports one
  (GPU), else the host's physical memory (CPU).
  """
  device = jax.devices()[0] if device is None else device
  try:
    stats = device.memory_stats()
  except Exception:  # pylint: disable=broad-except
    stats = None  # CPU devices report nothing (or raise)
  if stats and stats.get("bytes_limit"):
    platform = str(getattr(device, "platform", "device")).upper()
    return int(stats["bytes_limit"]), f"{platform} memory of {device}"
  host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  return int(host), "host physical memory"


def _gib(n: float) -> str:
  return f"{n / 2**30:.2f} GiB"


def check_fits(
    stream_or_nbytes: TaskStream | int,
    device: Any = None,
    fraction: float = 0.5,
) -> int:
  """Raises rather than running out of memory if the data would not fit.

  Compares the bytes the stream's arrays need on the device
  (:func:`stream_nbytes`) with ``fraction`` of the device's memory
  (:func:`device_memory_bytes`); the rest is left for parameters, optimizer
  states of every vmapped seed, and activations.

  Args:
    stream_or_nbytes: a :class:`TaskStream`, or a number of bytes.
    device: a JAX device (anything with ``memory_stats()``); default
      ``jax.devices()[0]``.
    fraction: the share of the device's memory the data may use, in (0, 1].

  Returns:
    The bytes needed.

  Raises:
    DatasetTooLargeError: with both sizes in GiB and ways to shrink the data.
  """
  if not 0 < fraction <= 1:
    raise ValueError(f"fraction must be in (0, 1], got {fraction!r}.")
  if hasattr(stream_or_nbytes, "train_images"):  # a TaskStream
    stream = stream_or_nbytes
    need = stream_nbytes(stream)
    what = (
        f"{stream.name} ({stream.num_tasks} tasks; train"
        f" {_gib(stream.train_images.nbytes)}, test"
        f" {_gib(stream.test_images.nbytes)} of images)"
    )
  else:
    need, what = int(stream_or_nbytes), "the data"
  limit, where = device_memory_bytes(device)
  if need > fraction * limit:
    raise DatasetTooLargeError(
        f"{what} needs {_gib(need)} on the device, more than {fraction:.0%} of"
        f" the {_gib(limit)} of {where} ({_gib(fraction * limit)}). Use fewer"
        " tasks or classes (e.g. num_tasks, classes_per_task), or keep a"
        " subset of each task's test set (subsample_test(stream, per_task))."
    )
  return need
