"""ngm_jax.validation: the seeded validation split of each task's training data."""

import numpy as np
import pytest

from ngm_jax.streams import split_mnist
from ngm_jax.validation import validation_split
from tests.conftest import fake_mnist


@pytest.fixture(scope="module")
def stream():
  return split_mnist(fake_mnist(n_train_per_class=10, n_test_per_class=4))


def test_each_task_holds_out_its_fraction_and_no_test_row(stream):
  search, split = validation_split(stream, 0.2, seed=1)
  sizes = stream.task_sizes("train")
  np.testing.assert_array_equal(np.asarray(split.validation_sizes), np.round(0.2 * sizes))
  np.testing.assert_array_equal(search.task_sizes("train") + search.task_sizes("test"), sizes)
  # Held-out rows belong to their own task, and training and validation are disjoint.
  rows = split.validation_rows
  ends = stream.train_task_ends
  task_of_row = np.searchsorted(ends, rows, side="right")
  np.testing.assert_array_equal(np.bincount(task_of_row, minlength=len(ends)),
                                split.validation_sizes)
  np.testing.assert_array_equal(search.test_images, stream.train_images[rows])
  np.testing.assert_array_equal(search.test_labels, stream.train_labels[rows])
  train_set = {r.tobytes() for r in search.train_images}
  assert not any(r.tobytes() in train_set for r in search.test_images)
  # The real test set is not in the search stream.
  test_set = {r.tobytes() for r in stream.test_images}
  assert not any(r.tobytes() in test_set for r in search.test_images)
  assert split.to_json() == {"fraction": 0.2, "seed": 1, "train_sizes": list(
      search.task_sizes("train")), "validation_sizes": list(split.validation_sizes)}


def test_the_split_is_reproducible_from_its_seed(stream):
  a = validation_split(stream, 0.1, seed=0)[1].validation_rows
  b = validation_split(stream, 0.1, seed=0)[1].validation_rows
  c = validation_split(stream, 0.1, seed=1)[1].validation_rows
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


@pytest.mark.parametrize("fraction, seed, match", [
    (0.0, 0, "fraction=0.0"), (1.0, 0, "fraction=1.0"), (0.1, -1, "seed=-1"),
    (0.001, 0, "hold out 0"),
])
def test_bad_splits_are_named(stream, fraction, seed, match):
  with pytest.raises(ValueError, match=match):
    validation_split(stream, fraction, seed)
