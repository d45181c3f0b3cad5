"""CIFAR-10, CIFAR-100 and mini-ImageNet: loaders (pickles and faked
tensorflow-datasets), their streams, test subsets and the memory guard."""

import pickle
import re
import sys
import types

import numpy as np
import pytest

from ngm_jax import benchmarks, data, streams
from tests.conftest import (
    CIFAR10_TEST_NAMES,
    MINI_CLASSES,
    cifar100_coarse_of,
    write_cifar10_pickles,
    write_miniimagenet_pickles,
)


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch):
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)


def _assert_same(got, want):
  for field in ("train_images", "train_labels", "test_images", "test_labels"):
    np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
  assert got.train_images.dtype == np.uint8 and got.train_labels.dtype == np.int32
  assert got.test_labels.dtype == np.int32


# ----------------------------------------------------------------------------
# ImageDataset


def test_image_dataset_optional_fields_default_to_none():
  x, y = np.zeros((2, 4, 4), np.uint8), np.zeros(2, np.int32)
  d = data.ImageDataset(x, y, x, y)
  assert d.train_coarse_labels is None and d.test_coarse_labels is None
  assert d.class_names is None and d.coarse_class_names is None
  assert d[:4] == (x, y, x, y)


def test_image_dataset_shapes_are_checked_in_one_place():
  y = np.zeros(2, np.int32)
  for shape in ((2, 4, 4), (2, 4, 4, 1), (2, 4, 4, 3)):
    x = np.zeros(shape, np.uint8)
    assert data.ImageDataset(x, y, x, y).train_images.shape == shape
  for bad in ((2, 16), (2, 4, 4, 3, 1), (2,)):
    x = np.zeros(bad, np.uint8)
    with pytest.raises(ValueError, match=rf"train_images must be \[N, H, W\] or"
                                         rf" \[N, H, W, C\].*{re.escape(str(bad))}"):
      data.ImageDataset(x, y, x, y)
  x3, x4 = np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4, 1), np.uint8)
  with pytest.raises(ValueError, match=r"train_images \(2, 4, 4\) and test_images"
                                       r" \(2, 4, 4, 1\) differ"):
    data.ImageDataset(x3, y, x4, y)
  with pytest.raises(ValueError, match=r"test_labels has shape \(3,\); expected \(2,\)"):
    data.ImageDataset(x3, y, x3, np.zeros(3, np.int32))
  with pytest.raises(ValueError, match=r"train_coarse_labels has shape \(2, 1\)"):
    data.ImageDataset(x3, y, x3, y, train_coarse_labels=y[:, None])
  d = data.ImageDataset(x3, y, x3, y)
  with pytest.raises(ValueError, match=r"test_images must be .*\(2, 16\)"):
    d._replace(test_images=np.zeros((2, 16), np.uint8))  # _replace is checked too
  assert d._replace(class_names=("a", "b")).class_names == ("a", "b")
  # Still a named tuple that pickles.
  assert pickle.loads(pickle.dumps(d))[1].tolist() == [0, 0]


# ----------------------------------------------------------------------------
# CIFAR-10


def test_cifar10_from_pickles(cifar10_dir):
  root, expected = cifar10_dir
  for folder in (root, root / "cifar-10-batches-py"):  # parent or the folder itself
    loaded = data.load_cifar10(folder)
    _assert_same(loaded, expected)
    assert loaded.train_images.shape == (30, 32, 32, 3)
    assert loaded.test_images.shape == (20, 32, 32, 3)
    assert loaded.class_names == CIFAR10_TEST_NAMES  # from batches.meta


def test_cifar10_env_var_and_default_names(cifar10_dir, monkeypatch):
  root, expected = cifar10_dir
  (root / "cifar-10-batches-py" / "batches.meta").unlink()
  monkeypatch.setenv(data.DATA_DIR_ENV, str(root))
  loaded = data.load_cifar10()
  _assert_same(loaded, expected)
  assert loaded.class_names == data.CIFAR10_CLASSES


def test_cifar_rows_are_channel_major(tmp_path):
  row = np.zeros((1, 3, 32, 32), np.uint8)
  row[0, 0], row[0, 1], row[0, 2] = 10, 20, 30  # R, G, B planes
  row[0, 1, 2, 3] = 99  # green, y=2, x=3
  batch = {b"data": row.reshape(1, 3072), b"labels": [7]}
  folder = tmp_path / "c"
  write_cifar10_pickles(folder)
  with open(folder / "test_batch", "wb") as f:
    pickle.dump(batch, f, protocol=2)
  img = data.read_cifar10_pickles(folder).test_images[0]
  assert img.shape == (32, 32, 3) and img.flags.c_contiguous
  assert img[0, 0].tolist() == [10, 20, 30] and img[31, 31].tolist() == [10, 20, 30]
  assert img[2, 3].tolist() == [10, 99, 30]
  assert (img[..., 1] == 99).sum() == 1


def test_cifar10_missing_files_error_names_files_and_both_ways(tmp_path):
  folder = tmp_path / "partial"
  write_cifar10_pickles(folder)
  (folder / "data_batch_3").unlink()
  (folder / "test_batch").unlink()
  with pytest.raises(data.DataUnavailableError) as err:
    data.load_cifar10(folder)
  message = str(err.value)
  assert "data_batch_3, test_batch" in message and "partial" in message
  assert "cifar-10-batches-py" in message
  assert "ngm-jax[tfds]" in message and "--data-dir" in message


def _fake_tfds(arrays, info=None):
  """A stand-in for tensorflow_datasets; ``arrays[split]`` is what load gives."""
  calls = {}

  def load(name, split, batch_size, as_supervised, data_dir, with_info=False):
    calls.update(name=name, split=split, batch_size=batch_size,
                 as_supervised=as_supervised, with_info=with_info)
    out = [arrays[s] for s in split]
    return (out, info) if with_info else out

  return types.SimpleNamespace(load=load, as_numpy=lambda x: x), calls


def test_cifar10_tfds_path(monkeypatch):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
  y = np.arange(6, dtype=np.int64)
  module, calls = _fake_tfds({"train": (x, y), "test": (x[:2], y[:2])})
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
  loaded = data.load_cifar10()
  assert calls["name"] == "cifar10" and calls["as_supervised"] is True
  assert loaded.train_images.shape == (6, 32, 32, 3)  # 3 channels kept
  assert loaded.train_labels.dtype == np.int32
  assert loaded.class_names == data.CIFAR10_CLASSES


# ----------------------------------------------------------------------------
# CIFAR-100


def test_cifar100_from_pickles_has_fine_and_coarse_labels(cifar100_dir):
  root, expected = cifar100_dir
  loaded = data.load_cifar100(root)
  _assert_same(loaded, expected)
  assert loaded.train_images.shape == (200, 32, 32, 3)
  np.testing.assert_array_equal(loaded.train_coarse_labels, cifar100_coarse_of(loaded.train_labels))
  np.testing.assert_array_equal(loaded.test_coarse_labels, cifar100_coarse_of(loaded.test_labels))
  assert loaded.train_coarse_labels.dtype == np.int32
  assert loaded.class_names[3] == "fine3" and len(loaded.coarse_class_names) == 20


def test_cifar100_missing_files(tmp_path):
  (tmp_path / "none").mkdir()
  with pytest.raises(data.DataUnavailableError) as err:
    data.load_cifar100(tmp_path / "none")
  message = str(err.value)
  assert "missing train, test" in message and "cifar-100-python" in message
  assert "ngm-jax[tfds]" in message and data.DATA_DIR_ENV in message


def test_cifar100_tfds_path_gives_coarse_labels(monkeypatch):
  rng = np.random.default_rng(0)
  fine = np.arange(100, dtype=np.int64)
  split = {"image": rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8),
           "label": fine, "coarse_label": cifar100_coarse_of(fine), "id": fine}
  names = lambda n: types.SimpleNamespace(names=n)  # noqa: E731
  info = types.SimpleNamespace(features={
      "label": names([f"f{i}" for i in range(100)]),
      "coarse_label": names([f"c{i}" for i in range(20)])})
  module, calls = _fake_tfds({"train": split, "test": split}, info)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
  loaded = data.load_cifar100()
  assert calls["name"] == "cifar100" and calls["as_supervised"] is False
  assert calls["batch_size"] == -1 and calls["with_info"] is True
  np.testing.assert_array_equal(loaded.train_labels, fine)
  np.testing.assert_array_equal(loaded.test_coarse_labels, cifar100_coarse_of(fine))
  assert loaded.test_coarse_labels.dtype == np.int32
  assert loaded.class_names[5] == "f5" and loaded.coarse_class_names[0] == "c0"
  # The domain stream builds from it.
  assert streams.domain_cifar100(loaded).num_classes == 20


# ----------------------------------------------------------------------------
# mini-ImageNet


def test_miniimagenet_class_order_and_split(mini_dir):
  folder, merged = mini_dir
  d = data.load_miniimagenet(folder)
  assert d.class_names == tuple(merged)
  assert merged[:5] == sorted(MINI_CLASSES["train"]) and merged[5:8] == sorted(MINI_CLASSES["val"])
  assert d.train_images.shape == (60, 8, 8, 3) and d.test_images.shape == (12, 8, 8, 3)
  assert d.train_images.dtype == np.uint8 and d.train_labels.dtype == np.int32
  np.testing.assert_array_equal(d.train_labels, np.repeat(np.arange(12), 5))
  np.testing.assert_array_equal(d.test_labels, np.arange(12))
  # The first pixel holds (class, position in the class's stored indices):
  # train is the first 5 in stored order, test the last (n // 6 = 1).
  np.testing.assert_array_equal(d.train_images[:, 0, 0, 0], d.train_labels)
  np.testing.assert_array_equal(d.train_images[:, 0, 0, 1], np.tile(np.arange(5), 12))
  np.testing.assert_array_equal(d.test_images[:, 0, 0, 0], np.arange(12))
  np.testing.assert_array_equal(d.test_images[:, 0, 0, 1], np.full(12, 5))


def test_miniimagenet_reads_only_the_pickles_it_needs(mini_dir):
  folder, merged = mini_dir
  (folder / "mini-imagenet-cache-test.pkl").unlink()
  d = data.load_miniimagenet(folder, num_classes=7)  # 5 train + 2 val classes
  assert d.class_names == tuple(merged[:7])
  np.testing.assert_array_equal(np.unique(d.train_labels), np.arange(7))
  (folder / "mini-imagenet-cache-val.pkl").unlink()
  assert data.load_miniimagenet(folder, num_classes=3).train_images.shape[0] == 15
  with pytest.raises(data.DataUnavailableError, match="mini-imagenet-cache-val.pkl not found"):
    data.load_miniimagenet(folder, num_classes=6)


def test_miniimagenet_errors(tmp_path, mini_dir, monkeypatch):
  folder, _ = mini_dir
  with pytest.raises(ValueError, match="asked for 13 classes but .* hold only 12"):
    data.load_miniimagenet(folder, num_classes=13)
  with pytest.raises(ValueError, match="num_classes must be"):
    data.load_miniimagenet(folder, num_classes=0)
  # No folder: no tfds builder to fall back on.
  with pytest.raises(data.DataUnavailableError) as err:
    data.load_miniimagenet()
  message = str(err.value)
  assert "no tensorflow-datasets builder" in message and "--data-dir" in message
  assert "mini-imagenet-cache-train.pkl" in message and data.DATA_DIR_ENV in message
  (tmp_path / "empty").mkdir()
  with pytest.raises(data.DataUnavailableError, match="mini-imagenet-cache-train.pkl"):
    data.load_miniimagenet(tmp_path / "empty")
  # Too few images for a test set.
  write_miniimagenet_pickles(tmp_path / "small", per_class=5)
  with pytest.raises(ValueError, match="has 5 images; at least 6"):
    data.load_miniimagenet(tmp_path / "small")
  # Found in a subfolder through the environment variable.
  write_miniimagenet_pickles(tmp_path / "root" / "mini-imagenet")
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "root"))
  assert data.load_miniimagenet(num_classes=2).test_images.shape[0] == 2


# ----------------------------------------------------------------------------
# Streams


def test_split_cifar10(cifar10_dir):
  root, expected = cifar10_dir
  s = benchmarks.load_benchmark("split_cifar10", root)
  assert s.num_tasks == 5 and s.num_classes == 10
  assert s.task_names[0] == "class0/class1"  # names from batches.meta
  np.testing.assert_array_equal(s.train_task_ends, [6, 12, 18, 24, 30])
  for k in range(5):
    lo, hi = (s.train_task_ends[k - 1] if k else 0), s.train_task_ends[k]
    assert set(s.train_labels[lo:hi].tolist()) == {2 * k, 2 * k + 1}
  assert s.train_images.shape[1:] == (32, 32, 3)
  plain = streams.split_cifar10(expected._replace(class_names=None))
  assert plain.task_names == ("airplane/automobile", "bird/cat", "deer/dog",
                              "frog/horse", "ship/truck")


@pytest.mark.parametrize("num_tasks", [5, 3])
def test_domain_cifar100(cifar100_dir, num_tasks):
  root, expected = cifar100_dir
  s = benchmarks.load_benchmark("domain_cifar100", root, num_tasks=num_tasks)
  assert s.num_tasks == num_tasks and s.num_classes == 20
  assert s.task_names == tuple(f"fine-{t + 1}" for t in range(num_tasks))
  np.testing.assert_array_equal(s.train_task_ends, 40 * np.arange(1, num_tasks + 1))
  np.testing.assert_array_equal(s.test_task_ends, 20 * np.arange(1, num_tasks + 1))
  # Recover each row's fine class from its image.
  fine_of = {img.tobytes(): y for img, y in zip(expected.train_images, expected.train_labels)}
  seen = set()
  for t in range(num_tasks):
    lo, hi = 40 * t, 40 * (t + 1)
    assert set(s.train_labels[lo:hi].tolist()) == set(range(20))
    fines = {int(fine_of[img.tobytes()]) for img in s.train_images[lo:hi]}
    assert len(fines) == 20 and not fines & seen
    seen |= fines
    np.testing.assert_array_equal(  # labels are the superclasses of those images
        s.train_labels[lo:hi],
        cifar100_coarse_of([fine_of[i.tobytes()] for i in s.train_images[lo:hi]]))
    # The t-th fine class (by id) of every superclass.
    want = {int(sorted(f for f in range(100) if cifar100_coarse_of(f) == c)[t])
            for c in range(20)}
    assert fines == want
    assert set(s.test_labels[20 * t:20 * (t + 1)].tolist()) == set(range(20))


def test_domain_cifar100_rejects_bad_num_tasks(cifar100_dir, tmp_path):
  root, expected = cifar100_dir
  for bad in (0, 6, 2.5):
    with pytest.raises(ValueError, match=r"num_tasks must be an integer in 1\.\.5"):
      streams.domain_cifar100(expected, num_tasks=bad)
  # Checked before any data is looked for.
  with pytest.raises(ValueError, match=r"num_tasks=7; must be an integer in \[1, 5\]"):
    benchmarks.load_benchmark("domain_cifar100", tmp_path / "nothing_here", num_tasks=7)
  with pytest.raises(ValueError, match="needs the superclass labels"):
    streams.domain_cifar100(expected._replace(train_coarse_labels=None))


def test_split_miniimagenet(mini_dir):
  folder, merged = mini_dir
  s = benchmarks.load_benchmark("split_miniimagenet", folder, num_tasks=2, classes_per_task=3)
  assert s.num_tasks == 2 and s.num_classes == 6 and s.task_names == ("0-2", "3-5")
  np.testing.assert_array_equal(s.train_task_ends, [15, 30])
  np.testing.assert_array_equal(s.train_labels, np.repeat(np.arange(6), 5))
  np.testing.assert_array_equal(s.test_labels, np.arange(6))
  d = data.load_miniimagenet(folder)
  s = streams.split_miniimagenet(d, num_tasks=4, classes_per_task=3)
  assert s.num_classes == 12 and s.task_names[-1] == "9-11"
  assert np.shares_memory(s.train_images, d.train_images)  # class-ordered: no copy
  assert streams.split_miniimagenet(d, 12, 1).task_names[:2] == ("0", "1")
  with pytest.raises(ValueError,
                     match="5 tasks x 10 classes = 50 classes, but the data holds 12"):
    streams.split_miniimagenet(d)
  with pytest.raises(ValueError, match="classes_per_task must be an integer >= 1"):
    streams.split_miniimagenet(d, 2, 0)


def test_load_benchmark_options(mini_dir, mnist_dir):
  folder, _ = mini_dir
  assert benchmarks.get("split_miniimagenet").options == {
      "num_tasks": 5, "classes_per_task": 10}
  assert benchmarks.get("split_mnist").options == {}
  assert benchmarks.get("rotated_mnist").options == {"interpolation": "nearest"}
  with pytest.raises(ValueError, match="does not take option.*num_task; it takes"
                                       " num_tasks, classes_per_task"):
    benchmarks.load_benchmark("split_miniimagenet", folder, num_task=3)
  with pytest.raises(ValueError, match="does not take option.*num_tasks; it takes no options"):
    benchmarks.load_benchmark("split_mnist", mnist_dir, num_tasks=3)
  # None counts as not given.
  assert benchmarks.load_benchmark("split_mnist", mnist_dir, num_tasks=None).num_tasks == 5
  assert benchmarks.load_benchmark("rotated_mnist", mnist_dir,
                                   interpolation="bilinear").num_tasks == 3
  # The loader reads only the classes needed; too many is an error.
  with pytest.raises(ValueError, match="asked for 50 classes"):
    benchmarks.load_benchmark("split_miniimagenet", folder)
  # Bad option values fail before any file is read.
  with pytest.raises(ValueError, match="num_tasks=0; must be an integer"):
    benchmarks.load_benchmark("split_miniimagenet", "/nonexistent", num_tasks=0)


# ----------------------------------------------------------------------------
# Test subsets


def test_subsample_test(mnist_data):
  s = streams.split_mnist(mnist_data)  # 12 test images per task
  sub = streams.subsample_test(s, per_task=5, seed=3)
  np.testing.assert_array_equal(sub.test_task_ends, [5, 10, 15, 20, 25])
  np.testing.assert_array_equal(sub.test_task_ids, np.repeat(np.arange(5), 5))
  assert sub.task_names == s.task_names and sub.train_images is s.train_images
  # Every kept row is a row of the same task, in stored order, without repeats.
  rows = [int(np.flatnonzero((s.test_images == im).all(axis=(1, 2)))[0]) for im in sub.test_images]
  assert len(set(rows)) == 25
  for k in range(5):
    task_rows = rows[5 * k:5 * (k + 1)]
    assert task_rows == sorted(task_rows)
    assert all(12 * k <= r < 12 * (k + 1) for r in task_rows)
  np.testing.assert_array_equal(sub.test_labels, s.test_labels[rows])
  # Deterministic given the seed; another seed picks another subset.
  again = streams.subsample_test(s, per_task=5, seed=3)
  np.testing.assert_array_equal(again.test_images, sub.test_images)
  other = streams.subsample_test(s, per_task=5, seed=4)
  assert not np.array_equal(other.test_images, sub.test_images)
  # A task with fewer images keeps them all.
  whole = streams.subsample_test(s, per_task=50)
  np.testing.assert_array_equal(whole.test_images, s.test_images)
  np.testing.assert_array_equal(whole.test_task_ends, s.test_task_ends)
  with pytest.raises(ValueError, match="per_task must be an integer >= 1, got 0"):
    streams.subsample_test(s, per_task=0)


# ----------------------------------------------------------------------------
# Memory guard


class _FakeDevice:
  platform = "gpu"

  def __init__(self, stats):
    self._stats = stats

  def memory_stats(self):
    return self._stats

  def __str__(self):
    return "cuda:0"


def test_check_fits(mnist_data):
  s = streams.split_mnist(mnist_data)
  need = streams.stream_nbytes(s)
  images = s.train_images.nbytes + s.test_images.nbytes
  assert need == images + 4 * (len(s.train_labels) + 2 * len(s.test_labels) + 10)
  assert streams.check_fits(s, _FakeDevice({"bytes_limit": 10 * need})) == need
  with pytest.raises(streams.DatasetTooLargeError) as err:
    streams.check_fits(s, _FakeDevice({"bytes_limit": need}), fraction=0.5)
  message = str(err.value)
  assert "split_mnist" in message and "GiB" in message and "GPU memory of cuda:0" in message
  assert "subsample_test" in message and "num_tasks" in message
  assert isinstance(err.value, ValueError)
  with pytest.raises(streams.DatasetTooLargeError, match="the data needs"):
    streams.check_fits(1000, _FakeDevice({"bytes_limit": 1000}), fraction=0.9)
  # No bytes_limit (CPU): the host's physical memory.
  limit, where = streams.device_memory_bytes(_FakeDevice(None))
  assert where == "host physical memory" and limit > 2**20
  assert streams.check_fits(s, _FakeDevice(None)) == need
  assert streams.check_fits(s) == need  # the real default device
  with pytest.raises(ValueError, match="fraction must be in"):
    streams.check_fits(s, fraction=1.5)
