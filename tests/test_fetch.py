"""Downloading the data without TensorFlow (ngm_jax.fetch), from a local HTTP server.

The server (http.server in a thread, on 127.0.0.1) serves small synthetic files;
the checksum table is set to theirs. tensorflow-datasets is made unimportable,
so the loaders fall back to the download. Nothing leaves this machine.
"""

import functools
import gzip
import hashlib
import http.server
import io
import socket
import sys
import tarfile
import threading
import time

import numpy as np
import pytest

from ngm_jax import cli, data, fetch, provenance
from tests.conftest import (fake_mnist, write_cifar10_pickles, write_cifar100_pickles,
                            write_mnist_idx)

MNIST_GZ = tuple(f"{stem}.gz" for stem in data.MNIST_FILES.values())


class _Handler(http.server.SimpleHTTPRequestHandler):
  """Serves ``directory``; records each path asked for in ``hits``; a path in
  ``short`` announces more bytes than it sends (a connection cut short)."""

  def __init__(self, *args, hits, short, **kwargs):
    self.hits, self.short = hits, short
    super().__init__(*args, **kwargs)

  def do_GET(self):
    self.hits.append(self.path)
    if self.path in self.short:
      body = self.short[self.path]
      self.send_response(200)
      self.send_header("Content-Length", str(len(body) + 1000))
      self.end_headers()
      self.wfile.write(body)
      self.close_connection = True
      return
    super().do_GET()

  def log_message(self, *args):  # quiet
    pass


@pytest.fixture
def server(tmp_path):
  """``(base URL, served folder, hits, short)``: an HTTP server on 127.0.0.1."""
  served = tmp_path / "served"
  served.mkdir()
  hits, short = [], {}
  handler = functools.partial(_Handler, directory=str(served), hits=hits, short=short)
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                            daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{httpd.server_address[1]}/", served, hits, short
  httpd.shutdown()
  httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
  """An empty cache folder, and no tensorflow-datasets (the download is used)."""
  folder = tmp_path / "cache"
  monkeypatch.setenv(fetch.CACHE_DIR_ENV, str(folder))
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
  return folder


def _sha256(raw: bytes) -> str:
  return hashlib.sha256(raw).hexdigest()


@pytest.fixture
def mnist_served(server, monkeypatch):
  """The four synthetic MNIST .gz files served, the checksum table set to
  their decompressed bytes, NGM_JAX_MNIST_URL pointing at the server."""
  url, served, hits, short = server
  expected = fake_mnist(n_train_per_class=3, n_test_per_class=2)
  write_mnist_idx(served, expected, gz=True)
  for name in MNIST_GZ:
    monkeypatch.setitem(fetch.CHECKSUMS, name, fetch.Checksum(
        _sha256(gzip.decompress((served / name).read_bytes())), gunzip=True))
  monkeypatch.setenv("NGM_JAX_MNIST_URL", url)
  return url, served, hits, short, expected


def _left_in(folder):
  return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_mnist_is_downloaded_checked_cached_and_loaded(cache, mnist_served):
  url, _, hits, _, expected = mnist_served
  loaded = data.load_mnist()
  for got, want in zip(loaded, expected):
    np.testing.assert_array_equal(got, want)
  assert sorted(hits) == sorted(f"/{name}" for name in MNIST_GZ)
  assert _left_in(cache) == ["mnist"] + [f"mnist/{name}" for name in sorted(MNIST_GZ)]
  # The second load reads the cache: the server is not asked again.
  again = data.load_mnist()
  np.testing.assert_array_equal(again.test_labels, expected.test_labels)
  assert len(hits) == 4
  # The run records where the data came from: the cache, hashed.
  found = provenance.data_provenance("split_mnist", None)
  assert found["source"] == "download" and found["data_dir"] == str(cache)
  assert set(found["files"]) == set(MNIST_GZ)
  assert found["official_mnist"] is False  # synthetic files


def test_a_corrupt_file_is_refused_naming_url_and_both_checksums(cache, mnist_served):
  url, served, _, _, _ = mnist_served
  other = gzip.compress(b"\0\0\x08\x01\0\0\0\x02ab")  # a valid IDX file, not the expected one
  (served / "t10k-images-idx3-ubyte.gz").write_bytes(other)
  with pytest.raises(data.DataUnavailableError) as err:
    data.load_mnist()
  message = str(err.value)
  assert f"{url}t10k-images-idx3-ubyte.gz: checksum mismatch" in message
  assert fetch.CHECKSUMS["t10k-images-idx3-ubyte.gz"].sha256 in message  # expected
  assert _sha256(gzip.decompress(other)) in message  # got
  assert "nothing was kept" in message and "NGM_JAX_MNIST_URL" in message
  assert _left_in(cache) == []  # not even the files that were right


def test_a_truncated_file_is_refused_and_nothing_is_kept(cache, mnist_served):
  url, served, _, _, _ = mnist_served
  name = "train-images-idx3-ubyte.gz"
  (served / name).write_bytes((served / name).read_bytes()[:-20])
  with pytest.raises(data.DataUnavailableError, match=rf"{url}{name}: not complete gzip data"):
    data.load_mnist()
  assert _left_in(cache) == []


def test_a_connection_cut_short_is_refused(cache, mnist_served):
  url, served, _, short, _ = mnist_served
  name = "train-labels-idx1-ubyte.gz"
  body = (served / name).read_bytes()
  short[f"/{name}"] = body
  with pytest.raises(data.DataUnavailableError,
                     match=rf"{url}{name}: truncated download: {len(body)} of the"
                           rf" {len(body) + 1000} bytes"):
    data.load_mnist()
  assert _left_in(cache) == []


def test_the_next_mirror_is_tried_after_a_bad_one(cache, mnist_served, server, monkeypatch,
                                                  refusing_url, capsys):
  url, _, hits, _, expected = mnist_served
  monkeypatch.delenv("NGM_JAX_MNIST_URL")
  monkeypatch.setitem(fetch.SOURCES, "mnist",
                      fetch.SOURCES["mnist"]._replace(mirrors=(refusing_url, url)))
  loaded = data.load_mnist()
  np.testing.assert_array_equal(loaded.train_images, expected.train_images)
  err = capsys.readouterr().err
  assert f"warning: {refusing_url}train-images-idx3-ubyte.gz: cannot reach" in err
  assert len(hits) == 4


def test_a_file_url_is_a_mirror_too(cache, mnist_served, monkeypatch):
  _, served, hits, _, expected = mnist_served
  monkeypatch.setenv("NGM_JAX_MNIST_URL", served.as_uri())
  loaded = data.load_mnist()
  np.testing.assert_array_equal(loaded.test_images, expected.test_images)
  assert hits == []


def test_offline_fails_at_once_saying_how_to_provide_the_data(cache, refusing_url, monkeypatch):
  monkeypatch.setenv("NGM_JAX_MNIST_URL", refusing_url)
  start = time.perf_counter()
  with pytest.raises(data.DataUnavailableError) as err:
    data.load_mnist()
  assert time.perf_counter() - start < 2
  message = str(err.value)
  assert f"{refusing_url}train-images-idx3-ubyte.gz: cannot reach 127.0.0.1" in message
  assert "ConnectionRefusedError" in message and "tensorflow-datasets is not installed" in message
  for how in ("--data-dir DIR", "ngm-jax[tfds]", "NGM_JAX_MNIST_URL", fetch.CACHE_DIR_ENV):
    assert how in message
  assert _left_in(cache) == []


def test_a_host_that_never_answers_is_given_up_after_the_timeout(cache, mnist_served,
                                                                 monkeypatch, capsys):
  url, _, hits, _, expected = mnist_served
  silent = socket.socket()  # accepts connections (the backlog) and never answers
  silent.bind(("127.0.0.1", 0))
  silent.listen(8)
  try:
    base = f"http://127.0.0.1:{silent.getsockname()[1]}/"
    monkeypatch.setenv("NGM_JAX_MNIST_URL", base)
    monkeypatch.setattr(fetch, "CONNECT_TIMEOUT_S", 0.5)
    start = time.perf_counter()
    with pytest.raises(data.DataUnavailableError, match="no answer within 0.5 s"):
      data.load_mnist()
    assert time.perf_counter() - start < 2
    assert _left_in(cache) == []
    # Before a good mirror: waited for once, then skipped for the other three files.
    monkeypatch.delenv("NGM_JAX_MNIST_URL")
    monkeypatch.setitem(fetch.SOURCES, "mnist",
                        fetch.SOURCES["mnist"]._replace(mirrors=(base, url)))
    capsys.readouterr()
    start = time.perf_counter()
    loaded = data.load_mnist()
    assert time.perf_counter() - start < 1.5  # not 4 x 0.5 s
    np.testing.assert_array_equal(loaded.train_labels, expected.train_labels)
    assert capsys.readouterr().err.count("no answer within 0.5 s") == 1 and len(hits) == 4
  finally:
    silent.close()


def test_the_command_line_exits_2_with_one_message_offline(cache, capsys):
  start = time.perf_counter()
  code = cli.main(["run", "--benchmark", "split_mnist", "--seeds", "1"])
  assert code == 2 and time.perf_counter() - start < 10
  err = capsys.readouterr().err
  assert err.count("error: ") == 1 and "Traceback" not in err
  assert "Could not download MNIST" in err and "--data-dir DIR" in err


def _tar_gz(folder, arcname) -> bytes:
  out = io.BytesIO()
  with tarfile.open(fileobj=out, mode="w:gz") as tar:
    tar.add(folder, arcname=arcname)
  return out.getvalue()


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_archives_are_downloaded_checked_and_extracted(cache, server, monkeypatch,
                                                             tmp_path, name):
  url, served, hits, _ = server
  source = fetch.SOURCES[name]
  write = write_cifar10_pickles if name == "cifar10" else write_cifar100_pickles
  expected = write(tmp_path / "made" / source.folder)
  archive = _tar_gz(tmp_path / "made" / source.folder, source.folder)
  (served / source.files[0]).write_bytes(archive)
  monkeypatch.setitem(fetch.CHECKSUMS, source.files[0], fetch.Checksum(_sha256(archive)))
  monkeypatch.setenv("NGM_JAX_CIFAR_URL", url)
  load = data.load_cifar10 if name == "cifar10" else data.load_cifar100
  loaded = load()
  np.testing.assert_array_equal(loaded.train_images, expected.train_images)
  np.testing.assert_array_equal(loaded.test_labels, expected.test_labels)
  assert _left_in(cache) == [source.folder] + sorted(
      f"{source.folder}/{p.name}" for p in (tmp_path / "made" / source.folder).iterdir())
  load()
  assert hits == [f"/{source.files[0]}"]  # once: the second load read the cache


def test_a_truncated_cifar_archive_is_refused_with_both_checksums(cache, server, monkeypatch,
                                                                  tmp_path):
  url, served, _, _ = server
  write_cifar10_pickles(tmp_path / "made")
  archive = _tar_gz(tmp_path / "made", "cifar-10-batches-py")
  (served / "cifar-10-python.tar.gz").write_bytes(archive[:len(archive) // 2])
  monkeypatch.setitem(fetch.CHECKSUMS, "cifar-10-python.tar.gz",
                      fetch.Checksum(_sha256(archive)))
  monkeypatch.setenv("NGM_JAX_CIFAR_URL", url)
  with pytest.raises(data.DataUnavailableError) as err:
    data.load_cifar10()
  message = str(err.value)
  assert f"{url}cifar-10-python.tar.gz: checksum mismatch: expected SHA-256" in message
  assert _sha256(archive) in message and _sha256(archive[:len(archive) // 2]) in message
  assert "NGM_JAX_CIFAR_URL" in message
  assert _left_in(cache) == []


def test_an_archive_without_the_folder_is_refused_and_extracts_nothing_else(
    cache, server, monkeypatch, tmp_path):
  url, served, _, _ = server
  write_cifar10_pickles(tmp_path / "made")
  out = io.BytesIO()
  with tarfile.open(fileobj=out, mode="w:gz") as tar:
    tar.add(tmp_path / "made", arcname="wrong-folder")
    tar.add(tmp_path / "made" / "test_batch", arcname="cifar-10-batches-py/../escaped")
  (served / "cifar-10-python.tar.gz").write_bytes(out.getvalue())
  monkeypatch.setitem(fetch.CHECKSUMS, "cifar-10-python.tar.gz",
                      fetch.Checksum(_sha256(out.getvalue())))
  monkeypatch.setenv("NGM_JAX_CIFAR_URL", url)
  with pytest.raises(data.DataUnavailableError,
                     match="cifar-10-python.tar.gz: the archive lacks the files of"
                           " cifar-10-batches-py/"):
    data.load_cifar10()
  assert _left_in(cache) == [] and not (tmp_path / "escaped").exists()


def test_the_checksum_table_holds_the_official_values():
  # MNIST: of the decompressed official IDX files (the values provenance checks);
  # CIFAR: of the archives, as Keras pins them.
  assert {n[:-3]: c.sha256 for n, c in fetch.CHECKSUMS.items() if c.gunzip} == \
      provenance.MNIST_OFFICIAL_SHA256
  assert fetch.CHECKSUMS["cifar-10-python.tar.gz"].sha256.startswith("6d958be0")
  assert fetch.CHECKSUMS["cifar-100-python.tar.gz"].sha256.startswith("85cd44d0")
  assert set(fetch.CHECKSUMS) == {f for s in fetch.SOURCES.values() for f in s.files}


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.setenv(fetch.CACHE_DIR_ENV, str(tmp_path / "mine"))
  assert fetch.cache_dir() == tmp_path / "mine"
  monkeypatch.delenv(fetch.CACHE_DIR_ENV)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert fetch.cache_dir() == tmp_path / "xdg" / "ngm-jax" / "data"
