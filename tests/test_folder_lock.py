"""One run per output folder (ngm_jax.folder_lock): a second run into a folder
another process writes into is refused, naming the holder; a lock left by a
killed run is taken over; the lock is shared within a process and given back."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ngm_jax import folder_lock, results
from tests.fake_runs import FAST

ROOT = Path(__file__).resolve().parents[1]


def _holder_process(out: Path) -> subprocess.Popen:
  """Another process that takes ``out``'s lock and keeps it."""
  code = ("import sys, time\nfrom ngm_jax import folder_lock\n"
          f"folder_lock.acquire({str(out)!r})\nprint('held', flush=True)\ntime.sleep(600)\n")
  proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
  assert proc.stdout.readline() == "held\n"
  return proc


def test_a_folder_another_process_writes_into_is_refused_then_taken_over_once_it_is_killed(
    tmp_path, capsys):
  out = tmp_path / "run"
  (tmp_path / "run.partial").mkdir()
  (tmp_path / "run.partial" / "curves.npz").write_text("the other run's")
  holder = _holder_process(out)
  try:
    record = json.loads((tmp_path / "run.lock").read_text())
    assert record["pid"] == holder.pid and record["host"] == socket.gethostname()
    assert folder_lock.holder(out) == record
    for flags in ({"overwrite": False}, {"overwrite": True}, {"overwrite": False, "resume": True}):
      with pytest.raises(folder_lock.FolderInUse) as refused:
        results.prepare_out(out, **flags)
      assert str(refused.value).startswith(
          f"{out} is in use by another run: PID {holder.pid} on host {socket.gethostname()},"
          f" started {record['started']} (")
      assert str(refused.value).endswith("One run at a time writes into a folder: wait for it"
                                         " to finish (or stop it), or choose another folder.")
    # The overwrite was refused before it removed the other run's folder.
    assert (tmp_path / "run.partial" / "curves.npz").read_text() == "the other run's"
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
  capsys.readouterr()
  work = results.prepare_out(out, overwrite=False, resume=True)  # the killed run's lock is free
  assert capsys.readouterr().err == (
      f"Note: {out} was locked by PID {holder.pid} on host {socket.gethostname()} (started"
      f" {record['started']}), which ended without releasing it (killed?); this run takes it"
      " over.\n")
  assert json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()
  results.finish_out(work, out)
  assert not (tmp_path / "run.lock").exists() and folder_lock.holder(out) is None


def test_the_lock_is_shared_within_a_process_and_given_back(tmp_path):
  out = tmp_path / "run"
  with folder_lock.holding(out):  # a command holds it around the run
    work = results.prepare_out(out, overwrite=False)
    assert results.prepare_out(out, overwrite=False, resume=True) == work  # the same process
    results.finish_out(work, out)
    assert (tmp_path / "run.lock").exists()  # still the command's
  assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
  # A refused run gives back the lock it took.
  (out / "curves.npz").write_text("a run")
  with pytest.raises(ValueError, match="already holds a run"):
    results.prepare_out(out, overwrite=False)
  assert not (tmp_path / "run.lock").exists()
  # A run that stopped keeps its folder until it finishes, or release_out.
  results.prepare_out(out, overwrite=True)
  assert (tmp_path / "run.lock").exists()
  results.release_out(out)
  assert not (tmp_path / "run.lock").exists()


def test_a_file_system_without_locks_goes_on_with_a_warning(tmp_path, monkeypatch, capsys):
  def no_locks(fd, operation):
    raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

  monkeypatch.setattr(folder_lock.fcntl, "flock", no_locks)
  work = results.prepare_out(tmp_path / "run", overwrite=False)
  assert capsys.readouterr().err == (
      f"warning: {tmp_path / 'run.lock'}: this file system cannot lock files"
      f" ({os.strerror(errno.ENOLCK)}); the run goes on unlocked: make sure no other run"
      f" writes into {tmp_path / 'run'}.\n")
  results.finish_out(work, tmp_path / "run")


def _cli(*args) -> list[str]:
  return [sys.executable, "-m", "ngm_jax.cli", "run", *args]


@pytest.mark.slow  # three command-line runs in subprocesses, ~40 s
def test_two_runs_into_one_folder_the_second_refused_then_a_killed_runs_lock_taken_over(
    tmp_path):
  from tests.conftest import fake_mnist, write_mnist_idx
  data_dir = write_mnist_idx(tmp_path / "data", fake_mnist())
  out = tmp_path / "out"
  argv = ["--benchmark", "split_mnist", "--optimizers", "sgd", "--seeds", "1", "--data-dir",
          str(data_dir), "--out", str(out), *FAST]
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  first = subprocess.Popen(_cli(*argv), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 120
    while folder_lock.holder(out) is None or folder_lock.holder(out).get("pid") != first.pid:
      assert time.monotonic() < deadline and first.poll() is None
      time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # it holds the lock, frozen: a run in progress
    for extra in ([], ["--overwrite"], ["--resume"]):
      start = time.monotonic()
      second = subprocess.run(_cli(*argv, *extra), cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
      assert second.returncode == 2, second.stderr
      assert second.stderr.startswith(
          f"error: {out} is in use by another run: PID {first.pid} on host"
          f" {socket.gethostname()}, started "), second.stderr
      assert "Traceback" not in second.stderr and "Loading" not in second.stdout
      assert time.monotonic() - start < 60  # at once: before the data are read
  finally:
    first.send_signal(signal.SIGKILL)  # killed holding the lock
    first.wait(30)
  third = subprocess.run(_cli(*argv, "--resume"), cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
  assert third.returncode == 0, third.stderr
  assert (f"Note: {out} was locked by PID {first.pid} on host {socket.gethostname()}"
          in third.stderr and "this run takes it over" in third.stderr)
  assert results.load_result(out).labels == ["sgd"]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out"]  # the lock given back


@pytest.mark.slow  # two processes through the command line, ~40 s
def test_only_process_0_of_a_multi_process_run_holds_the_lock(tmp_path):
  """Both processes of one run name the same --out; were process 1 to take the
  lock too, one of them would be refused."""
  from tests.conftest import fake_mnist, write_mnist_idx
  from tests.test_sharding import _env, _finish, _free_port
  data = write_mnist_idx(tmp_path / "mnist", fake_mnist(n_train_per_class=4,
                                                        n_test_per_class=2))
  coordinator = f"127.0.0.1:{_free_port()}"
  procs = [subprocess.Popen(
      _cli("--benchmark", "split_mnist", "--data-dir", str(data), "--optimizers", "sgd",
           "--seeds", "2", "--iterations-per-task", "2", "--batch-size", "4",
           "--task-eval-every", "2", "--no-progress", "--out", str(tmp_path / "out"),
           "--coordinator", coordinator, "--num-processes", "2", "--process-id", str(i)),
      env={**_env(1), "PYTHONPATH": str(ROOT)}, cwd=ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True) for i in (1, 0)]
  outputs = [_finish(p) for p in procs]  # both exit 0
  assert all("in use by another run" not in o for o in outputs)
  assert results.load_result(tmp_path / "out").meta["mesh"]["processes"] == 2
  assert not (tmp_path / "out.lock").exists()


def test_a_library_run_that_stops_in_an_error_gives_its_lock_back(tmp_path, monkeypatch):
  # run_benchmark with out= takes out's lock; an error inside the run (here
  # the data do not fit) gives it back, so another process may use the folder.
  import ngm_jax  # pylint: disable=g-import-not-at-top
  from ngm_jax import runner, streams  # pylint: disable=g-import-not-at-top
  from ngm_jax.train import TrainConfig  # pylint: disable=g-import-not-at-top
  from tests.conftest import fake_mnist  # pylint: disable=g-import-not-at-top

  def too_large(stream):
    assert folder_lock.lock_path(out).exists()  # held while the run prepares
    raise ValueError("does not fit")

  monkeypatch.setattr(runner, "check_fits", too_large)
  out = tmp_path / "run"
  with pytest.raises(ValueError, match="does not fit"):
    ngm_jax.run_benchmark(streams.split_mnist(fake_mnist()), ["sgd"],
                          TrainConfig(iterations_per_task=2, batch_size=4, task_eval_every=2),
                          num_seeds=1, out=out, show_progress=False)
  assert folder_lock.holder(out) is None and not folder_lock.lock_path(out).exists()
