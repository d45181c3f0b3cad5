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
  with pytest.raises(data.DataFileError, match="junk is not an IDX file"):
    data.read_idx(tmp_path / "junk")
  data.write_idx(tmp_path / "ok", np.zeros((4, 5), np.uint8))
  (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-3])
  with pytest.raises(ValueError, match="truncated"):  # a DataFileError is a ValueError
    data.read_idx(tmp_path / "short")


def test_idx_errors_name_the_file_the_problem_and_the_expectation(tmp_path):
  import gzip
  import re
  data.write_idx(tmp_path / "good", np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
  good = (tmp_path / "good").read_bytes()  # 16 header + 60 data bytes

  def expect(name, content, *patterns, error=data.DataFileError):
    path = tmp_path / name
    if content is not None:
      path.write_bytes(content)
    with pytest.raises(error) as e:
      data.read_idx(path)
    message = str(e.value)
    assert str(path) in message, message
    for pattern in patterns:
      assert re.search(pattern, message), (pattern, message)

  # Missing: the data is unavailable (what load_* reports with both ways to get it).
  expect("absent-idx3-ubyte", None, "no such file", "expected an IDX file",
         error=data.DataUnavailableError)
  expect("empty", b"", r"the file is empty \(0 bytes\)", "expected an IDX file")
  expect("empty.gz", gzip.compress(b""), "decompressed data is empty")
  # Too short / too long: each named as such, with both sizes.
  expect("short", good[:-7], "too short: 7 bytes missing", "truncated",
         r"shape \(3, 4, 5\) of uint8", "76 bytes in all", "has 69 bytes")
  expect("long", good + b"\0" * 5, "too long: 5 bytes after the data",
         "76 bytes in all", "has 81 bytes")
  assert "truncated" not in _message(tmp_path / "long")
  expect("header-cut", good[:9], r"declares 3 dimensions \(16 header bytes\)",
         "has 9 bytes")
  # gzip: cut short, and not gzip at all.
  expect("cut.gz", gzip.compress(good)[:-12], "truncated", "gzip", "download it again")
  expect("plain.gz", good, "not a gzip file", r"ends in \.gz")
  # A gzip file without the .gz name: say so.
  expect("gz-inside", gzip.compress(good), "not an IDX file", "looks gzip-compressed")
  # The good bytes still read, plain and compressed.
  (tmp_path / "fine.gz").write_bytes(gzip.compress(good))
  assert data.read_idx(tmp_path / "fine.gz").shape == (3, 4, 5)


def _message(path):
  try:
    data.read_idx(path)
  except data.DataFileError as e:
    return str(e)
  raise AssertionError(f"{path} read without error")


def test_mnist_files_that_do_not_match_are_named(tmp_path, mnist_data):
  folder = write_mnist_idx(tmp_path / "d", mnist_data, gz=False)
  data.write_idx(folder / "t10k-labels-idx1-ubyte", mnist_data.test_labels[:-1])
  with pytest.raises(data.DataFileError, match=r"t10k-images-idx3-ubyte holds 60 images but"
                                              r" .*t10k-labels-idx1-ubyte holds 59 labels"):
    data.load_mnist(folder)
  data.write_idx(folder / "t10k-labels-idx1-ubyte", mnist_data.test_images)
  with pytest.raises(data.DataFileError, match=r"t10k-labels-idx1-ubyte: holds an array of shape"
                                              r" \(60, 28, 28\); expected \[N\] labels"):
    data.load_mnist(folder)
  (folder / "train-images-idx3-ubyte").write_bytes(b"")
  with pytest.raises(data.DataFileError, match="train-images-idx3-ubyte: the file is empty"):
    data.load_mnist(folder)


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


def test_no_tfds_and_no_data_dir_error_names_every_way(monkeypatch):
  # Without tfds the files are downloaded (tests/test_fetch.py); here from
  # conftest's refusing address.
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
  with pytest.raises(data.DataUnavailableError) as err:
    data.load_mnist()
  message = str(err.value)
  assert "tensorflow-datasets is not installed" in message and "Could not download" in message
  assert "ngm-jax[tfds]" in message and "--data-dir" in message
  assert data.DATA_DIR_ENV in message and "NGM_JAX_MNIST_URL" in message


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
