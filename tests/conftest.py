"""Shared fixtures: tiny MNIST-, CIFAR- and mini-ImageNet-shaped data, in their
on-disk formats, written by the tests themselves."""

import os
import pickle
import shutil
import socket

import numpy as np
import pytest

from ngm_jax.data import ImageDataset, write_idx

# Tests (and the commands they start) compile from scratch: no persistent
# compilation cache in the user's home (tests/test_compile_cache.py sets its own).
os.environ["NGM_JAX_COMPILE_CACHE"] = "off"


@pytest.fixture(scope="session")
def refusing_url():
  """An http URL on 127.0.0.1 whose port refuses connections at once (a socket
  bound to it that never listens, held for the session)."""
  sock = socket.socket()
  sock.bind(("127.0.0.1", 0))
  yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
  sock.close()


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch, tmp_path_factory, refusing_url):
  """No test (nor a command it starts) downloads data or reads the user's data
  cache: ngm_jax.fetch's mirrors are a refusing address, its cache an empty
  folder (tests/test_fetch.py sets its own)."""
  monkeypatch.setenv("NGM_JAX_CACHE_DIR", str(tmp_path_factory.mktemp("data_cache")))
  monkeypatch.setenv("NGM_JAX_MNIST_URL", refusing_url)
  monkeypatch.setenv("NGM_JAX_CIFAR_URL", refusing_url)


def fake_mnist(n_train_per_class=12, n_test_per_class=6, seed=0) -> ImageDataset:
  """28x28 uint8 images whose bright row encodes the class (learnable), noise added."""
  rng = np.random.default_rng(seed)

  def make(n):
    labels = np.repeat(np.arange(10), n).astype(np.int32)
    images = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, y in enumerate(labels):
      images[i, 2 + 2 * y : 4 + 2 * y, 4:24] = 250
    perm = rng.permutation(len(labels))
    return images[perm], labels[perm]

  tr_x, tr_y = make(n_train_per_class)
  te_x, te_y = make(n_test_per_class)
  return ImageDataset(tr_x, tr_y, te_x, te_y)


def write_mnist_idx(folder, data: ImageDataset, gz=True):
  folder.mkdir(parents=True, exist_ok=True)
  ext = ".gz" if gz else ""
  write_idx(folder / f"train-images-idx3-ubyte{ext}", data.train_images)
  write_idx(folder / f"train-labels-idx1-ubyte{ext}", data.train_labels)
  write_idx(folder / f"t10k-images-idx3-ubyte{ext}", data.test_images)
  write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", data.test_labels)
  return folder


def damage_checkpoint(folder, kind):
  """Damages a checkpoint step folder as a crash, a full disk or a bad copy
  does; ``kind``: "truncated array file", "missing meta/metadata", "emptied
  step folder" or "garbage in a file" (its largest, same size). Returns the
  damaged file's path in the step."""
  big = max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  if kind == "truncated array file":
    big.write_bytes(big.read_bytes()[:big.stat().st_size // 2])
  elif kind == "missing meta/metadata":
    (folder / "meta" / "metadata").unlink()
  elif kind == "emptied step folder":
    shutil.rmtree(folder)
    folder.mkdir()
  elif kind == "garbage in a file":
    data = bytearray(big.read_bytes())
    data[100:600] = bytes(range(250)) * 2
    big.write_bytes(bytes(data))
  else:
    raise ValueError(f"damage_checkpoint: unknown kind {kind!r}")
  return big.relative_to(folder)


@pytest.fixture
def mnist_data():
  return fake_mnist()


@pytest.fixture
def mnist_dir(tmp_path, mnist_data):
  return write_mnist_idx(tmp_path / "mnist_idx", mnist_data)


# ----------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 / mini-ImageNet in their on-disk formats (tiny)


def _chw_rows(images_hwc):
  """uint8 [N, 32, 32, 3] → the archives' [N, 3072] rows (R plane, G, B)."""
  return np.ascontiguousarray(images_hwc.transpose(0, 3, 1, 2)).reshape(len(images_hwc), -1)


def _dump(path, obj):
  with open(path, "wb") as f:
    pickle.dump(obj, f, protocol=2)


def _shuffled_classes(num_classes, per_class, rng, shape=(32, 32, 3)):
  labels = rng.permutation(np.repeat(np.arange(num_classes), per_class)).astype(np.int32)
  images = rng.integers(0, 256, size=(len(labels),) + shape, dtype=np.uint8)
  return images, labels


CIFAR10_TEST_NAMES = tuple(f"class{i}" for i in range(10))


def write_cifar10_pickles(folder, n_train_per_class=3, n_test_per_class=2, seed=0):
  """Writes cifar-10-batches-py-style pickles into ``folder``; returns the
  expected ImageDataset (HWC images)."""
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  tr_x, tr_y = _shuffled_classes(10, n_train_per_class, rng)
  te_x, te_y = _shuffled_classes(10, n_test_per_class, rng)
  for i, rows in enumerate(np.array_split(np.arange(len(tr_y)), 5)):
    _dump(folder / f"data_batch_{i + 1}",
          {b"batch_label": b"x", b"data": _chw_rows(tr_x[rows]), b"labels": tr_y[rows].tolist()})
  _dump(folder / "test_batch", {b"data": _chw_rows(te_x), b"labels": te_y.tolist()})
  _dump(folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_TEST_NAMES]})
  return ImageDataset(tr_x, tr_y, te_x, te_y, class_names=CIFAR10_TEST_NAMES)


def cifar100_coarse_of(fine):
  """A made-up fine → coarse map with 5 fine classes per superclass (7 is
  invertible mod 20), interleaved so superclasses are not fine-id ranges."""
  return (7 * np.asarray(fine)) % 20


def write_cifar100_pickles(folder, n_train_per_class=2, n_test_per_class=1, seed=0):
  """Writes cifar-100-python-style pickles (train, test, meta) into ``folder``."""
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  tr_x, tr_y = _shuffled_classes(100, n_train_per_class, rng)
  te_x, te_y = _shuffled_classes(100, n_test_per_class, rng)
  tr_c, te_c = cifar100_coarse_of(tr_y).astype(np.int32), cifar100_coarse_of(te_y).astype(np.int32)
  for name, x, y, c in (("train", tr_x, tr_y, tr_c), ("test", te_x, te_y, te_c)):
    _dump(folder / name, {b"data": _chw_rows(x), b"fine_labels": y.tolist(),
                          b"coarse_labels": c.tolist()})
  fine_names = tuple(f"fine{i}" for i in range(100))
  coarse_names = tuple(f"super{i}" for i in range(20))
  _dump(folder / "meta", {b"fine_label_names": [n.encode() for n in fine_names],
                          b"coarse_label_names": [n.encode() for n in coarse_names]})
  return ImageDataset(tr_x, tr_y, te_x, te_y, tr_c, te_c, fine_names, coarse_names)


#: Class names per pickle, as written (deliberately not sorted).
MINI_CLASSES = {
    "train": ("n05", "n01", "n03", "n02", "n04"),
    "val": ("n11", "n10", "n12"),
    "test": ("n22", "n20", "n23", "n21"),
}


def write_miniimagenet_pickles(folder, per_class=6, size=8, seed=0):
  """Writes mini-imagenet-cache-{train,val,test}.pkl (12 classes) into
  ``folder``. Each image's first pixel holds (class index in merged order,
  position among its class's stored indices), so tests can check the order
  and the split. Returns the merged class names."""
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  merged = [n for split in ("train", "val", "test") for n in sorted(MINI_CLASSES[split])]
  for split, names in MINI_CLASSES.items():
    n = len(names) * per_class
    image_data = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    rows = rng.permutation(n)  # each class's images scattered over the array
    class_dict = {}
    for i, name in enumerate(names):
      idx = rows[i * per_class:(i + 1) * per_class]
      class_dict[name] = idx.tolist()
      for j, r in enumerate(idx):
        image_data[r, 0, 0, :2] = (merged.index(name), j)
    _dump(folder / f"mini-imagenet-cache-{split}.pkl",
          {"image_data": image_data, "class_dict": class_dict})
  return merged


@pytest.fixture
def cifar10_dir(tmp_path):
  root = tmp_path / "cifar_root"
  expected = write_cifar10_pickles(root / "cifar-10-batches-py")
  return root, expected


@pytest.fixture
def cifar100_dir(tmp_path):
  root = tmp_path / "cifar100_root"
  expected = write_cifar100_pickles(root / "cifar-100-python")
  return root, expected


@pytest.fixture
def mini_dir(tmp_path):
  folder = tmp_path / "mini"
  return folder, write_miniimagenet_pickles(folder)


def stop_at(block, saved):
  """A ``Segments.on_segment`` that stops a run after ``block`` blocks, keeping
  its state (:attr:`ngm_jax.driver.SegmentDone.state`) in ``saved["state"]``."""
  def on_segment(done):
    if done.blocks_done >= block:
      saved["state"] = done.state()
      return True
    return False
  return on_segment
