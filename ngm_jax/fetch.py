"""Downloads MNIST, CIFAR-10 and CIFAR-100 into a cache, checked, without TensorFlow.

The loaders of :mod:`ngm_jax.data` use this when no data folder is given and
tensorflow-datasets is not installed. :func:`fetch` leaves the files in the
cache folder in the layout a ``--data-dir`` has, so the cache folder can also
be given as ``--data-dir``:

* ``mnist/``: the four IDX files as distributed, ``train-images-idx3-ubyte.gz``
  etc., each accepted when the SHA-256 of its DECOMPRESSED bytes is the
  official release's (mirrors may recompress: the ``.gz`` bytes may differ);
* ``cifar-10-batches-py/`` and ``cifar-100-python/``: the python-pickle
  folders of the official archives, extracted once the archive's SHA-256 is
  right (the archive is not kept).

The cache folder is ``$NGM_JAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/ngm-jax/data``
or ``~/.cache/ngm-jax/data``. The public mirrors are tried in order; a mirror
of one's own replaces them: ``NGM_JAX_MNIST_URL`` (a folder URL holding the four
``.gz`` files) and ``NGM_JAX_CIFAR_URL`` (one holding the two archives);
``file://`` URLs work too. Everything is downloaded into a temporary folder
inside the cache folder, checked, and only then moved into place with
:func:`os.replace`: a download that fails or is refused leaves nothing behind
(a process killed outright leaves its ``.NAME-*`` temporary folder, which may
be deleted). Offline this fails within seconds: each host is first connected
to with a timeout (:data:`CONNECT_TIMEOUT_S`, the name lookup included).
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import urllib.parse
import urllib.request
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, NamedTuple, Sequence

from tqdm import tqdm

from ngm_jax.dataset import DataUnavailableError
from ngm_jax.idx import MNIST_FILES, find_mnist_files
from ngm_jax.pickles import (CIFAR10_FOLDER, CIFAR100_FOLDER, find_cifar10_files,
                             find_cifar100_files)
from ngm_jax.digests import MNIST_OFFICIAL_SHA256, sha256_file

__all__ = [
    "CACHE_DIR_ENV",
    "CHECKSUMS",
    "CONNECT_TIMEOUT_S",
    "Checksum",
    "SOURCES",
    "Source",
    "cache_dir",
    "download_endpoints",
    "fetch",
    "mirrors",
    "unreachable",
]

CACHE_DIR_ENV = "NGM_JAX_CACHE_DIR"
#: Seconds allowed to connect to a host (name lookup included) and for each read.
CONNECT_TIMEOUT_S = 10.0


class Checksum(NamedTuple):
  """The SHA-256 (hex) a downloaded file must have: of its bytes, or, with
  ``gunzip``, of its decompressed bytes."""
  sha256: str
  gunzip: bool = False


#: File name → the checksum it is accepted with.
CHECKSUMS: dict[str, Checksum] = {
    # MNIST: the SHA-256 of the DECOMPRESSED official files (LeCun, Cortes &
    # Burges), i.e. of the IDX data: checked equal to `zcat FILE | sha256sum` of a
    # copy of the official release, and the values provenance records as
    # official. The .gz bytes of a mirror may differ (other gzip settings).
    **{f"{stem}.gz": Checksum(MNIST_OFFICIAL_SHA256[stem], gunzip=True)
       for stem in MNIST_FILES.values()},
    # CIFAR: the SHA-256 of the official archives that Keras pins
    # (keras/datasets/cifar10.py, cifar100.py; 170,498,071 and 169,001,437
    # bytes), whose MD5s are those torchvision pins (c58f30108f718f92721af3b95e74349a,
    # eb9058c3a382ffc7106e4002c42a8d85).
    "cifar-10-python.tar.gz": Checksum(
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
    "cifar-100-python.tar.gz": Checksum(
        "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"),
}


class Source(NamedTuple):
  """Where a dataset is downloaded from and how it is left in the cache.

  Attributes:
    title: the dataset's name in messages (``"MNIST"``).
    files: the file names to download from each mirror (keys of :data:`CHECKSUMS`).
    mirrors: base URLs (ending in ``/``) holding ``files``, tried in order.
    url_env: the environment variable whose URL replaces ``mirrors``.
    folder: the folder in the cache the data end up in.
    extract: the archive holds ``folder`` (a ``.tar.gz``): extract it.
    find: ``cache -> [Path]``, the reader's file search; non-empty when present.
  """
  title: str
  files: tuple[str, ...]
  mirrors: tuple[str, ...]
  url_env: str
  folder: str
  extract: bool
  find: Callable[[Path], Sequence[Path]]


def _find_mnist(cache: Path) -> list[Path]:
  """The four MNIST files in ``cache`` as the reader finds them; [] unless all are."""
  found = find_mnist_files(cache)
  return found if len(found) == len(MNIST_FILES) else []


_CIFAR_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
#: Dataset name (the tensorflow-datasets name) → its :class:`Source`.
SOURCES: dict[str, Source] = {
    "mnist": Source(
        "MNIST", tuple(f"{stem}.gz" for stem in MNIST_FILES.values()),
        ("https://storage.googleapis.com/cvdf-datasets/mnist/",
         "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        "NGM_JAX_MNIST_URL", "mnist", False, _find_mnist),
    "cifar10": Source("CIFAR-10", ("cifar-10-python.tar.gz",), _CIFAR_MIRRORS,
                      "NGM_JAX_CIFAR_URL", CIFAR10_FOLDER, True, find_cifar10_files),
    "cifar100": Source("CIFAR-100", ("cifar-100-python.tar.gz",), _CIFAR_MIRRORS,
                       "NGM_JAX_CIFAR_URL", CIFAR100_FOLDER, True, find_cifar100_files),
}


def cache_dir() -> Path:
  """``$NGM_JAX_CACHE_DIR``, else the user cache directory's ``ngm-jax/data``
  (``$XDG_CACHE_HOME``, default ``~/.cache``)."""
  env = os.environ.get(CACHE_DIR_ENV)
  if env:
    return Path(env).expanduser()
  base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
  return Path(base) / "ngm-jax" / "data"


def mirrors(name: str) -> tuple[str, ...]:
  """The base URLs ``name`` is downloaded from: its URL variable's, else the
  public mirrors."""
  source = SOURCES[name]
  own = os.environ.get(source.url_env)
  return (own.rstrip("/") + "/",) if own else source.mirrors


# ----------------------------------------------------------------------------
# reaching a host (also what ngm_jax.data checks before tensorflow-datasets)


def download_endpoints(urls) -> list[tuple[str, int]]:
  """The ``(host, port)`` a download of ``urls`` connects to first: the proxy
  configured for the URL's scheme (``HTTPS_PROXY``, ...) unless the host is
  exempt (``NO_PROXY``), else the URL's own host. URLs without a host
  (``file://``) have none."""
  proxies = urllib.request.getproxies()
  endpoints = []
  for url in urls:
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
      continue
    target = parts
    proxy = proxies.get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
      target = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    default_port = 443 if target.scheme == "https" else 80
    endpoint = (target.hostname, target.port or default_port)
    if target.hostname and endpoint not in endpoints:
      endpoints.append(endpoint)
  return endpoints


def unreachable(host: str, port: int, timeout: float) -> str | None:
  """None if a TCP connection to ``host:port`` opens within ``timeout``
  seconds (name lookup included), else why not."""
  outcome: list[str | None] = []

  def connect():
    try:
      with socket.create_connection((host, port), timeout=timeout):
        outcome.append(None)
    except OSError as e:
      outcome.append(f"{type(e).__name__}: {e}")

  # The name lookup has no timeout of its own: wait for the thread instead.
  thread = threading.Thread(target=connect, daemon=True)
  thread.start()
  thread.join(timeout)
  return outcome[0] if outcome else f"no answer within {timeout:g} s"


# ----------------------------------------------------------------------------
# downloading


class _Refused(Exception):
  """One URL gave nothing usable; the message says why (it names the URL)."""


class _Unreachable(_Refused):
  """The URL's host (or proxy) did not answer: later files skip that mirror."""


def _reach(url: str, timeout: float) -> None:
  for host, port in download_endpoints([url]):
    reason = unreachable(host, port, timeout)
    if reason is not None:
      raise _Unreachable(f"{url}: cannot reach {host}:{port} ({reason})")


def _download(url: str, dest: Path, timeout: float, progress: bool) -> None:
  """Writes ``url``'s bytes to ``dest``; _Refused if the transfer fails or
  ends before its announced length."""
  request = urllib.request.Request(url, headers={"User-Agent": "ngm-jax"})
  received = 0
  try:
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as f:
      length = response.headers.get("Content-Length")
      length = int(length) if length and length.isdigit() else None
      with tqdm(total=length, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.stem, disable=not progress, leave=False) as bar:
        while block := response.read(1 << 20):
          f.write(block)
          received += len(block)
          bar.update(len(block))
  except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts are OSErrors
    if isinstance(e, TimeoutError) or isinstance(getattr(e, "reason", None), TimeoutError):
      # a host that does not answer: skip it from now on
      raise _Unreachable(f"{url}: {type(e).__name__}: {e} (no answer within"
                         f" {timeout:g} s)") from None
    raise _Refused(f"{url}: {type(e).__name__}: {e}") from None
  if length is not None and received != length:
    raise _Refused(f"{url}: truncated download: {received} of the {length} bytes"
                   " announced arrived")


def _verify(url: str, path: Path, expected: Checksum) -> None:
  """_Refused, naming the URL, the expected and the found SHA-256, unless
  ``path`` (decompressed, with ``expected.gunzip``) has ``expected.sha256``."""
  what = "decompressed data" if expected.gunzip else "file"
  try:
    got = sha256_file(path, gunzip=expected.gunzip)
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise _Refused(
        f"{url}: not complete gzip data ({type(e).__name__}: {e}; truncated or"
        f" corrupt); expected SHA-256 {expected.sha256} of its {what}") from None
  if got != expected.sha256:
    raise _Refused(f"{url}: checksum mismatch: expected SHA-256 {expected.sha256} of its"
                   f" {what}, got {got} (a corrupt download, or not the official file)")


def _get(file: str, bases: Sequence[str], staging: Path, dead: dict[str, str],
         timeout: float, progress: bool) -> Path:
  """Downloads ``file`` into ``staging`` from the first of ``bases`` that gives
  it with the right checksum; ``dead`` (base → why) collects mirrors that
  could not be reached, which later files skip.

  Raises:
    _Refused: naming each URL tried and why it failed.
  """
  reasons = []
  for i, base in enumerate(bases):
    url = base + file
    if base in dead:
      reasons.append(f"{url}: skipped ({dead[base]})")
      continue
    dest = staging / f"{file}.part"
    try:
      _reach(url, timeout)
      _download(url, dest, timeout, progress)
      _verify(url, dest, CHECKSUMS[file])
    except _Refused as e:
      dest.unlink(missing_ok=True)
      reasons.append(str(e))
      if isinstance(e, _Unreachable):
        dead[base] = "its host did not answer"
      if i + 1 < len(bases):
        print(f"warning: {e}; trying the next mirror.", file=sys.stderr, flush=True)
      continue
    return dest.replace(staging / file)
  raise _Refused("\n  ".join(reasons))


def _extract(archive: Path, folder: str, into: Path) -> Path:
  """Extracts the regular files directly in ``folder/`` of the tar.gz
  ``archive`` into ``into/folder`` (nothing else: no links, no other paths)."""
  out = into / folder
  out.mkdir()
  with tarfile.open(archive, "r:gz") as tar:
    for member in tar:
      if member.isfile() and PurePosixPath(member.name).parent == PurePosixPath(folder):
        with tar.extractfile(member) as src, open(out / PurePosixPath(member.name).name,
                                                  "wb") as dst:
          shutil.copyfileobj(src, dst, 1 << 20)
  return out


def _place(staging: Path, source: Source, cache: Path) -> None:
  """Moves the checked files from ``staging`` to ``cache/source.folder``."""
  target = cache / source.folder
  if source.extract:
    extracted = _extract(staging / source.files[0], source.folder, staging)
    if not source.find(staging):
      raise _Refused(f"{source.files[0]}: the archive lacks the files of {source.folder}/")
    if target.exists():  # an incomplete copy (else fetch would not run): ours, replace it
      shutil.rmtree(target)
    os.replace(extracted, target)
    return
  target.mkdir(exist_ok=True)
  for file in source.files:
    os.replace(staging / file, target / file)


def fetch(name: str, cache: str | os.PathLike | None = None, *,
          timeout: float | None = None, progress: bool = True) -> Path:
  """Downloads dataset ``name`` into the cache unless it is there; returns the
  cache folder (a data folder the loaders of :mod:`ngm_jax.data` read).

  Args:
    name: a key of :data:`SOURCES` (``"mnist"``, ``"cifar10"``, ``"cifar100"``).
    cache: the cache folder; None: :func:`cache_dir`.
    timeout: seconds to connect to a host and for each read; None:
      :data:`CONNECT_TIMEOUT_S`.
    progress: show a tqdm progress bar per file (on stderr).

  Raises:
    DataUnavailableError: no mirror gave a file (each URL and why: unreachable,
      an HTTP error, a truncated download, or a checksum mismatch with the
      expected and the found SHA-256); the cache is left as it was.
  """
  source = SOURCES[name]
  cache = Path(cache) if cache is not None else cache_dir()
  if source.find(cache):
    return cache
  timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
  bases, dead = mirrors(name), {}
  try:
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
  except OSError as e:
    raise DataUnavailableError(
        f"Cannot write {source.title} into the cache folder {str(cache)!r} ({e}); set"
        f" {CACHE_DIR_ENV} to a writable folder.") from None
  try:
    print(f"Downloading {source.title} into {cache} ...", file=sys.stderr, flush=True)
    for file in source.files:
      _get(file, bases, staging, dead, timeout, progress)
    _place(staging, source, cache)
  except _Refused as e:
    raise DataUnavailableError(
        f"Could not download {source.title} (nothing was kept in {str(cache)!r}):\n  {e}"
    ) from None
  except (OSError, EOFError, tarfile.TarError) as e:  # disk full, a bad archive, ...
    raise DataUnavailableError(
        f"Could not store {source.title} in the cache folder {str(cache)!r} (nothing was"
        f" kept): {type(e).__name__}: {e}") from None
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return cache
