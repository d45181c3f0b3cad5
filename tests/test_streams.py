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
