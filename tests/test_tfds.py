"""The tensorflow-datasets path: offline it fails within seconds with our message.

The first tests use a stand-in for tensorflow_datasets and a mocked network
(no test opens a connection). The last ones need the ``tfds`` extra installed
(skipped without it): the real tensorflow-datasets imports, builds the MNIST
builder without network, and offline ``load_tfds`` fails fast on it too.
"""

import os
import socket
import sys
import time
import types

import numpy as np
import pytest

from ngm_jax import data, fetch, provenance

MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/train-images-idx3-ubyte.gz"


def _fake_tfds(prepared=False, urls=(MNIST_URL,), load_error=None):
  """A stand-in for tensorflow_datasets whose ``load`` records that it ran."""
  calls = []

  class Builder:
    url_infos = {url: object() for url in urls}
    version = "3.0.1"
    data_dir = "/nowhere/mnist/3.0.1"

    def is_prepared(self):
      return prepared

  def load(name, **kwargs):
    calls.append(name)
    if load_error is not None:
      raise load_error
    x = np.zeros((2, 28, 28, 1), np.uint8)
    y = np.zeros(2, np.int64)
    return [(x, y), (x, y)]

  module = types.SimpleNamespace(builder=lambda name, data_dir=None: Builder(), load=load,
                                 as_numpy=lambda x: x, __version__="4.9.10")
  return module, calls


def _no_network(monkeypatch, delay=0.0, error=None):
  """socket.create_connection, as ngm_jax.fetch calls it for ngm_jax.data,
  fails (after ``delay`` seconds) instead of connecting; returns the endpoints
  it was asked for."""
  asked = []

  def create_connection(address, timeout=None):
    asked.append(address)
    time.sleep(delay)
    raise error or socket.gaierror(-2, "Name or service not known")

  monkeypatch.setattr(fetch.socket, "create_connection", create_connection)
  return asked


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
  for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
              "all_proxy", "NO_PROXY", "no_proxy"):
    monkeypatch.delenv(var, raising=False)
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)


def test_offline_download_fails_at_once_with_our_message(monkeypatch):
  module, calls = _fake_tfds()
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
  asked = _no_network(monkeypatch)
  start = time.perf_counter()
  with pytest.raises(data.DataUnavailableError) as err:
    data.load_mnist()
  assert time.perf_counter() - start < 2
  assert asked == [("storage.googleapis.com", 443)]
  assert calls == []  # tfds never started its ~3.5 minutes of retries
  message = str(err.value)
  assert "storage.googleapis.com:443" in message and "Name or service not known" in message
  assert "--data-dir" in message and data.DATA_DIR_ENV in message


def test_a_name_lookup_that_hangs_is_given_up_after_the_timeout(monkeypatch):
  module, calls = _fake_tfds()
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
  _no_network(monkeypatch, delay=5.0)
  start = time.perf_counter()
  with pytest.raises(data.DataUnavailableError, match="no answer within 0.2 s"):
    data.load_tfds("mnist", connect_timeout=0.2)
  assert time.perf_counter() - start < 2 and calls == []


def test_a_prepared_dataset_is_read_without_network(monkeypatch):
  module, calls = _fake_tfds(prepared=True)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
  asked = _no_network(monkeypatch)
  loaded = data.load_tfds("mnist")
  assert asked == [] and calls == ["mnist"]
  assert loaded.train_images.shape == (2, 28, 28)


def test_a_reachable_host_lets_tfds_download(monkeypatch):
  module, calls = _fake_tfds()
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)

  class Connection:
    def __enter__(self):
      return self

    def __exit__(self, *exc):
      return False

  monkeypatch.setattr(fetch.socket, "create_connection", lambda address, timeout=None: Connection())
  data.load_tfds("mnist")
  assert calls == ["mnist"]


def test_a_configured_proxy_is_what_is_checked(monkeypatch):
  module, _ = _fake_tfds()
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
  monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
  asked = _no_network(monkeypatch, error=ConnectionRefusedError(111, "Connection refused"))
  with pytest.raises(data.DataUnavailableError, match="proxy.example:3128"):
    data.load_tfds("mnist")
  assert asked == [("proxy.example", 3128)]
  monkeypatch.setenv("NO_PROXY", "storage.googleapis.com")
  assert fetch.download_endpoints([MNIST_URL]) == [("storage.googleapis.com", 443)]


def test_a_module_tfds_imports_lazily_is_named(monkeypatch):
  missing = ModuleNotFoundError("No module named 'importlib_resources'",
                                name="importlib_resources")
  module, _ = _fake_tfds(prepared=True, load_error=missing)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
  with pytest.raises(data.DataUnavailableError) as err:
    data.load_mnist()
  message = str(err.value)
  assert "is installed but cannot load 'mnist'" in message
  assert "pip install importlib_resources" in message


def test_the_tfds_extra_lists_what_tfds_needs():
  tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
  from pathlib import Path  # pylint: disable=g-import-not-at-top
  pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
  extra = pyproject["project"]["optional-dependencies"]["tfds"]
  names = {entry.split(">")[0].split("=")[0].split("<")[0].strip() for entry in extra}
  assert {"tensorflow-datasets", "tensorflow-cpu", "importlib_resources"} <= names


# ----------------------------------------------------------------------------
# The real tensorflow-datasets (pip install -e ".[tfds]"); no network used.


def _real_tfds():
  """tensorflow_datasets; the test is skipped without it, unless
  NGM_JAX_REQUIRE_TFDS=1 (CI's step with the extra installed) makes that a failure."""
  if os.environ.get("NGM_JAX_REQUIRE_TFDS") == "1":
    import tensorflow_datasets  # pylint: disable=g-import-not-at-top
    return tensorflow_datasets
  return pytest.importorskip("tensorflow_datasets",
                             reason="the tfds extra is not installed")


def test_real_tfds_imports_and_builds_the_mnist_builder_offline(tmp_path, monkeypatch):
  tfds = _real_tfds()
  import importlib_resources  # pylint: disable=g-import-not-at-top,unused-import
  _no_network(monkeypatch)
  builder = tfds.builder("mnist", data_dir=str(tmp_path))
  assert not builder.is_prepared()
  assert str(builder.version).count(".") == 2
  # tfds's own record of the official files is the table provenance checks against.
  published = {info.filename: info.checksum for info in builder.url_infos.values()}
  assert published == provenance.MNIST_OFFICIAL_GZ_SHA256


def test_real_tfds_offline_fails_in_seconds(tmp_path, monkeypatch):
  _real_tfds()
  asked = _no_network(monkeypatch)
  start = time.perf_counter()
  with pytest.raises(data.DataUnavailableError, match="storage.googleapis.com:443"):
    data.load_tfds("mnist", str(tmp_path))
  assert time.perf_counter() - start < 30  # tfds alone: ~205 s (10 retries, backoff)
  assert asked == [("storage.googleapis.com", 443)]
