"""Data whose values are wrong are refused before training, naming the file
(or array) and the first bad index: labels that are not class ids, images
and labels that differ in number, images of the wrong type or size; through
every path (IDX files, CIFAR pickles, tensorflow-datasets arrays, a user's
arrays given to a stream builder, a TaskStream made by hand)."""

from __future__ import annotations

import dataclasses
import pickle
import struct
import sys
import types

import numpy as np
import pytest

from ngm_jax import benchmarks, cli, data, streams
from ngm_jax.dataset import ImageDataset
from tests.conftest import fake_mnist, write_cifar10_pickles, write_mnist_idx

BAD = [3, 40, 77, 120, 150, 151, 199]  # 7 of 200 training labels


def _mnist_with_bad_labels():
  d = fake_mnist(n_train_per_class=20)  # 200 training images
  labels = d.train_labels.copy()
  labels[BAD] = 255
  return d._replace(train_labels=labels)


def test_idx_labels_that_are_not_digits_are_refused_with_the_file_and_the_first_index(
    tmp_path, capsys):
  folder = write_mnist_idx(tmp_path / "d", _mnist_with_bad_labels())
  expected = (f"{folder / 'train-labels-idx1-ubyte.gz'}: label 255 at index 3 is not a class"
              " id [0, 10) (7 of 200 labels are not; the first at index 3). MNIST's labels"
              " are the digits 0..9.")
  with pytest.raises(data.DataFileError) as refused:
    data.load_mnist(folder)
  assert str(refused.value) == expected
  # Was: split_mnist trained on the 193 images whose labels are digits, without a word.
  with pytest.raises(data.DataFileError, match="label 255 at index 3"):
    benchmarks.load_benchmark("split_mnist", folder)
  out = tmp_path / "out"
  assert cli.main(["run", "--benchmark", "split_mnist", "--data-dir", str(folder), "--out",
                   str(out), "--no-progress"]) == 2
  assert capsys.readouterr().err == f"error: {expected}\n"
  assert not (out / "run.json").exists()  # refused before training


def _idx(path, code: int, array: np.ndarray) -> None:
  """An IDX file of another type than write_idx's uint8 (``code``: 0x0B int16,
  0x0D float32)."""
  dtype = {0x0B: ">i2", 0x0D: ">f4"}[code]
  header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  path.write_bytes(header + np.asarray(array, dtype).tobytes())


def test_idx_files_of_the_wrong_type_or_size_are_named(tmp_path):
  d = fake_mnist()
  folder = write_mnist_idx(tmp_path / "d", d, gz=False)
  _idx(folder / "train-labels-idx1-ubyte", 0x0D, d.train_labels + 0.5)  # would be truncated
  with pytest.raises(data.DataFileError, match=r"train-labels-idx1-ubyte holds float32 values;"
                                              " expected integer class ids"):
    data.load_mnist(folder)
  data.write_idx(folder / "train-labels-idx1-ubyte", d.train_labels)
  _idx(folder / "t10k-images-idx3-ubyte", 0x0B, d.test_images.astype(np.int16) * 300)
  with pytest.raises(data.DataFileError, match=r"t10k-images-idx3-ubyte: holds int16 values;"
                                              r" expected uint8 pixels \(IDX type 0x08\)"):
    data.load_mnist(folder)
  data.write_idx(folder / "t10k-images-idx3-ubyte", d.test_images[:, :20, :20])
  with pytest.raises(data.DataFileError, match=r"train-images-idx3-ubyte holds images of 28x28"
                                              r" pixels but .*t10k-images-idx3-ubyte of 20x20"):
    data.load_mnist(folder)


def test_cifar_pickles_with_labels_that_are_not_class_ids_name_the_batch(tmp_path):
  folder = tmp_path / "cifar-10-batches-py"
  write_cifar10_pickles(folder)
  with open(folder / "test_batch", "rb") as f:
    batch = pickle.load(f, encoding="bytes")
  batch[b"labels"][4] = 10
  with open(folder / "test_batch", "wb") as f:
    pickle.dump(batch, f)
  with pytest.raises(data.DataFileError) as refused:
    data.load_cifar10(tmp_path)
  assert str(refused.value).startswith(f"{folder / 'test_batch'}: 'labels': label 10 at index 4"
                                       " is not a class id [0, 10) (1 of 20 labels are not")


def test_tensorflow_datasets_arrays_are_checked_too(monkeypatch):
  x = np.zeros((3, 28, 28, 1), np.uint8)
  fake = types.SimpleNamespace(
      builder=lambda name, data_dir=None: types.SimpleNamespace(is_prepared=lambda: True),
      load=lambda name, **kwargs: [(x, np.array([0, 12, 3])), (x, np.array([1, 2, 3]))],
      as_numpy=lambda splits: splits)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  with pytest.raises(ValueError, match=r"^tensorflow-datasets: train_labels: label 12 at index"
                                       r" 1 is not a class id \[0, 10\)"):
    data.load_mnist()


@pytest.mark.parametrize("build", [
    streams.split_mnist, streams.rotated_mnist, lambda d: streams.permuted_mnist(d, 2)])
def test_a_users_arrays_given_to_a_stream_builder_are_checked(build):
  with pytest.raises(ValueError, match=r": train_labels: label 255 at index 3 is not a class id"
                                       r" \[0, 10\) \(7 of 200 labels are not"):
    build(_mnist_with_bad_labels())
  d = fake_mnist()
  negative = d._replace(test_labels=np.where(np.arange(60) == 9, -1, d.test_labels))
  with pytest.raises(ValueError, match="test_labels: label -1 at index 9 is not a class id"):
    build(negative)


def test_split_by_classes_leaves_out_other_classes_unless_the_data_cannot_hold_them():
  d = fake_mnist()
  four = streams.split_by_classes(d, [(0, 1), (2, 3)], "mine", 4)  # 4..9 left out, as asked
  assert four.train_labels.max() == 3
  with pytest.raises(ValueError, match=r"mine: train_labels: label \d+ at index \d+ is not a"
                                       r" class id \[0, 4\) \(72 of 120 labels are not"):
    streams.split_by_classes(d, [(0, 1), (2, 3)], "mine", 4, data_classes=4)
  with pytest.raises(ValueError, match="mine: train_labels: label -3 at index 0"):
    streams.split_by_classes(d._replace(train_labels=np.r_[-3, d.train_labels[1:]]),
                             [(0, 1)], "mine")


def test_a_task_stream_made_by_hand_is_checked():
  s = streams.split_mnist(fake_mnist())
  with pytest.raises(ValueError, match=r"TaskStream 'split_mnist': train_labels: label 10 at"
                                       r" index 0 is not a class id \[0, 10\)"):
    dataclasses.replace(s, train_labels=np.r_[10, s.train_labels[1:]].astype(np.int32))
  with pytest.raises(ValueError, match=r"test_images has 60 rows but test_labels has shape"
                                       r" \(59,\); expected \(60,\), one label per image"):
    dataclasses.replace(s, test_labels=s.test_labels[:-1])
  with pytest.raises(ValueError, match=r"train_task_ends is \[24, 48, 72, 96, 100\]; expected 5"
                                       r" non-decreasing row counts .* the last 120"):
    dataclasses.replace(s, train_task_ends=np.array([24, 48, 72, 96, 100], np.int32))
  with pytest.raises(ValueError, match="num_classes=0; expected an integer >= 1"):
    dataclasses.replace(s, num_classes=0)
  with pytest.raises(ValueError, match="train_labels holds float32 values; expected integer"):
    dataclasses.replace(s, train_labels=s.train_labels.astype(np.float32))
  assert isinstance(ImageDataset, type)
