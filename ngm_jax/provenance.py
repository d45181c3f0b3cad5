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

import importlib.metadata
import os
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

# The official digests and the file hashing live in ngm_jax.digests (ngm_jax.fetch
# checks downloads with them too); their names stay importable from here.
from ngm_jax.digests import MNIST_OFFICIAL_GZ_SHA256, MNIST_OFFICIAL_SHA256, sha256_file

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
