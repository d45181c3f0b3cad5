"""Checkpoints of the training carry, the stop on a signal, and atomic files."""

import errno
import os
import signal
import stat

import jax
import numpy as np
import pytest

from ngm_jax import plots, results
from ngm_jax.checkpoint import (CheckpointError, RunCheckpoints, RunStopped, StopRequest,
                                keys_as_data, keys_from_data, signals_deferred)
from ngm_jax.checkpoint_files import CheckpointWriteError, check_file_list, describe
from ngm_jax.files import WriteError
from ngm_jax.execution import host_carry_shape
from ngm_jax.streams import split_mnist
from ngm_jax.train import TrainConfig, make_train_parts, seed_keys
from tests.conftest import damage_checkpoint, fake_mnist

CONFIG = TrainConfig(iterations_per_task=2, batch_size=4, eval_every=1, task_eval_every=2)


@pytest.fixture(scope="module")
def parts():
  return make_train_parts(split_mnist(fake_mnist(4, 2)), "ngm_sgd", CONFIG)


def test_keys_travel_as_key_data_and_back():
  tree = {"key": jax.random.split(jax.random.key(3), 2), "x": np.arange(3.0),
          "raw": np.arange(4, dtype=np.uint32)}
  data = keys_as_data(tree)
  assert data["key"].dtype == np.uint32 and data["key"].shape == (2, 2)
  np.testing.assert_array_equal(data["raw"], tree["raw"])  # uint32 that is not a key stays
  back = keys_from_data(data, tree)
  assert jax.dtypes.issubdtype(back["key"].dtype, jax.dtypes.prng_key)
  assert not jax.dtypes.issubdtype(back["raw"].dtype, jax.dtypes.prng_key)
  np.testing.assert_array_equal(jax.random.key_data(back["key"]),
                                jax.random.key_data(tree["key"]))
  np.testing.assert_array_equal(jax.random.uniform(back["key"][1], (3,)),
                                jax.random.uniform(tree["key"][1], (3,)))


def _carry(parts, num_seeds=2):
  like = host_carry_shape(parts, seed_keys(num_seeds))
  rng = np.random.default_rng(0)
  carry = jax.tree.map(lambda s: rng.integers(0, 9, s.shape).astype(s.dtype), like)
  return like, carry


def test_a_saved_carry_and_its_records_come_back_bit_for_bit(parts, tmp_path):
  like, carry = _carry(parts)
  # The carry holds every part of the state: gain, key data, step, diverged_at.
  assert like.key.dtype == np.uint32 and like.key.shape == (2, 2)
  assert like.step.shape == (2,) and like.diverged_at.shape == (2,)
  records = ({"gain": np.ones((2, 3, 2, 1), np.float32)}, {"task1_acc": np.zeros((2, 3, 2))},
             {"task_acc": np.full((2, 3, 5), 0.5, np.float32)})
  checkpoints = RunCheckpoints(tmp_path)
  assert checkpoints.latest() is None
  checkpoints.save(7, carry, records, {"variant": "a", "blocks_done": 3})
  checkpoints.save(9, carry, records, {"variant": "a", "blocks_done": 4})
  checkpoints.save(12, carry, records, {"variant": "b", "blocks_done": 1})
  # The two newest are kept; a new manager (a new process) finds the latest.
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()
                if p.name.isdigit()) == [9, 12]
  step, meta = RunCheckpoints(tmp_path).latest()
  assert step == 12 and meta == {"variant": "b", "blocks_done": 1}
  got, got_records = RunCheckpoints(tmp_path).restore(12, like)
  assert jax.tree.structure(got) == jax.tree.structure(carry)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(carry)):
    np.testing.assert_array_equal(a, b)
    assert a.dtype == b.dtype
  for a, b in zip(got_records, records):
    assert set(a) == set(b)
    for name in b:
      np.testing.assert_array_equal(a[name], b[name])


def test_a_checkpoint_of_another_run_is_refused(parts, tmp_path):
  _, carry = _carry(parts, num_seeds=2)
  records = ({"gain": np.ones((2, 1))}, {"t": np.ones((2, 1))}, {"a": np.ones((2, 1))})
  RunCheckpoints(tmp_path).save(1, carry, records, {"variant": "a"})
  three_seeds = host_carry_shape(parts, seed_keys(3))
  with pytest.raises(ValueError, match="number of seeds"):
    RunCheckpoints(tmp_path).restore(1, three_seeds)


def test_stop_request_sets_a_flag_then_restores_the_handlers():
  # Python's own Ctrl-C handler, also where this process was started with SIGINT
  # ignored (a background job, nohup): the second Ctrl-C below must reach it.
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    _stop_request_round_trip()
  finally:
    signal.signal(signal.SIGINT, previous)


def _stop_request_round_trip():
  before = {s: signal.getsignal(s) for s in StopRequest.SIGNALS}
  with StopRequest(announce=False) as stop:
    assert not stop.requested
    assert signal.getsignal(signal.SIGTERM) != before[signal.SIGTERM]
    signal.raise_signal(signal.SIGTERM)
    assert stop.signum == signal.SIGTERM
    # A second one would do what it did before the run.
    assert signal.getsignal(signal.SIGTERM) == before[signal.SIGTERM]
  assert {s: signal.getsignal(s) for s in StopRequest.SIGNALS} == before
  with StopRequest(announce=False) as stop:
    signal.raise_signal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):  # the second Ctrl-C: Python's own handler
      signal.raise_signal(signal.SIGINT)
  assert stop.signum == signal.SIGINT
  assert {s: signal.getsignal(s) for s in StopRequest.SIGNALS} == before


def test_run_stopped_names_the_exit_code_and_where(tmp_path):
  e = RunStopped(signal.SIGTERM, tmp_path, "adam", 40, 100, checkpointed=True)
  assert e.exit_code == 143 and RunStopped(signal.SIGINT, tmp_path).exit_code == 130
  assert "SIGTERM" in str(e) and "'adam' at iteration 40 of 100" in str(e)
  assert str(tmp_path / "checkpoints") in str(e)


def test_atomic_path_replaces_whole_or_not_at_all(tmp_path):
  path = tmp_path / "table.md"
  path.write_text("old")
  with pytest.raises(RuntimeError):
    with results.atomic_path(path) as tmp:
      tmp.write_text("half")
      raise RuntimeError("killed while writing")
  assert path.read_text() == "old"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]  # no temporary left
  with results.atomic_path(path) as tmp:
    assert tmp.parent == tmp_path and tmp.suffix == ".md" and tmp != path
    tmp.write_text("new")
  assert path.read_text() == "new"
  mode = stat.S_IMODE(path.stat().st_mode)
  umask = os.umask(0)
  os.umask(umask)
  assert mode == 0o666 & ~umask  # as open() would have made it, not mkstemp's 0600


def test_a_figure_that_fails_to_save_leaves_the_old_one(tmp_path, monkeypatch):
  path = tmp_path / "figure.png"
  fig = plots.new_figure()
  fig.add_subplot().plot([0, 1])
  plots.finish(fig, path)
  old = path.read_bytes()
  assert old.startswith(b"\x89PNG")

  def fail(self, fname, **kwargs):
    with open(fname, "wb") as f:
      f.write(b"\x89PNG half")
    raise OSError("disk full")

  monkeypatch.setattr(type(fig), "savefig", fail)
  with pytest.raises(OSError):
    plots.finish(fig, path)
  assert path.read_bytes() == old
  assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png"]


def test_overwrite_writes_beside_the_old_run_and_swaps_at_the_end(tmp_path):
  out = tmp_path / "run"
  out.mkdir()
  (out / "curves.npz").write_text("old run")
  with pytest.raises(ValueError, match="already holds a run; pass overwrite=True"):
    results.prepare_out(out, overwrite=False)
  work = results.prepare_out(out, overwrite=True)
  assert work == tmp_path / "run.partial" and work.is_dir()
  assert (out / "curves.npz").read_text() == "old run"  # untouched while the new one runs
  (work / "curves.npz").write_text("new run")
  # Resuming an unfinished overwrite continues in the same folder.
  assert results.work_folder(out, overwrite=False, resume=True) == work
  assert results.finish_out(work, out) == out
  assert (out / "curves.npz").read_text() == "new run"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_stopped_run_is_not_mistaken_for_a_new_folder(tmp_path):
  out = tmp_path / "run"
  (out / "checkpoints").mkdir(parents=True)
  (out / "run.json").write_text("{}")
  with pytest.raises(ValueError, match="did not finish; pass resume=True to continue it"):
    results.prepare_out(out, overwrite=False)
  assert results.prepare_out(out, overwrite=False, resume=True) == out


def test_a_swap_cut_short_is_completed(tmp_path):
  out = tmp_path / "run"
  (tmp_path / "run.old").mkdir()
  (tmp_path / "run.partial").mkdir()
  (tmp_path / "run.partial" / "curves.npz").write_text("new run")
  results.prepare_out(out, overwrite=False, resume=True)
  assert (out / "curves.npz").read_text() == "new run"
  assert not (tmp_path / "run.old").exists()


def test_the_log_is_rewritten_whole(tmp_path):
  results.append_log(tmp_path, {"optimizer": "a"})
  (tmp_path / "log.jsonl").write_text((tmp_path / "log.jsonl").read_text() + '{"optim')
  results.append_log(tmp_path, {"optimizer": "b"})  # after a line cut short
  lines = (tmp_path / "log.jsonl").read_text().splitlines()
  assert lines[0] == '{"optimizer": "a"}' and lines[-1] == '{"optimizer": "b"}'


# ---------------------------------------------------------------------------
# Faults: damaged steps, failed writes, a second signal while a step is written.

#: kind -> the fault named with the file list, and without it (a step of an
#: older version, read by orbax). Without the list, bytes overwritten in an
#: array file's stored data may be read back as they are (orbax checks no
#: digest): only the list finds them.
DAMAGE = {  # the kinds of tests.conftest.damage_checkpoint
    "truncated array file": ("were written (cut short)", "orbax cannot read it: ValueError:"),
    "missing meta/metadata": ("meta/metadata is missing", "meta/metadata not found"),
    "emptied step folder": ("the folder is empty", "the folder is empty"),
    "garbage in a file": ("differs from what was written (SHA-256)", None),
}
CASES = [(kind, listed) for kind, faults in DAMAGE.items() for listed in (True, False)
         if faults[0 if listed else 1] is not None]


def _two_steps(parts, folder):
  like, carry = _carry(parts)
  records = ({"gain": np.ones((2, 3, 2, 1), np.float32)}, {"task1_acc": np.zeros((2, 3, 2))},
             {"task_acc": np.full((2, 3, 5), 0.5, np.float32)})
  checkpoints = RunCheckpoints(folder)
  checkpoints.save(7, carry, records, {"variant": "a", "blocks_done": 3})
  checkpoints.save(9, jax.tree.map(lambda x: x + 1, carry), records,
                   {"variant": "a", "blocks_done": 4})
  return like, carry


@pytest.mark.parametrize("kind, listed", CASES,
                         ids=[f"{k}, {'file list' if l else 'no list'}" for k, l in CASES])
def test_a_damaged_newest_step_is_set_aside_and_the_older_one_used(parts, tmp_path, capfd,
                                                                 kind, listed):
  like, carry = _two_steps(parts, tmp_path)
  steps = tmp_path / "checkpoints"
  if not listed:  # as an older version wrote them
    for path in steps.glob("*/files.json"):
      path.unlink()
  damage_checkpoint(steps / "9", kind)
  capfd.readouterr()
  checkpoints = RunCheckpoints(tmp_path)
  assert checkpoints.latest() == (7, {"variant": "a", "blocks_done": 3})
  err = capfd.readouterr().err
  assert f"Checkpoint {steps / '9'} is damaged: " in err, err
  assert DAMAGE[kind][0 if listed else 1] in err, err
  assert "Set aside as 9.damaged; using step 7, the newest intact checkpoint." in err
  assert "Traceback" not in err and "absl" not in err and len(err.strip().splitlines()) == 1
  got, _ = checkpoints.restore(7, like)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(carry)):
    np.testing.assert_array_equal(a, b)
  # Set aside, out of orbax's sight: the run goes on from step 7 and saves 8, 9, ...
  assert (steps / "9.damaged").is_dir() and not (steps / "9").exists()
  checkpoints.save(8, carry, ({"a": np.ones((2, 1))},) * 3, {"variant": "a", "blocks_done": 4})
  assert RunCheckpoints(tmp_path).latest()[0] == 8
  assert capfd.readouterr().err == ""


def test_no_intact_step_is_refused_with_each_fault(parts, tmp_path, capfd):
  like, _ = _two_steps(parts, tmp_path)
  steps = tmp_path / "checkpoints"
  name = damage_checkpoint(steps / "9", "truncated array file")
  damage_checkpoint(steps / "7", "missing meta/metadata")
  capfd.readouterr()
  with pytest.raises(CheckpointError) as refused:
    RunCheckpoints(tmp_path).latest()
  message = str(refused.value)
  assert message.startswith(f"{steps}: no intact checkpoint (step 9: {name} is ")
  assert "(cut short); step 7: meta/metadata is missing). Delete that folder" in message
  assert isinstance(refused.value, ValueError)  # the command line: one line, exit code 2
  assert capfd.readouterr().err == ""
  assert sorted(p.name for p in steps.iterdir()) == ["7", "9"]  # left for the user to see
  with pytest.raises(CheckpointError, match=r"checkpoints/9 is damaged: .* \(cut short\)\.$"):
    RunCheckpoints(tmp_path).restore(9, like)


def _no_space(monkeypatch):
  """orbax's writer of the meta item (run in its worker machinery) fails as a
  full disk does."""
  from orbax.checkpoint._src.handlers import json_checkpoint_handler  # pylint: disable=g-import-not-at-top

  async def full(self, x, directory):
    raise OSError(errno.ENOSPC, "No space left on device", str(directory / "metadata"))

  monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", full)


def test_a_failed_write_is_one_error_and_keeps_the_steps_before(parts, tmp_path, capfd,
                                                                monkeypatch):
  like, carry = _two_steps(parts, tmp_path)
  records = ({"a": np.ones((2, 1))},) * 3
  checkpoints = RunCheckpoints(tmp_path)
  capfd.readouterr()
  with monkeypatch.context() as patch:
    _no_space(patch)
    with pytest.raises(CheckpointError) as failed:
      checkpoints.save(11, carry, records, {"variant": "a", "blocks_done": 5})
  steps = tmp_path / "checkpoints"
  file = f"{steps}/11.orbax-checkpoint-tmp/meta.orbax-checkpoint-tmp/metadata"
  assert str(failed.value) == (
      f"checkpoint 11 could not be written to {steps}: No space left on device [ENOSPC]:"
      f" {file}. The checkpoints saved before are kept (steps 7, 9).")
  # A WriteError as every refused write of a run (the command line adds how to resume).
  assert isinstance(failed.value, WriteError) and isinstance(failed.value, ValueError)
  assert (failed.value.errno, failed.value.filename) == (errno.ENOSPC, file)
  err = capfd.readouterr().err
  assert "Traceback" not in err and "ERROR" not in err, err
  assert sorted(p.name for p in steps.iterdir()) == ["7", "9"]  # the temporary one removed
  assert RunCheckpoints(tmp_path).latest()[0] == 9
  # The same object writes again once there is room.
  checkpoints.save(11, carry, records, {"variant": "a", "blocks_done": 5})
  assert RunCheckpoints(tmp_path).latest() == (11, {"variant": "a", "blocks_done": 5})
  got, _ = RunCheckpoints(tmp_path).restore(11, like)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(carry)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_folder_is_one_error(parts, tmp_path):
  _, carry = _carry(parts)
  checkpoints = RunCheckpoints(tmp_path)
  checkpoints.save(1, carry, ({"a": np.ones((2, 1))},) * 3, {"variant": "a"})
  (tmp_path / "checkpoints").chmod(0o555)
  try:
    with pytest.raises(CheckpointWriteError, match="could not be written to .*Permission"
                                                   r" denied \[EACCES\].*kept \(step 1\)"):
      checkpoints.save(2, carry, ({"a": np.ones((2, 1))},) * 3, {"variant": "a"})
  finally:
    (tmp_path / "checkpoints").chmod(0o755)
  assert RunCheckpoints(tmp_path).latest()[0] == 1


def test_describe_names_the_cause_and_the_file():
  assert describe(OSError(errno.EROFS, "Read-only file system", "/x/1")) == (
      "Read-only file system [EROFS]: /x/1")
  tensorstore = ValueError(
      'OUT_OF_RANGE: Error writing "000/0.0.0" in OCDBT database at local file "/c/9/": Failed'
      ' writing: "/c/9/d/ab": Failed to write 8 bytes to file 11: File too large'
      " [os_error_code='27']")
  assert describe(tensorstore) == "File too large [EFBIG]: /c/9/d/ab"
  assert describe(KeyError("x")) == "KeyError: 'x'"


def test_a_second_signal_waits_for_the_block_and_a_stop_request_is_told_at_once(capfd):
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    with StopRequest(announce=False) as stop:
      with pytest.raises(KeyboardInterrupt):
        with signals_deferred("the test's block"):
          signal.raise_signal(signal.SIGINT)  # the first: StopRequest sets its flag at once
          assert stop.signum == signal.SIGINT
          signal.raise_signal(signal.SIGINT)  # the second: held until the block ends
          done = True
      assert done
      with signals_deferred("the test's block"):
        signal.raise_signal(signal.SIGTERM)  # StopRequest's first SIGTERM: ignored (flag set)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
  finally:
    signal.signal(signal.SIGINT, previous)
  err = capfd.readouterr().err
  assert err.count("SIGINT: finishing the test's block first, then stopping") == 1, err
  assert "SIGTERM" not in err


def test_a_second_ctrl_c_during_a_save_stops_after_the_step_is_written(parts, tmp_path,
                                                                      monkeypatch):
  from orbax.checkpoint._src.checkpointers import checkpointer  # pylint: disable=g-import-not-at-top
  _, carry = _carry(parts)
  checkpoints = RunCheckpoints(tmp_path)
  step_metadata = checkpointer.Checkpointer._save_step_metadata

  def interrupted(self, *args, **kwargs):  # the items are written, the step not yet committed
    signal.raise_signal(signal.SIGINT)
    return step_metadata(self, *args, **kwargs)

  monkeypatch.setattr(checkpointer.Checkpointer, "_save_step_metadata", interrupted)
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    with pytest.raises(KeyboardInterrupt):
      checkpoints.save(3, carry, ({"a": np.ones((2, 1))},) * 3, {"variant": "a"})
  finally:
    signal.signal(signal.SIGINT, previous)
  monkeypatch.undo()
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["3"]
  assert check_file_list(tmp_path / "checkpoints" / "3") == (True, None)
  assert RunCheckpoints(tmp_path).latest() == (3, {"variant": "a"})
