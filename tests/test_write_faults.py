"""A full or read-only disk: every results file and figure that cannot be
written ends in one line naming the path and the cause (exit code 2 from the
commands), and what was saved before stays as it was, loadable.

The full disk is real where a test can make one without privileges: a file
size limit (``RLIMIT_FSIZE``, SIGXFSZ ignored) makes the kernel refuse the
write with EFBIG, as a full disk refuses it with ENOSPC. A read-only file
system cannot be made without root (and root writes through ``chmod``), so
EROFS and ENOSPC are injected (monkeypatch) at each writer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal

import numpy as np
import pytest
from matplotlib.figure import Figure

from ngm_jax import cli, files, results, run_files
from tests.fake_runs import FAST, PROTOCOL, fake_curves, old_meta, write_run

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
EROFS = OSError(errno.EROFS, os.strerror(errno.EROFS))


@contextlib.contextmanager
def file_size_limit(nbytes: int):
  """Writes past ``nbytes`` in any file fail with EFBIG (this process)."""
  handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
  try:
    yield
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, handler)


@pytest.fixture
def saved(tmp_path):
  """A reported run: run.json, curves.npz and the derived files."""
  curves, its = fake_curves()
  meta = {**old_meta(), **PROTOCOL, "task1_test_size": 12}
  write_run(tmp_path / "run", meta, {"ngm_sgd": curves, "g0_sgd": fake_curves(seed=1)[0]}, its)
  results.report(tmp_path / "run")
  return tmp_path / "run"


def _contents(folder):
  return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_figure_that_does_not_fit_is_one_line_and_the_old_one_stays(saved, capsys):
  before = _contents(saved)
  assert len(before["figure.png"]) > 50_000 > len(before["metrics.json"])
  with file_size_limit(50_000):  # the JSON files and the table fit, the figure does not
    code = cli.main(["report", str(saved)])
  err = capsys.readouterr().err
  # Was "AttributeError: '_idat' object has no attribute 'fileno'" from Pillow.
  assert code == 2 and "Traceback" not in err and "_idat" not in err
  assert err == (f"error: cannot write {saved / 'figure.png'}: File too large [EFBIG] (the"
                 " file would exceed the largest file allowed here). Files written before"
                 " are unchanged.\n")
  assert _contents(saved) == before  # no temporary file left, the old figure whole
  results.load_result(saved)


@pytest.mark.parametrize("name", ["metrics.json", "failed_seeds.json", "table.md"])
@pytest.mark.parametrize("error, cause", [
    (ENOSPC, "No space left on device [ENOSPC] (the disk is full)"),
    (EROFS, "Read-only file system [EROFS] (the file system is read-only)"),
])
def test_each_report_file_names_its_path_and_the_cause(saved, capsys, monkeypatch, name,
                                                        error, cause):
  before = _contents(saved)
  write_text = type(saved).write_text

  def fail_for_one(path, *args, **kwargs):
    if path.name.startswith(f".{name}."):  # atomic_path's temporary file of that name
      path.write_bytes(b"half")
      raise error
    return write_text(path, *args, **kwargs)

  monkeypatch.setattr(type(saved), "write_text", fail_for_one)
  assert cli.main(["report", str(saved)]) == 2
  assert capsys.readouterr().err == (f"error: cannot write {saved / name}: {cause}. Files"
                                     " written before are unchanged.\n")
  assert _contents(saved)[name] == before[name]
  assert sorted(_contents(saved)) == sorted(before)


def test_the_run_files_and_the_log_keep_their_old_contents(saved, monkeypatch):
  before = _contents(saved)
  result = results.load_result(saved)
  monkeypatch.setattr(run_files.np, "savez_compressed", lambda *a, **k: (_ for _ in ()).throw(
      ENOSPC))
  with pytest.raises(files.WriteError, match=f"cannot write {saved / 'curves.npz'}: No space"
                                             " left on device"):
    results.save_result(result, saved)
  monkeypatch.setattr(files.os, "replace", lambda *a: (_ for _ in ()).throw(EROFS))
  with pytest.raises(files.WriteError, match=f"cannot write {saved / 'run.json'}: Read-only"):
    results.write_json(saved / "run.json", {"changed": True})
  with pytest.raises(files.WriteError, match=f"cannot write {saved / 'log.jsonl'}: Read-only"):
    results.append_log(saved, {"optimizer": "x"})
  assert _contents(saved) == before
  assert results.load_result(saved).meta == result.meta


def test_a_figure_written_by_pillow_or_matplotlib_names_the_path(tmp_path, monkeypatch):
  """An error raised while handling the OSError (Pillow's AttributeError) is
  still told as the write failure it is."""
  def pillow_like(*args, **kwargs):
    try:
      raise ENOSPC
    except OSError:  # raised while handling it, as Pillow does
      raise AttributeError("'_idat' object has no attribute 'fileno'")  # pylint: disable=W0707

  monkeypatch.setattr(Figure, "savefig", pillow_like)
  from ngm_jax import plots
  with pytest.raises(files.WriteError) as err:
    plots.finish(Figure(), tmp_path / "f.png")
  assert str(err.value).startswith(f"cannot write {tmp_path / 'f.png'}: No space left")
  assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
  assert list(tmp_path.iterdir()) == []
  monkeypatch.setattr(Figure, "savefig", lambda *a, **k: (_ for _ in ()).throw(KeyError("x")))
  with pytest.raises(KeyError):  # not a write failure: left as it is
    plots.finish(Figure(), tmp_path / "f.png")


def test_a_folder_that_cannot_be_made_is_named_and_the_lock_given_back(tmp_path, monkeypatch):
  mkdir = type(tmp_path).mkdir

  def read_only(path, *args, **kwargs):
    if path.name == "run.partial":
      raise EROFS
    return mkdir(path, *args, **kwargs)

  monkeypatch.setattr(type(tmp_path), "mkdir", read_only)
  with pytest.raises(files.WriteError, match=f"cannot write {tmp_path / 'run.partial'}: Read-only"):
    results.prepare_out(tmp_path / "run", overwrite=True)
  assert sorted(p.name for p in tmp_path.iterdir()) == []  # no lock left behind


@pytest.mark.slow  # two runs through the command line, ~30 s on a shared machine
def test_a_run_whose_curves_cannot_be_saved_stops_with_the_resume_command(tmp_path, capsys,
                                                                          monkeypatch):
  from tests.conftest import fake_mnist, write_mnist_idx
  data_dir = write_mnist_idx(tmp_path / "data", fake_mnist())
  argv = ["run", "--benchmark", "split_mnist", "--optimizers", "ngm_sgd,sgd", "--seeds", "2",
          "--data-dir", str(data_dir), "--out", str(tmp_path / "out"), *FAST]
  savez, calls = np.savez_compressed, []

  def full_on_the_second(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # the curves after the second variant
      raise ENOSPC
    return savez(*args, **kwargs)

  monkeypatch.setattr(run_files.np, "savez_compressed", full_on_the_second)
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  assert err.startswith(f"error: cannot write {tmp_path / 'out' / 'curves.npz'}: No space left"
                        " on device [ENOSPC] (the disk is full). Files written before are"
                        " unchanged.\nOnce it can be written, continue with:\n  ")
  assert err.rstrip().endswith("--resume") and "Traceback" not in err
  saved, _ = results.load_curves(tmp_path / "out" / "curves.npz")
  assert list(saved) == ["ngm_sgd"]  # the first variant's curves, whole
  monkeypatch.setattr(run_files.np, "savez_compressed", savez)
  assert cli.main(argv + ["--resume"]) == 0
  assert results.load_result(tmp_path / "out").labels == ["ngm_sgd", "sgd"]
  assert not (tmp_path / "out.lock").exists()
