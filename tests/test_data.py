"""Loading MNIST from IDX files and (faked) tensorflow-datasets; clear errors."""

import sys
import types

import numpy as np
import pytest

from ngm_jax import data
from tests.conftest import write_mnist_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, suffix):
  array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  data.write_idx(tmp_path / f"a{suffix}", array)
  np.testing.assert_array_equal(data.read_idx(tmp_path / f"a{suffix}"), array)


def test_read_idx_rejects_bad_files(tmp_path):
  (tmp_path / "junk").write_bytes(b"\x12\x34\x56\x78rest")
  with pytest.raises(ValueError, match="not an IDX file"):
    data.read_idx(tmp_path / "junk")
  data.write_idx(tmp_path / "ok", np.zeros((4, 5), np.uint8))
  (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-3])
  with pytest.raises(ValueError, match="truncated"):
    data.read_idx(tmp_path / "short")


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_data_dir(tmp_path, mnist_data, gz):
  folder = write_mnist_idx(tmp_path / "d", mnist_data, gz=gz)
  loaded = data.load_mnist(folder)
  for got, want in zip(loaded, mnist_data):
    np.testing.assert_array_equal(got, want)
  assert loaded.train_labels.dtype == np.int32 and loaded.train_images.dtype == np.uint8


def test_load_mnist_torchvision_layout_and_env_var(tmp_path, mnist_data, monkeypatch):
  write_mnist_idx(tmp_path / "root" / "MNIST" / "raw", mnist_data, gz=False)
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "root"))
  loaded = data.load_mnist()
  np.testing.assert_array_equal(loaded.test_labels, mnist_data.test_labels)


def test_missing_files_error_names_both_ways(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(data.DataUnavailableError) as err:
    data.load_mnist(tmp_path / "empty")
  message = str(err.value)
  assert "train-images-idx3-ubyte" in message and "empty" in message
  assert "ngm-jax[tfds]" in message and "--data-dir" in message


def test_no_tfds_and_no_data_dir_error_names_both_ways(monkeypatch):
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
  with pytest.raises(data.DataUnavailableError) as err:
    data.load_mnist()
  message = str(err.value)
  assert "not installed" in message
  assert "ngm-jax[tfds]" in message and "--data-dir" in message
  assert data.DATA_DIR_ENV in message


def _fake_tfds(mnist_data, fail=False):
  calls = {}

  def load(name, split, batch_size, as_supervised, data_dir):
    calls.update(name=name, split=split, batch_size=batch_size,
                 as_supervised=as_supervised)
    if fail:
      raise ConnectionError("no internet")
    return [(mnist_data.train_images[..., None], mnist_data.train_labels.astype(np.int64)),
            (mnist_data.test_images[..., None], mnist_data.test_labels.astype(np.int64))]

  module = types.SimpleNamespace(load=load, as_numpy=lambda x: x)
  return module, calls


def test_tfds_path_converts_arrays(monkeypatch, mnist_data):
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  module, calls = _fake_tfds(mnist_data)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
  loaded = data.load_mnist()
  assert calls == {"name": "mnist", "split": ["train", "test"], "batch_size": -1,
                   "as_supervised": True}
  assert loaded.train_images.shape == mnist_data.train_images.shape  # channel dropped
  assert loaded.train_labels.dtype == np.int32
  np.testing.assert_array_equal(loaded.test_images, mnist_data.test_images)


def test_tfds_failure_is_reported_with_cause(monkeypatch, mnist_data):
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  module, _ = _fake_tfds(mnist_data, fail=True)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
  with pytest.raises(data.DataUnavailableError, match="ConnectionError: no internet"):
    data.load_mnist()


def test_moved_names_stay_importable_from_their_old_modules():
  from ngm_jax import dataset, idx, memory, pickles, streams, transforms
  assert data.ImageDataset is dataset.ImageDataset
  assert data.DataUnavailableError is dataset.DataUnavailableError
  for name in ("read_idx", "write_idx", "read_mnist_idx", "MNIST_FILES"):
    assert getattr(data, name) is getattr(idx, name)
  for name in ("read_cifar10_pickles", "read_cifar100_pickles", "read_miniimagenet_pickles",
               "CIFAR10_CLASSES", "MINIIMAGENET_FILES", "MINIIMAGENET_TEST_DIVISOR"):
    assert getattr(data, name) is getattr(pickles, name)
  for name in ("check_fits", "stream_nbytes", "device_memory_bytes", "DatasetTooLargeError"):
    assert getattr(streams, name) is getattr(memory, name)
  assert streams.rotate_images is transforms.rotate_images
  for module in (data, streams):
    for name in module.__all__:
      assert hasattr(module, name), (module.__name__, name)
