"""What ``loop="auto"`` / ``seed_axis="auto"`` choose, and what they refuse.

The choices come from measurements (docs/results.md, "Scaling out (issue
10)"); these tests pin them so that a change is a decision, not an accident.
The runs themselves are tested in tests/test_sharding.py and tests/test_train.py.
"""

import pytest

from ngm_jax.execution import default_execution, resolve_execution


@pytest.mark.parametrize("platform, convolutional, devices, expected", [
    ("cpu", False, 1, ("scan", "vmap")),
    ("cpu", False, 8, ("scan", "vmap")),
    ("cpu", True, 1, ("chunked", "sequential")),
    ("cpu", True, 2, ("chunked", "shard")),  # 0.60x of sequential, measured
    ("gpu", True, 1, ("scan", "sequential")),  # 99 against 58 seed-it/s vmapped, H200
    ("gpu", True, 8, ("scan", "shard")),
    ("gpu", False, 8, ("scan", "vmap")),
    ("tpu", False, 4, ("scan", "vmap")),
])
def test_default_execution(platform, convolutional, devices, expected):
  assert default_execution(platform, convolutional, devices) == expected


@pytest.mark.parametrize("loop, seed_axis, convolutional, devices, expected", [
    ("auto", "auto", True, 2, ("chunked", "shard")),   # this CPU
    ("auto", "auto", False, 2, ("scan", "vmap")),
    ("auto", "vmap", True, 2, ("scan", "vmap")),       # vmap on a mesh: the one program
    ("auto", "vmap", True, 1, ("chunked", "vmap")),
    ("chunked", "auto", False, 2, ("chunked", "shard")),
    ("chunked", "auto", False, 1, ("chunked", "vmap")),
    ("scan", "auto", True, 2, ("scan", "shard")),
    ("scan", "sequential", True, 1, ("scan", "sequential")),
])
def test_resolve_execution_fills_in_auto(loop, seed_axis, convolutional, devices, expected):
  assert resolve_execution(loop, seed_axis, convolutional, devices, "cpu") == expected


@pytest.mark.parametrize("loop, seed_axis, message", [
    ("chunked", "sequential", "seed_axis='sequential' on 2 devices"),
    ("scan", "map", "seed_axis='map' on 2 devices"),
    ("auto", "sequential", "seed_axis='sequential' on 2 devices"),
    ("loops", "auto", "loop='loops'; choose from auto, scan, chunked"),
    ("auto", "pmap", "seed_axis='pmap'; choose from auto, vmap, map, sequential, shard"),
])
def test_resolve_execution_names_what_cannot_run(loop, seed_axis, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(")) as info:
    resolve_execution(loop, seed_axis, True, 2, "cpu")
  if "devices" in message:
    assert "seed_axis='shard'" in str(info.value) and "devices=1" in str(info.value)


def test_batched_outputs_reads_vmaps_own_flags_in_one_trace():
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ngm_jax.execution import _batched_outputs  # pylint: disable=g-import-not-at-top

  x, c = np.ones((3, 2), np.float32), np.float32(1.0)
  assert _batched_outputs(lambda x, c: (2 * x, c + 1, jnp.zeros(4)), (0, None), x, c) == [
      True, False, False]
  # No output batched: vmap never calls the rule.
  assert _batched_outputs(lambda x, c: (c, c), (0, None), x, c) == [False, False]

  def loop(carry):  # n stays unbatched alone; mixed with the batched a it does not
    def body(s, _):
      a, n, m = s
      return (a + 1, n + 1, m + a.sum()), None
    return jax.lax.scan(body, carry, None, length=2)[0]

  carry = (x, np.float32(0), np.float32(0))
  assert _batched_outputs(loop, ((0, None, None),), carry) == [True, False, True]


def test_shared_leaves_are_adams_count_and_the_step():
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ngm_jax import streams  # pylint: disable=g-import-not-at-top
  from ngm_jax.execution import _shared_leaves  # pylint: disable=g-import-not-at-top
  from ngm_jax.train import TrainConfig, make_train_parts, seed_keys  # pylint: disable=g-import-not-at-top
  from tests.conftest import fake_mnist  # pylint: disable=g-import-not-at-top

  stream = streams.split_mnist(fake_mnist(n_train_per_class=4, n_test_per_class=2))
  parts = make_train_parts(stream, "adam", TrainConfig(iterations_per_task=2, batch_size=4,
                                                      task_eval_every=2))
  runs = {"key_data": np.asarray(jax.random.key_data(seed_keys(3))), "hyperparams": {}}
  shared = _shared_leaves(parts, parts.data, runs)
  carry = jax.eval_shape(lambda k: parts.init(k, parts.data), seed_keys(1)[0])
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(carry)]
  names = [p for p, s in zip(paths, shared) if s]
  assert len(paths) == len(shared) and len(names) == 2, names
  assert any("count" in n for n in names) and any(n.endswith(".step") for n in names), names
