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
