"""Data sources: standard files on disk, else tensorflow-datasets, else a download.

Every loader returns an :class:`ImageDataset` of NumPy arrays (uint8 images,
int32 labels) held in host memory; :mod:`ngm_jax.streams` turns it into tasks.

Where the data comes from, in order:

1. ``data_dir`` (the CLI's ``--data-dir``), else the environment variable
   ``NGM_JAX_DATA_DIR``: read the standard files found there. Nothing is
   downloaded.

   * MNIST: the four IDX files ``train-images-idx3-ubyte[.gz]`` etc., as
     torchvision and others leave them.
   * CIFAR-10 / CIFAR-100: the python-pickle folders of the official archives,
     ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
     ``test_batch``) and ``cifar-100-python/`` (``train``, ``test``), either
     inside ``data_dir`` or ``data_dir`` itself.
   * mini-ImageNet: the three pickles ``mini-imagenet-cache-train.pkl``,
     ``-val.pkl`` and ``-test.pkl`` (the only source; there is no
     tensorflow-datasets builder), see :func:`load_miniimagenet`.

2. Otherwise ``tensorflow_datasets`` if installed (``ngm-jax[tfds]``), which
   downloads and prepares the dataset on first use (``mnist``, ``cifar10``,
   ``cifar100``).

3. Otherwise :mod:`ngm_jax.fetch` downloads the official files (MNIST's four
   IDX files, the CIFAR archives) from public mirrors or ``NGM_JAX_MNIST_URL``
   / ``NGM_JAX_CIFAR_URL``, checks their SHA-256, and keeps them in a cache
   folder (``NGM_JAX_CACHE_DIR``) read as in 1.

The files are read by :mod:`ngm_jax.idx` (MNIST) and :mod:`ngm_jax.pickles`
(CIFAR, mini-ImageNet; :mod:`pickle` can run code: only read files you trust,
the official archives). :class:`ImageDataset`, :class:`DataUnavailableError` and
:class:`DataFileError` (a file that exists but is unreadable) are defined in
:mod:`ngm_jax.dataset`; every name stays importable from here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ngm_jax import fetch
from ngm_jax.dataset import DataFileError, DataUnavailableError, ImageDataset, label_error
# The file readers live in ngm_jax.idx and ngm_jax.pickles; their names stay
# importable from here.
from ngm_jax.idx import MNIST_FILES, read_idx, read_mnist_idx, write_idx
from ngm_jax.pickles import (
    CIFAR10_CLASSES,
    CIFAR10_FOLDER,
    CIFAR100_FOLDER,
    MINIIMAGENET_FILES,
    MINIIMAGENET_TEST_DIVISOR,
    read_cifar10_pickles,
    read_cifar100_pickles,
    read_miniimagenet_pickles,
)

__all__ = [
    "CIFAR10_CLASSES",
    "DATA_DIR_ENV",
    "DataFileError",
    "DataUnavailableError",
    "ImageDataset",
    "MINIIMAGENET_FILES",
    "MINIIMAGENET_TEST_DIVISOR",
    "load_cifar10",
    "load_cifar100",
    "load_miniimagenet",
    "load_mnist",
    "load_tfds",
    "read_cifar10_pickles",
    "read_cifar100_pickles",
    "read_idx",
    "read_miniimagenet_pickles",
    "read_mnist_idx",
    "resolve_data_dir",
    "tfds_installed",
    "write_idx",
]

DATA_DIR_ENV = "NGM_JAX_DATA_DIR"


# ----------------------------------------------------------------------------
# tensorflow-datasets


def _how_to_provide(name: str, files: str, dataset: str) -> str:
  source = fetch.SOURCES[dataset]
  return (
      f"To provide {name}: (1) put {files} in a folder and pass `--data-dir DIR`"
      f" (or set {DATA_DIR_ENV}=DIR); or (2) with network and no folder, it is"
      f" downloaded and checked into the cache (${fetch.CACHE_DIR_ENV}, default"
      " ~/.cache/ngm-jax/data) from the public mirrors, or from a mirror of your own:"
      f" {source.url_env}=URL, a folder URL holding {', '.join(source.files)}"
      " (http(s):// or file://); or (3) install the optional extra (`pip install"
      " 'ngm-jax[tfds]'`) and let tensorflow-datasets download it instead."
  )


#: Seconds allowed to reach a download host before tensorflow-datasets is asked
#: to download (offline, tfds itself retries for ~3.5 minutes: 10 retries with
#: exponential backoff, 0.2 s x 2**n).
TFDS_CONNECT_TIMEOUT_S = 5.0


def check_download_reachable(name: str, urls, timeout: float = TFDS_CONNECT_TIMEOUT_S
                             ) -> None:
  """Raises DataUnavailableError, naming the host, when a host (or proxy)
  that ``urls`` are downloaded from does not answer within ``timeout``
  seconds; returns if all do, or there are no URLs."""
  reasons = []
  for host, port in fetch.download_endpoints(urls):
    reason = fetch.unreachable(host, port, timeout)
    if reason is not None:
      reasons.append(f"{host}:{port} ({reason})")
  if reasons:
    raise DataUnavailableError(
        f"tensorflow-datasets would download {name!r}, but its download host"
        f" cannot be reached: {'; '.join(reasons)}. No network here? (Tried for at"
        f" most {timeout:g} s; tensorflow-datasets itself would retry for ~3.5 min.)"
    )


def _urls_to_download(tfds, name: str, tfds_data_dir: str | None) -> list[str]:
  """The URLs tfds will download ``name`` from: none if it is prepared in
  ``tfds_data_dir``, else those of its builder's checksums. Also none if the
  builder cannot say (then ``tfds.load`` reports whatever is wrong)."""
  try:
    builder = tfds.builder(name, data_dir=tfds_data_dir)
    return [] if builder.is_prepared() else list(builder.url_infos or ())
  except Exception:  # pylint: disable=broad-except
    return []


def load_tfds(
    name: str,
    tfds_data_dir: str | None = None,
    *,
    coarse_label: str | None = None,
    with_names: bool = False,
    connect_timeout: float = TFDS_CONNECT_TIMEOUT_S,
) -> ImageDataset:
  """Loads ``name`` (e.g. ``"mnist"``) with tensorflow-datasets, all in memory.

  A dataset already prepared in ``tfds_data_dir`` is read without network.
  Otherwise tfds must download it: the download host (its URLs from the
  builder's checksums) is tried first with a ``connect_timeout``, so that
  offline this fails within seconds instead of after tfds's ~3.5 minutes
  of retries.

  Args:
    name: the tfds dataset name (``"mnist"``, ``"cifar10"``, ``"cifar100"``).
    tfds_data_dir: where tfds keeps its files (None: its default).
    coarse_label: the feature holding a second, coarse label (``"coarse_label"``
      for ``cifar100``). Given, the examples are read as feature dicts
      (``image``, ``label``, ``coarse_label``) rather than ``as_supervised``
      pairs, and the dataset's ``*_coarse_labels`` are set.
    with_names: also read the label names from the builder's info
      (``class_names``, and ``coarse_class_names`` with ``coarse_label``).
    connect_timeout: seconds allowed to reach the download host.

  Raises:
    DataUnavailableError: tensorflow-datasets (or a module it needs) is
      missing, the download host cannot be reached, or loading failed.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataUnavailableError(
        f"tensorflow-datasets is not installed ({e})."
    ) from e
  kwargs = dict(
      split=["train", "test"],
      batch_size=-1,
      as_supervised=coarse_label is None,
      data_dir=tfds_data_dir,
  )
  if with_names:
    kwargs["with_info"] = True
  try:
    check_download_reachable(name, _urls_to_download(tfds, name, tfds_data_dir),
                             connect_timeout)
    loaded = tfds.load(name, **kwargs)
    splits, info = loaded if with_names else (loaded, None)
    train, test = tfds.as_numpy(splits)
  except DataUnavailableError:
    raise
  except ImportError as e:  # tfds is there, a module it imports lazily is not
    module = getattr(e, "name", None) or str(e)
    version = getattr(tfds, "__version__", None)
    raise DataUnavailableError(
        f"tensorflow-datasets{' ' + version if version else ''} is installed but"
        f" cannot load {name!r}: the module {module!r} it needs is missing"
        f" ({type(e).__name__}: {e}). Install the package that provides it"
        f" (usually `pip install {module}`); this version's extra, `pip install -e"
        " '.[tfds]'`, includes what tensorflow-datasets 4.9.10 needs."
    ) from e
  except Exception as e:  # download or preparation failed: say so, keep cause
    raise DataUnavailableError(
        f"tensorflow-datasets could not load {name!r}: {type(e).__name__}: {e}"
    ) from e

  def images(x):
    x = np.asarray(x, dtype=np.uint8)
    return x[..., 0] if x.shape[-1] == 1 else x

  def labels(x):
    return np.asarray(x, dtype=np.int32)

  def names(feature):
    try:
      return tuple(str(n) for n in info.features[feature].names)
    except Exception:  # pylint: disable=broad-except
      return None  # names are optional

  if coarse_label is None:
    return ImageDataset(
        train_images=images(train[0]),
        train_labels=labels(train[1]),
        test_images=images(test[0]),
        test_labels=labels(test[1]),
        class_names=names("label") if with_names else None,
    )
  return ImageDataset(
      train_images=images(train["image"]),
      train_labels=labels(train["label"]),
      test_images=images(test["image"]),
      test_labels=labels(test["label"]),
      train_coarse_labels=labels(train[coarse_label]),
      test_coarse_labels=labels(test[coarse_label]),
      class_names=names("label") if with_names else None,
      coarse_class_names=names(coarse_label) if with_names else None,
  )


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
  """``data_dir`` if given, else ``$NGM_JAX_DATA_DIR`` if set, else None."""
  data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
  return None if data_dir is None else Path(data_dir)


def tfds_installed() -> bool:
  """Whether tensorflow-datasets can be imported: then it provides the data
  when no folder is given, else :func:`ngm_jax.fetch.fetch` downloads them."""
  try:
    import tensorflow_datasets  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  except ImportError:
    return False
  return True


def _fetched(dataset: str) -> Path:
  """The cache folder holding ``dataset`` (:func:`ngm_jax.fetch.fetch`)."""
  try:
    return fetch.fetch(dataset)
  except DataUnavailableError as e:
    raise DataUnavailableError(
        f"No data folder given and tensorflow-datasets is not installed: {e}") from None


def _load(read_local, load_remote, data_dir: str | os.PathLike | None, how: str,
          dataset: str | None = None, classes: tuple[int, int | None] | None = None
          ) -> ImageDataset:
  """``read_local(folder)`` if a data folder is given or set; else
  ``load_remote()`` (tensorflow-datasets) if tensorflow-datasets is installed
  or there is no ``dataset`` to download; else ``read_local`` of the cache
  folder ``dataset`` is downloaded into (:mod:`ngm_jax.fetch`). A
  DataUnavailableError gains ``how``. ``classes``: ``(number of classes, of
  coarse classes or None)``: every label is checked to be a class id
  (ValueError naming the array, the first bad index and where the data came
  from; the file readers name the file first)."""
  folder = resolve_data_dir(data_dir)
  try:
    if folder is None and (dataset is None or tfds_installed()):
      source, data = "tensorflow-datasets", load_remote()
    else:
      source = folder if folder is not None else _fetched(dataset)
      data = read_local(source)
  except DataUnavailableError as e:
    raise DataUnavailableError(f"{e}\n{how}") from e
  if classes is not None:
    for split in ("train", "test"):
      for kind, n in (("labels", classes[0]), ("coarse_labels", classes[1])):
        labels = getattr(data, f"{split}_{kind}")
        problem = None if n is None else label_error(f"{source}: {split}_{kind}", labels, n)
        if problem:
          raise ValueError(problem)
  return data


def load_mnist(data_dir: str | os.PathLike | None = None) -> ImageDataset:
  """MNIST: uint8 images ``[N, 28, 28]``, int32 labels; 60,000 train, 10,000 test.

  Args:
    data_dir: a folder with the four IDX files; defaults to
      ``$NGM_JAX_DATA_DIR``. Without either, tensorflow-datasets is used if
      installed, else the files are downloaded into the cache
      (:func:`ngm_jax.fetch.fetch`).

  Raises:
    DataUnavailableError: with the ways to provide the data, if none works.
  """
  how = _how_to_provide(
      "MNIST", "the four IDX files (train-images-idx3-ubyte[.gz], ...)", "mnist"
  )
  return _load(read_mnist_idx, lambda: load_tfds("mnist"), data_dir, how, "mnist",
               (10, None))


# ----------------------------------------------------------------------------
# CIFAR-10, CIFAR-100 and mini-ImageNet (files: ngm_jax.pickles)


def load_cifar10(data_dir: str | os.PathLike | None = None) -> ImageDataset:
  """CIFAR-10: uint8 images ``[N, 32, 32, 3]``, int32 labels 0..9; 50,000
  train, 10,000 test; ``class_names`` :data:`CIFAR10_CLASSES`.

  Args:
    data_dir: a folder with ``cifar-10-batches-py/`` (or that folder itself);
      defaults to ``$NGM_JAX_DATA_DIR``. Without either, tensorflow-datasets
      (``cifar10``) is used if installed, else the archive is downloaded into
      the cache (:func:`ngm_jax.fetch.fetch`).

  Raises:
    DataUnavailableError: with the ways to provide the data, if none works.
  """
  how = _how_to_provide(
      "CIFAR-10",
      f"the python-pickle folder {CIFAR10_FOLDER}/ (data_batch_1 ..."
      " data_batch_5, test_batch; from cifar-10-python.tar.gz)", "cifar10",
  )
  remote = lambda: load_tfds("cifar10")._replace(class_names=CIFAR10_CLASSES)
  return _load(read_cifar10_pickles, remote, data_dir, how, "cifar10",
               (10, None))


def load_cifar100(data_dir: str | os.PathLike | None = None) -> ImageDataset:
  """CIFAR-100: uint8 images ``[N, 32, 32, 3]``; int32 fine labels 0..99
  (``*_labels``) and superclasses 0..19 (``*_coarse_labels``); 50,000 train,
  10,000 test.

  Args:
    data_dir: a folder with ``cifar-100-python/`` (or that folder itself);
      defaults to ``$NGM_JAX_DATA_DIR``. Without either, tensorflow-datasets
      (``cifar100``, features ``image``, ``label``, ``coarse_label``) is used
      if installed, else the archive is downloaded into the cache
      (:func:`ngm_jax.fetch.fetch`).

  Raises:
    DataUnavailableError: with the ways to provide the data, if none works.
  """
  how = _how_to_provide(
      "CIFAR-100",
      f"the python-pickle folder {CIFAR100_FOLDER}/ (train, test; from"
      " cifar-100-python.tar.gz)", "cifar100",
  )
  remote = lambda: load_tfds(
      "cifar100", coarse_label="coarse_label", with_names=True
  )
  return _load(read_cifar100_pickles, remote, data_dir, how, "cifar100",
               (100, 20))


def load_miniimagenet(
    data_dir: str | os.PathLike | None = None, num_classes: int | None = None
) -> ImageDataset:
  """mini-ImageNet: uint8 images ``[N, 84, 84, 3]``, int32 labels 0..99; 500
  train and 100 test images per class (see :func:`read_miniimagenet_pickles`
  for the class order and the split).

  Args:
    data_dir: the folder with ``mini-imagenet-cache-{train,val,test}.pkl``;
      defaults to ``$NGM_JAX_DATA_DIR``. There is no tensorflow-datasets
      builder: without either, this raises.
    num_classes: read only the first ``num_classes`` classes (saves memory);
      None: all.

  Raises:
    DataUnavailableError: no folder is given or a needed pickle is missing.
  """
  how = (
      "mini-ImageNet has no tensorflow-datasets builder: provide it as the"
      f" pickles {', '.join(MINIIMAGENET_FILES)} in a folder and pass"
      f" `--data-dir DIR` (or set {DATA_DIR_ENV}=DIR)."
  )

  def remote():
    raise DataUnavailableError("No data folder given for mini-ImageNet.")

  return _load(
      lambda folder: read_miniimagenet_pickles(folder, num_classes),
      remote, data_dir, how,
  )
