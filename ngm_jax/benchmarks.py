"""The benchmark registry: one record per benchmark, looked up in one place.

A :class:`Benchmark` holds everything the name stands for: how its data are
loaded, what data those are and which files the loader reads (for the run's
provenance, :mod:`ngm_jax.provenance`), how they become a task stream, its
options with their defaults, the paper's network and where its gain acts, the
preprocessing and augmentation, the paper's training config, whether it is
class- or domain-incremental, and its display name. :func:`get` finds a
record by name; :func:`load_benchmark` loads and builds a stream. No code
anywhere else looks at a benchmark's name to decide anything: the configs
(``experiments/configs/<name>.py``), provenance, ``experiments/bench.py`` and
the README's benchmark table follow the registry, and
``tests/test_benchmarks.py`` checks that every record has all of them.

A new benchmark, the library's or a user's own stream, is one call of
:func:`register`::

    benchmarks.register(benchmarks.Benchmark(
        "my_stream", "class-incremental", load=my_loader, build=my_builder,
        options={}, config=TrainConfig(...), **benchmarks.MNIST_MLP))

then ``load_benchmark("my_stream", data_dir)`` and
:func:`ngm_jax.run_benchmark` train it with the record's network.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax

from ngm_jax import checks
from ngm_jax.augment import random_crop_flip
from ngm_jax.data import ImageDataset, load_cifar10, load_cifar100, load_miniimagenet, load_mnist
from ngm_jax.idx import find_mnist_files
from ngm_jax.models import (CLASSIFIER, MLP, SlimResNet18, standardise_images,
                            standardise_mnist)
from ngm_jax.pickles import find_cifar10_files, find_cifar100_files, find_miniimagenet_files
from ngm_jax.placement import Placement, kernels
from ngm_jax.streams import (CIFAR100_FINE_PER_COARSE, TaskStream, domain_cifar100,
                             permuted_mnist, rotated_mnist, split_cifar10, split_cifar100,
                             split_miniimagenet, split_mnist)
from ngm_jax.train import TrainConfig

__all__ = ["Benchmark", "BENCHMARKS", "KINDS", "register", "get", "names", "load_benchmark",
           "MNIST_MLP", "RESNET", "CIFAR10_STATS", "CIFAR100_STATS", "IMAGENET_STATS"]

# Per-channel (mean, std) of the training images, in [0, 1] units.
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

KINDS = ("class-incremental", "domain-incremental")


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """Everything a benchmark's name stands for.

  Attributes:
    name: the registry key.
    kind: ``"class-incremental"`` or ``"domain-incremental"``.
    load: ``(data_dir, **options) -> ImageDataset``; ``data_dir`` None means
      ``$NGM_JAX_DATA_DIR``, else tensorflow-datasets or a download
      (:mod:`ngm_jax.data`).
    build: ``(data, **options) -> TaskStream``.
    options: the options both take, with their defaults (e.g. ``num_tasks``).
    model: ``num_classes -> flax.linen.Module``, the paper's network.
    where: the gain placement (:mod:`ngm_jax.placement`).
    preprocess: uint8 images ``[B, ...]`` → the network's float32 inputs.
    config: the paper's training config for this benchmark.
    augment: the on-device training augmentation used when asked for
      (``(key, images) -> images``), or None if the benchmark has none.
    convolutional: the network is convolutional (decides the CPU loop).
    dataset: what data ``load`` reads, for the run's provenance: the
      tensorflow-datasets name where there is one (``"mnist"``,
      ``"cifar100"``; asked for its version when the data came through
      tensorflow-datasets), else a name of the data (``"miniimagenet"``).
      None: the run records no data provenance.
    data_files: ``data_dir -> [Path]``, the files ``load`` reads from a data
      folder, found the way it finds them (those present; provenance hashes
      each). None: no files are hashed.
    title: the display name (``"Split MNIST"``); None: ``name``.
  """

  name: str
  kind: str
  load: Callable[..., ImageDataset]
  build: Callable[..., TaskStream]
  options: Mapping[str, Any]
  model: Callable[[int], nn.Module]
  where: Placement
  preprocess: Callable[[jax.Array], jax.Array]
  config: TrainConfig
  augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None
  convolutional: bool = False
  dataset: str | None = None
  data_files: Callable[[Path], Sequence[Path]] | None = None
  title: str | None = None

  @property
  def display_name(self) -> str:
    """``title``, else ``name``."""
    return self.title or self.name

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"Benchmark {self.name!r}: kind={self.kind!r}; choose from"
                       f" {', '.join(KINDS)}.")

  def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` (None values dropped) merged over the defaults.

    Raises:
      ValueError: an option this benchmark does not take (naming those it takes).
    """
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(self.options))
    if unknown:
      takes = ", ".join(self.options) if self.options else "no options"
      raise ValueError(f"Benchmark {self.name!r} does not take option(s)"
                       f" {', '.join(unknown)}; it takes {takes}.")
    return {**self.options, **given}


#: Name → :class:`Benchmark`, in registration order.
BENCHMARKS: dict[str, Benchmark] = {}


def register(benchmark: Benchmark) -> Benchmark:
  """Adds ``benchmark`` to :data:`BENCHMARKS` (a name is registered once)."""
  if benchmark.name in BENCHMARKS:
    raise ValueError(f"Benchmark {benchmark.name!r} is already registered.")
  BENCHMARKS[benchmark.name] = benchmark
  return benchmark


def names() -> tuple[str, ...]:
  return tuple(BENCHMARKS)


def get(name: str) -> Benchmark:
  """The record of ``name``; ValueError names the registered ones."""
  if name not in BENCHMARKS:
    raise ValueError(f"Unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}.")
  return BENCHMARKS[name]


def load_benchmark(name: str, data_dir: str | os.PathLike | None = None,
                   **options: Any) -> TaskStream:
  """Loads benchmark ``name``'s data (:mod:`ngm_jax.data`) and builds its stream.

  Args:
    name: a key of :data:`BENCHMARKS`.
    data_dir: the folder with the data files (None: ``$NGM_JAX_DATA_DIR``,
      else tensorflow-datasets or a download, :mod:`ngm_jax.data`).
    **options: the benchmark's options (``get(name).options``), e.g.
      ``num_tasks=3`` for domain_cifar100; None counts as not given.

  Raises:
    ValueError: an unknown benchmark or option, or a bad option value (a
      ngm_jax.checks.ParameterError naming the option), before
      any data are read.
    ngm_jax.data.DataUnavailableError: when the data cannot be found.
  """
  record = get(name)
  values = record.check_options(options)
  data = record.load(data_dir, **values)
  return record.build(data, **values)


def _int_option(benchmark: str, option: str, value: Any, low: int, high: int | None = None
                ) -> int:
  ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
  ok = ok and (high is None or value <= high)
  if not ok:
    allowed = f"in [{low}, {high}]" if high is not None else f">= {low}"
    raise checks.ParameterError("{%s}; must be an integer %s." % (option, allowed),
                                {option: value}, prefix=f"{benchmark}: ")
  return value


def _mnist(data_dir, **_):
  return load_mnist(data_dir)


def _permuted_mnist(data_dir, num_tasks, permutation_seed, train_per_task):
  _int_option("permuted_mnist", "num_tasks", num_tasks, 1)
  _int_option("permuted_mnist", "permutation_seed", permutation_seed, 0)
  if train_per_task is not None:  # None: every training image in every task
    _int_option("permuted_mnist", "train_per_task", train_per_task, 1)
  return load_mnist(data_dir)


def _cifar10(data_dir, **_):
  return load_cifar10(data_dir)


def _cifar100(data_dir, num_tasks):
  _int_option("domain_cifar100", "num_tasks", num_tasks, 1, CIFAR100_FINE_PER_COARSE)
  return load_cifar100(data_dir)


def _cifar100_split(data_dir, num_tasks, classes_per_task):
  _int_option("split_cifar100", "num_tasks", num_tasks, 1, 100)
  _int_option("split_cifar100", "classes_per_task", classes_per_task, 1, 100 // num_tasks)
  return load_cifar100(data_dir)


def _miniimagenet(data_dir, num_tasks, classes_per_task):
  _int_option("split_miniimagenet", "num_tasks", num_tasks, 1)
  _int_option("split_miniimagenet", "classes_per_task", classes_per_task, 1)
  return load_miniimagenet(data_dir, num_classes=num_tasks * classes_per_task)


def _no_options(build):
  return lambda data, **_: build(data)


#: The MNIST benchmarks' network, gain placement, preprocessing and data
#: description (a record's keyword arguments): the paper's MLP 784-400-400-10
#: with the gain on every kernel, standardised inputs, MNIST's IDX files.
MNIST_MLP = MappingProxyType(dict(
    model=lambda c: MLP(num_classes=c), where=kernels, preprocess=standardise_mnist,
    dataset="mnist", data_files=find_mnist_files))
#: The image benchmarks' network: the slim ResNet-18 with the gain on its
#: classifier, crop+flip augmentation (add ``preprocess`` and the data).
RESNET = MappingProxyType(dict(
    model=lambda c: SlimResNet18(num_classes=c), where=CLASSIFIER, augment=random_crop_flip,
    convolutional=True))
_CIFAR10 = dict(preprocess=standardise_images(*CIFAR10_STATS), dataset="cifar10",
                data_files=find_cifar10_files)
_CIFAR100 = dict(preprocess=standardise_images(*CIFAR100_STATS), dataset="cifar100",
                 data_files=find_cifar100_files)
# The image benchmarks' NGM-SGD: head by plain SGD with the gain, backbone by
# momentum SGD 0.9 (optax.partition); Task-1 evaluation in batches of images.
_RESNET_CONFIG = dict(iterations_per_task=400, batch_size=256, learning_rate=0.01, gamma=0.9,
                      g0=1.0, eval_every=1, task_eval_every=20, backbone_momentum=0.9)

register(Benchmark(
    "split_mnist", "class-incremental", _mnist, _no_options(split_mnist), {},
    config=TrainConfig(iterations_per_task=200, batch_size=128, learning_rate=0.01, gamma=0.9,
                       g0=1.0, eta=0.4, eval_every=1, task_eval_every=10),
    title="Split MNIST", **MNIST_MLP))
register(Benchmark(
    "rotated_mnist", "domain-incremental", _mnist, rotated_mnist, {"interpolation": "nearest"},
    config=TrainConfig(iterations_per_task=400, batch_size=128, learning_rate=0.01, gamma=0.9,
                       g0=1.0, eta=0.5, eval_every=1, task_eval_every=20),
    title="Rotated MNIST", **MNIST_MLP))
register(Benchmark(
    "split_cifar10", "class-incremental", _cifar10, _no_options(split_cifar10), {},
    config=TrainConfig(eta=0.2, eval_batch_size=1000, **_RESNET_CONFIG),
    title="Split CIFAR-10", **_CIFAR10, **RESNET))
register(Benchmark(
    "domain_cifar100", "domain-incremental", _cifar100, domain_cifar100, {"num_tasks": 5},
    config=TrainConfig(eta=0.1, eval_batch_size=1000, **_RESNET_CONFIG),
    title="Domain CIFAR-100", **_CIFAR100, **RESNET))
register(Benchmark(
    "split_miniimagenet", "class-incremental", _miniimagenet, split_miniimagenet,
    {"num_tasks": 5, "classes_per_task": 10},
    preprocess=standardise_images(*IMAGENET_STATS),
    config=TrainConfig(eta=0.1, eval_batch_size=500, **_RESNET_CONFIG),
    dataset="miniimagenet", data_files=find_miniimagenet_files, title="Split mini-ImageNet",
    **RESNET))
# Rotated MNIST's schedule and η over 10 tasks; the options are recorded in
# run.json (benchmark_options), so the permutations can be drawn again.
register(Benchmark(
    "permuted_mnist", "domain-incremental", _permuted_mnist, permuted_mnist,
    {"num_tasks": 10, "permutation_seed": 0, "train_per_task": None},
    config=TrainConfig(iterations_per_task=400, batch_size=128, learning_rate=0.01, gamma=0.9,
                       g0=1.0, eta=0.5, eval_every=1, task_eval_every=20),
    title="Permuted MNIST", **MNIST_MLP))
# Split CIFAR-10's network and schedule over 10 tasks of 10 classes; η as the
# other 100-class image benchmarks'.
register(Benchmark(
    "split_cifar100", "class-incremental", _cifar100_split, split_cifar100,
    {"num_tasks": 10, "classes_per_task": 10},
    config=TrainConfig(eta=0.1, eval_batch_size=1000, **_RESNET_CONFIG),
    title="Split CIFAR-100", **_CIFAR100, **RESNET))
