"""Where a run came from: library versions, the code's git revision, the data.

Everything here is recorded in ``run.json`` by the command line
(:func:`experiments.common.load_experiment`) and costs well under a second for
MNIST (the four files are hashed once more after they were read):

* :func:`versions`: the installed versions of jax, jaxlib, optax, flax, numpy
  (and orbax-checkpoint when installed);
* :func:`git_revision`: the commit and whether the working tree has changes,
  when the code runs from a git checkout (None otherwise);
* :func:`data_provenance`: the SHA-256 of the data files read, and for MNIST
  whether they are the official files; for data that came through
  tensorflow-datasets, its version and the dataset's version instead. What
  data a benchmark reads and which files its loader opens are fields of its
  record in the registry (:class:`ngm_jax.benchmarks.Benchmark`'s
  ``dataset`` and ``data_files``), so a registered stream of one's own is
  recorded the same way.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import os
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = [
    "MNIST_OFFICIAL_GZ_SHA256",
    "MNIST_OFFICIAL_SHA256",
    "PACKAGES",
    "data_files",
    "data_provenance",
    "git_revision",
    "mnist_official",
    "sha256_file",
    "tfds_provenance",
    "versions",
]

#: Distributions whose versions a run records (pip names).
PACKAGES = ("jax", "jaxlib", "optax", "flax", "numpy")
#: Recorded only when installed.
OPTIONAL_PACKAGES = ("orbax-checkpoint",)

# The official MNIST release (LeCun, Cortes & Burges), the four gzip files as
# distributed (yann.lecun.com/exdb/mnist, mirrored unchanged by CVDF at
# storage.googleapis.com/cvdf-datasets/mnist/). SHA-256 and sizes as published
# by tensorflow-datasets in tensorflow_datasets/url_checksums/mnist.txt (read
# from the tensorflow-datasets 4.9.10 wheel); the sizes (9912422, 28881,
# 1648877, 4542 bytes) are those printed on the MNIST page. Not checked here
# against the files themselves: no copy of the original .gz files was at hand.
MNIST_OFFICIAL_GZ_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
# The same four files decompressed (the IDX data themselves, 47040016, 60008,
# 7840016 and 10008 bytes). There is no official publication of these digests;
# they are the values that several independent public projects pin for the
# decompressed official files (one pairs each with the .gz digest above), and
# the MD5s of the same files that many more projects pin (6bbc9ace898e44ae...,
# a25bea736e30d166..., 2646ac647ad5339d..., 27ae3e4e09519cfb...) agree with the
# files these SHA-256 describe; and `zcat F | sha256sum` of a copy of the official
# .gz files gives these (checked when ngm_jax.fetch took them as its checksums).
# A re-compressed copy of the official data (other gzip settings: other .gz
# bytes) is recognised by these.
MNIST_OFFICIAL_SHA256 = {
    "train-images-idx3-ubyte":
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte":
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte":
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte":
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# ----------------------------------------------------------------------------
# software


def versions(packages: Iterable[str] = PACKAGES,
             optional: Iterable[str] = OPTIONAL_PACKAGES) -> dict[str, str | None]:
  """``{distribution: version}`` of ``packages`` (None if one is missing),
  then those of ``optional`` that are installed."""
  def version(name):
    try:
      return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      return None

  found = {name: version(name) for name in packages}
  found.update({name: v for name in optional if (v := version(name)) is not None})
  return found


def _git(args: list[str], cwd: Path, timeout: float) -> str | None:
  try:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False,
                          env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
  except (OSError, subprocess.SubprocessError):  # no git, timed out
    return None
  return done.stdout.strip() if done.returncode == 0 else None


def git_revision(path: str | os.PathLike | None = None,
                 timeout: float = 2.0) -> dict[str, Any] | None:
  """The git commit of the checkout the code runs from, and whether it is dirty.

  Args:
    path: the checkout's top folder; default: the folder above the installed
      ``ngm_jax`` package, which is a checkout for an editable install (``pip
      install -e .``) or a run from the source tree, and not for a wheel install
      (then None, even when site-packages lies inside some other checkout).
    timeout: seconds allowed to each ``git`` call.

  Returns:
    ``{"commit": "<40 hex digits>", "dirty": bool}`` (dirty: tracked files
    differ from the commit; untracked files do not count), or None when
    ``path`` is not the top of a git checkout, git is missing or too slow.
  """
  root = Path(path) if path is not None else Path(__file__).resolve().parent.parent
  if not root.is_dir():
    return None
  top = _git(["rev-parse", "--show-toplevel"], root, timeout)
  if top is None or Path(top).resolve() != root.resolve():
    return None
  commit = _git(["rev-parse", "HEAD"], root, timeout)
  if commit is None:
    return None
  status = _git(["status", "--porcelain", "--untracked-files=no"], root, timeout)
  return {"commit": commit, "dirty": None if status is None else bool(status)}


# ----------------------------------------------------------------------------
# data


def sha256_file(path: str | os.PathLike, gunzip: bool = False) -> str:
  """The SHA-256 (hex) of a file's bytes, or of its decompressed bytes with
  ``gunzip``; read in 1 MiB blocks."""
  digest = hashlib.sha256()
  opener = gzip.open if gunzip else open
  with opener(path, "rb") as f:
    while block := f.read(1 << 20):
      digest.update(block)
  return digest.hexdigest()


def data_files(benchmark: str, data_dir: str | os.PathLike) -> list[Path]:
  """The files the loader of ``benchmark`` reads from ``data_dir``, found the
  way it finds them: its registry record's ``data_files`` (e.g.
  :func:`ngm_jax.idx.find_mnist_files`); [] if none are there, or the record
  names no file search.

  For mini-ImageNet these are the pickles present (a run of at most 64
  classes opens only the train pickle).

  Raises:
    ValueError: ``benchmark`` is not registered (naming those that are).
  """
  from ngm_jax import benchmarks  # pylint: disable=g-import-not-at-top
  record = benchmarks.get(benchmark)
  if record.data_files is None:
    return []
  return [Path(p) for p in record.data_files(Path(data_dir))]


def mnist_official(files: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
  """Whether MNIST's four files (``{name: {"sha256", "content_sha256"}}`` as
  :func:`data_provenance` records them) are the official release.

  Returns:
    None unless ``files`` holds the four MNIST files. Else ``{"official":
    bool, "identical_gz": bool}``: ``official``, the decompressed IDX data of
    all four equal the official data (:data:`MNIST_OFFICIAL_SHA256`);
    ``identical_gz``, all four are the official ``.gz`` files byte for byte
    (:data:`MNIST_OFFICIAL_GZ_SHA256`; False for uncompressed files).
  """
  by_stem = {}
  for name, record in files.items():
    stem = name[:-3] if name.endswith(".gz") else name
    by_stem[stem] = (name, record)
  if set(by_stem) != set(MNIST_OFFICIAL_SHA256):
    return None
  official = all(record.get("content_sha256", record.get("sha256"))
                 == MNIST_OFFICIAL_SHA256[stem] for stem, (_, record) in by_stem.items())
  identical_gz = all(name.endswith(".gz")
                     and record.get("sha256") == MNIST_OFFICIAL_GZ_SHA256[name]
                     for stem, (name, record) in by_stem.items())
  return {"official": official, "identical_gz": identical_gz}


def tfds_provenance(name: str, tfds_data_dir: str | None = None) -> dict[str, Any]:
  """The tensorflow-datasets version and ``name``'s dataset version (its
  builder's; the prepared files' when present), without any download."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    return {"source": "tensorflow-datasets", "dataset": name, "tfds_version": None}
  record = {"source": "tensorflow-datasets", "dataset": name,
            "tfds_version": getattr(tfds, "__version__", None)}
  try:
    builder = tfds.builder(name, data_dir=tfds_data_dir)
    record["dataset_version"] = str(builder.version)
    record["data_dir"] = str(builder.data_dir)
  except Exception as e:  # pylint: disable=broad-except
    record["dataset_version"] = None
    record["error"] = f"{type(e).__name__}: {e}"
  return record


def data_provenance(benchmark: str, data_dir: str | os.PathLike | None
                    ) -> dict[str, Any] | None:
  """What ``benchmark``'s data were read from, for ``run.json``.

  Args:
    benchmark: a benchmark name (:data:`ngm_jax.benchmarks.BENCHMARKS`); None
      is returned for others, and for a record without a ``dataset``.
    data_dir: the folder given (``--data-dir``), else ``$NGM_JAX_DATA_DIR``,
      else the data came through tensorflow-datasets when it is installed,
      else they were downloaded into the cache (:mod:`ngm_jax.fetch`).

  Returns:
    From a folder: ``{"source": "files", "data_dir", "dataset", "files":
    {name: {"sha256", "bytes"[, "content_sha256"]}}}`` (``dataset``: the
    record's; files: those its ``data_files`` finds; content_sha256: of the
    decompressed bytes of a ``.gz`` file), for MNIST with
    ``"official_mnist"`` and ``"official_mnist_gz"`` (:func:`mnist_official`).
    Downloaded: the same with ``"source": "download"`` and the cache folder
    as ``data_dir``. From tensorflow-datasets: :func:`tfds_provenance` of the record's
    ``dataset``.
  """
  # pylint: disable=g-import-not-at-top
  from ngm_jax import benchmarks, fetch
  from ngm_jax.data import resolve_data_dir, tfds_installed
  record = benchmarks.BENCHMARKS.get(benchmark)
  if record is None or record.dataset is None:
    return None
  dataset = record.dataset
  folder, source = resolve_data_dir(data_dir), "files"
  if folder is None:
    if dataset not in fetch.SOURCES or tfds_installed():
      return tfds_provenance(dataset)
    folder, source = fetch.cache_dir(), "download"
  files = {}
  for path in data_files(benchmark, folder):
    entry = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    if path.suffix == ".gz":
      entry["content_sha256"] = sha256_file(path, gunzip=True)
    files[path.name] = entry
  found = {"source": source, "data_dir": str(folder), "dataset": dataset, "files": files}
  if dataset == "mnist":
    check = mnist_official(files)
    found["official_mnist"] = None if check is None else check["official"]
    found["official_mnist_gz"] = None if check is None else check["identical_gz"]
  return found
