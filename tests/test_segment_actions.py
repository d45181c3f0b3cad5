"""Between two segments: decisions agreed by every process, checkpoints when due.

The several-process runs are in tests/test_multiprocess_faults.py (slow);
here the agreement is checked with a stand-in for the collective.
"""

import types

import jax
import numpy as np
import pytest
from jax.experimental import multihost_utils

from ngm_jax import segment_actions
from ngm_jax.segment_actions import Agreement, PeerLost, SegmentActions, agree, peer_lost


def test_one_process_decides_alone():
  assert agree(None, True) == Agreement(None, True)
  assert agree(2, False) == Agreement(2, False)


@pytest.fixture
def two_processes(monkeypatch):
  """This process is process 1 of 2; ``gathered`` is what the collective returns."""
  state = {}
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "process_index", lambda: 1)

  def allgather(mine, tiled=False):
    del tiled
    state["mine"] = np.asarray(mine)
    if isinstance(state.get("gathered"), Exception):
      raise state["gathered"]
    return state["gathered"]

  monkeypatch.setattr(multihost_utils, "process_allgather", allgather)
  return state


def test_process_0s_clock_decides_for_every_process(two_processes):
  # Process 1's clock says due, process 0's not: nobody saves (the hang was
  # process 1 entering the collective save alone).
  two_processes["gathered"] = np.asarray([[0, 0], [0, 1]], np.int32)
  assert agree(None, True) == Agreement(None, False)
  np.testing.assert_array_equal(two_processes["mine"], [0, 1])
  two_processes["gathered"] = np.asarray([[0, 1], [0, 0]], np.int32)
  assert agree(None, False) == Agreement(None, True)


def test_one_processs_signal_stops_every_process(two_processes):
  two_processes["gathered"] = np.asarray([[15, 0], [0, 0]], np.int32)
  assert agree(None, False) == Agreement(15, False)


def test_a_failed_collective_is_a_lost_peer(two_processes):
  two_processes["gathered"] = jax.errors.JaxRuntimeError(
      "UNKNOWN: Gloo AllGather failed: Read error [127.0.0.1]:9621: Connection reset by peer")
  with pytest.raises(PeerLost, match=r"another process of this run stopped .*Gloo AllGather"
                                     r" failed.*; what was saved is in OUT"):
    agree(None, False, folder="OUT")


def test_peer_lost_needs_several_processes_and_a_peer_failure(monkeypatch):
  error = jax.errors.JaxRuntimeError("Gloo all-reduce failed: Connection closed by peer")
  assert not peer_lost(error)  # one process: not a peer's
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  assert peer_lost(error)
  assert not peer_lost(ValueError("RESOURCE_EXHAUSTED: out of memory"))


class _Checkpoints:
  def __init__(self):
    self.saved = []

  def save(self, step, carry, records, meta):
    self.saved.append((step, meta["blocks_done"], meta["finished"]))


def _done(blocks):
  state = lambda: ({"w": np.zeros((2, 1))}, {"r": np.zeros((2, blocks))}, blocks)
  return types.SimpleNamespace(blocks_done=blocks, run_s=0.1 * blocks, state=state)


def test_checkpoints_at_task_boundaries_and_on_a_stop(monkeypatch):
  stop = types.SimpleNamespace(signum=None)
  checkpoints = _Checkpoints()
  logged = []
  actions = SegmentActions("ngm_sgd", 1, total_blocks=4, blocks_per_task=2, total=40,
                           num_seeds=2, stop=stop, checkpoints=checkpoints, every_s=None,
                           log=logged.append)
  assert actions(_done(1)) is False and checkpoints.saved == []  # mid-task, no clock
  assert actions(_done(2)) is False and checkpoints.saved[-1][1:] == (2, False)
  stop.signum = 2
  assert actions(_done(3)) is True and checkpoints.saved[-1][1:] == (3, False)
  assert actions.saved_at_stop and actions.saved_iterations == 30
  assert [d.blocks_done for d in logged] == [1, 2, 3]


def test_a_timed_checkpoint_follows_the_clock(monkeypatch):
  clock = [100.0]
  monkeypatch.setattr(segment_actions.time, "perf_counter", lambda: clock[0])
  checkpoints = _Checkpoints()
  actions = SegmentActions("sgd", 1, total_blocks=8, blocks_per_task=8, total=80, num_seeds=2,
                           stop=types.SimpleNamespace(signum=None), checkpoints=checkpoints,
                           every_s=5.0)
  clock[0] = 104.0
  actions(_done(1))
  assert checkpoints.saved == []
  clock[0] = 105.5
  actions(_done(2))
  assert [s[1] for s in checkpoints.saved] == [2]
