"""Shared fixtures: tiny MNIST-shaped data written by the tests themselves."""

import numpy as np
import pytest

from ngm_jax.data import ImageDataset, write_idx


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


@pytest.fixture
def mnist_data():
  return fake_mnist()


@pytest.fixture
def mnist_dir(tmp_path, mnist_data):
  return write_mnist_idx(tmp_path / "mnist_idx", mnist_data)
