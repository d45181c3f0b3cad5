"""Task streams and joint sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngm_jax import benchmarks, sampling, streams


def test_split_mnist_orders_examples_by_task(mnist_data):
  s = streams.split_mnist(mnist_data)
  assert s.num_tasks == 5 and s.num_classes == 10
  assert s.task_names == ("0/1", "2/3", "4/5", "6/7", "8/9")
  np.testing.assert_array_equal(s.train_task_ends, [24, 48, 72, 96, 120])
  np.testing.assert_array_equal(s.test_task_ends, [12, 24, 36, 48, 60])
  for k, (lo, hi) in enumerate(zip(np.r_[0, s.train_task_ends[:-1]], s.train_task_ends)):
    assert set(s.train_labels[lo:hi]) == {2 * k, 2 * k + 1}
  np.testing.assert_array_equal(s.test_task_ids, np.repeat(np.arange(5), 12))
  # Images travel with their labels.
  i = int(np.flatnonzero(mnist_data.train_labels == 3)[0])
  j = int(np.flatnonzero((s.train_images == mnist_data.train_images[i]).all(axis=(1, 2)))[0])
  assert s.train_labels[j] == 3


def test_split_rejects_bad_groups(mnist_data):
  with pytest.raises(ValueError, match="overlap"):
    streams.split_by_classes(mnist_data, [(0, 1), (1, 2)], "x")
  with pytest.raises(ValueError, match=r"classes \[11\]"):
    streams.split_by_classes(mnist_data, [(0, 1), (11,)], "x")


def test_rotate_images_quarter_turn_is_exact():
  img = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
  # Counter-clockwise as displayed (row 0 at the top), like np.rot90.
  np.testing.assert_array_equal(streams.rotate_images(img, 90), np.rot90(img, k=1, axes=(1, 2)))
  np.testing.assert_array_equal(streams.rotate_images(img, 0), img)
  np.testing.assert_array_equal(streams.rotate_images(img, 180), img[:, ::-1, ::-1])


def test_rotated_mnist_has_every_label_in_every_task(mnist_data):
  s = streams.rotated_mnist(mnist_data)
  assert s.num_tasks == 3 and s.task_names == ("0°", "80°", "160°")
  n = len(mnist_data.train_labels)
  np.testing.assert_array_equal(s.train_task_ends, [n, 2 * n, 3 * n])
  for k in range(3):
    np.testing.assert_array_equal(s.train_labels[k * n:(k + 1) * n], mnist_data.train_labels)
  np.testing.assert_array_equal(s.train_images[:n], mnist_data.train_images)
  assert not np.array_equal(s.train_images[n:2 * n], mnist_data.train_images)


def test_joint_sampling_draws_uniformly_from_seen_tasks():
  ends = jnp.array([100, 250, 300])
  sample = jax.jit(sampling.sample_joint_indices, static_argnums=3)
  for task, high in enumerate([100, 250, 300]):
    rows = np.asarray(sample(jax.random.key(task), jnp.int32(task), ends, 20000))
    assert rows.dtype == np.int32 and rows.min() >= 0 and rows.max() == high - 1
    # Uniform over the union: task 0's share is 100 / high.
    np.testing.assert_allclose(np.mean(rows < 100), 100 / high, atol=0.015)


def test_load_benchmark(mnist_dir):
  assert benchmarks.load_benchmark("split_mnist", mnist_dir).num_tasks == 5
  with pytest.raises(ValueError, match="split_mnist, rotated_mnist"):
    benchmarks.load_benchmark("split_cifar", mnist_dir)


def _with_channels(d, c):
  """``d`` with images ``[N, H, W, c]`` (the one channel repeated)."""
  return d._replace(train_images=np.repeat(d.train_images[..., None], c, axis=-1),
                    test_images=np.repeat(d.test_images[..., None], c, axis=-1))


@pytest.mark.parametrize("build", [streams.split_mnist, streams.rotated_mnist])
def test_mnist_builders_accept_a_trailing_channel_axis(mnist_data, build):
  flat = build(mnist_data)
  chan = build(_with_channels(mnist_data, 1))
  assert chan.train_images.shape == flat.train_images.shape  # [N, 28, 28]
  np.testing.assert_array_equal(chan.train_images, flat.train_images)
  np.testing.assert_array_equal(chan.test_images, flat.test_images)
  np.testing.assert_array_equal(chan.train_labels, flat.train_labels)
  with pytest.raises(ValueError, match=r"\(120, 28, 28, 3\) have 3 channels"):
    build(_with_channels(mnist_data, 3))


def test_generic_builders_keep_channels(mnist_data):
  rgb = _with_channels(mnist_data, 3)
  s = streams.split_by_classes(rgb, [(0, 1), (2, 3)], "x")
  assert s.train_images.shape[1:] == (28, 28, 3)
  np.testing.assert_array_equal(s.train_images[..., 2],
                                streams.split_by_classes(mnist_data, [(0, 1), (2, 3)], "x").train_images)
  r = streams.rotated(rgb, (0, 80), "r", 10)
  flat = streams.rotated(mnist_data, (0, 80), "r", 10)
  assert r.train_images.shape == flat.train_images.shape + (3,)
  for ch in range(3):
    np.testing.assert_array_equal(r.train_images[..., ch], flat.train_images)
  # Three-dimensional images through the class-range builder too.
  m = streams.split_miniimagenet(mnist_data, num_tasks=2, classes_per_task=5)
  assert m.train_images.shape[1:] == (28, 28) and m.task_names == ("0-4", "5-9")


# ----------------------------------------------------------------------------
# Permuted MNIST and Split CIFAR-100


def test_pixel_permutations_reproducible_from_the_seed():
  perms = streams.pixel_permutations(4, seed=3)
  assert perms.shape == (4, 784) and perms.dtype == np.int32
  np.testing.assert_array_equal(perms[0], np.arange(784))  # task 1: the identity
  for p in perms:
    np.testing.assert_array_equal(np.sort(p), np.arange(784))
  np.testing.assert_array_equal(perms, streams.pixel_permutations(4, seed=3))
  np.testing.assert_array_equal(perms[1], np.random.default_rng([3, 1]).permutation(784))
  # A task's permutation does not depend on how many tasks there are.
  np.testing.assert_array_equal(streams.pixel_permutations(2, seed=3), perms[:2])
  other = streams.pixel_permutations(4, seed=4)
  np.testing.assert_array_equal(other[0], perms[0])
  assert all(not np.array_equal(other[k], perms[k]) for k in (1, 2, 3))
  assert len({p.tobytes() for p in perms}) == 4
  with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
    streams.pixel_permutations(2, seed=-1)


def test_permuted_mnist_permutes_pixels_and_keeps_labels(mnist_data):
  s = streams.permuted_mnist(mnist_data, num_tasks=3, permutation_seed=5)
  n, m = len(mnist_data.train_labels), len(mnist_data.test_labels)
  assert s.name == "permuted_mnist" and s.num_classes == 10
  assert s.task_names == ("identity", "perm-1", "perm-2")
  np.testing.assert_array_equal(s.train_task_ends, [n, 2 * n, 3 * n])
  np.testing.assert_array_equal(s.test_task_ends, [m, 2 * m, 3 * m])
  assert s.train_images.shape == (3 * n, 28, 28) and s.train_images.dtype == np.uint8
  perms = streams.pixel_permutations(3, seed=5)
  for images, labels, original, original_labels, size in (
      (s.train_images, s.train_labels, mnist_data.train_images, mnist_data.train_labels, n),
      (s.test_images, s.test_labels, mnist_data.test_images, mnist_data.test_labels, m)):
    flat = original.reshape(size, 784)
    for k in range(3):
      task = images[k * size:(k + 1) * size].reshape(size, 784)
      np.testing.assert_array_equal(labels[k * size:(k + 1) * size], original_labels)
      np.testing.assert_array_equal(task, flat[:, perms[k]])
      # The same pixels in another order: each image's sorted values agree.
      np.testing.assert_array_equal(np.sort(task, axis=1), np.sort(flat, axis=1))
    np.testing.assert_array_equal(images[:size], original)  # task 1 is the identity
    assert not np.array_equal(images[size:2 * size], original)
  # Reproducible; another seed, other permutations (task 1 stays the identity).
  again = streams.permuted_mnist(mnist_data, num_tasks=3, permutation_seed=5)
  np.testing.assert_array_equal(again.train_images, s.train_images)
  other = streams.permuted_mnist(mnist_data, num_tasks=3, permutation_seed=6)
  np.testing.assert_array_equal(other.train_images[:n], s.train_images[:n])
  assert not np.array_equal(other.train_images[n:], s.train_images[n:])


def test_permuted_mnist_training_subset_per_task(mnist_data):
  n = len(mnist_data.train_labels)
  s = streams.permuted_mnist(mnist_data, num_tasks=3, permutation_seed=2, train_per_task=50)
  np.testing.assert_array_equal(s.train_task_ends, [50, 100, 150])
  np.testing.assert_array_equal(s.test_task_ends, 60 * np.arange(1, 4))  # tests kept whole
  perms = streams.pixel_permutations(3, seed=2)
  flat = mnist_data.train_images.reshape(n, 784)
  rows = []
  for k in range(3):
    task = s.train_images[50 * k:50 * (k + 1)].reshape(50, 784)
    # Undo the permutation: every image is a training image, with its label.
    back = np.empty_like(task)
    back[:, perms[k]] = task
    found = [int(np.flatnonzero((flat == b).all(axis=1))[0]) for b in back]
    np.testing.assert_array_equal(s.train_labels[50 * k:50 * (k + 1)],
                                  mnist_data.train_labels[found])
    assert found == sorted(found) and len(set(found)) == 50  # stored order, no repeats
    rows.append(found)
  assert len({tuple(r) for r in rows}) == 3  # a different subset per task
  again = streams.permuted_mnist(mnist_data, num_tasks=3, permutation_seed=2, train_per_task=50)
  np.testing.assert_array_equal(again.train_images, s.train_images)
  # At least the training set's size keeps every image.
  whole = streams.permuted_mnist(mnist_data, num_tasks=2, train_per_task=10 * n)
  np.testing.assert_array_equal(whole.train_task_ends, [n, 2 * n])


def test_permuted_mnist_rejects_bad_options(mnist_data):
  for kwargs, match in (({"num_tasks": 0}, "num_tasks must be an integer >= 1, got 0"),
                        ({"permutation_seed": -2}, "permutation_seed must be .* got -2"),
                        ({"train_per_task": 0}, "train_per_task must be .* got 0"),
                        ({"num_tasks": 2.5}, "num_tasks .* got 2.5")):
    with pytest.raises(ValueError, match=match):
      streams.permuted_mnist(mnist_data, **kwargs)
  with pytest.raises(ValueError, match=r"rows \[1\] of permutations are not permutations"):
    streams.permuted(mnist_data, np.stack([np.arange(784), np.zeros(784, int)]), "x", 10)
  with pytest.raises(ValueError, match=r"expected \[tasks, 784\]"):
    streams.permuted(mnist_data, np.arange(10)[None], "x", 10)


def test_split_cifar100_ten_tasks_of_ten_disjoint_classes(cifar100_dir):
  from ngm_jax.data import read_cifar100_pickles  # pylint: disable=g-import-not-at-top
  root, _ = cifar100_dir
  data = read_cifar100_pickles(root)
  s = streams.split_cifar100(data)
  assert s.name == "split_cifar100" and s.num_tasks == 10 and s.num_classes == 100
  assert s.task_names == tuple(f"{10 * t}-{10 * t + 9}" for t in range(10))
  np.testing.assert_array_equal(s.train_task_ends, 20 * np.arange(1, 11))  # 2 per class
  np.testing.assert_array_equal(s.test_task_ends, 10 * np.arange(1, 11))   # 1 per class
  seen = set()
  for split_ends, labels in ((s.train_task_ends, s.train_labels),
                             (s.test_task_ends, s.test_labels)):
    for t, (lo, hi) in enumerate(zip(np.r_[0, split_ends[:-1]], split_ends)):
      classes = set(labels[lo:hi].tolist())
      assert classes == set(range(10 * t, 10 * t + 10))  # fine labels, in label order
      if split_ends is s.train_task_ends:
        assert not classes & seen
        seen |= classes
  # Images travel with their labels.
  i = int(np.flatnonzero(data.train_labels == 42)[0])
  j = int(np.flatnonzero((s.train_images == data.train_images[i]).all(axis=(1, 2, 3)))[0])
  assert s.train_labels[j] == 42
  five = streams.split_cifar100(data, num_tasks=5, classes_per_task=20)
  assert five.num_classes == 100 and five.task_names[-1] == "80-99"
  with pytest.raises(ValueError, match="11 tasks x 10 classes = 110 classes, but the data"
                                       " holds 100"):
    streams.split_cifar100(data, num_tasks=11)
