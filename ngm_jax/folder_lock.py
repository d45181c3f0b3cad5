"""One run per output folder: ``<out>.lock`` beside it, held while a run writes.

A run takes the lock before it changes anything in ``out`` or
``<out>.partial`` and keeps it until its results are in place; a second run
into the same folder (with or without ``--overwrite`` or ``--resume``) is
refused at once, naming the holder's PID, host, start time and command
(:class:`FolderInUse`). Of a multi-process run, process 0, the one that
writes, holds it.

How: ``fcntl.flock`` on the lock file. The kernel releases a flock when the
process that holds it ends, however it ends (SIGKILL included), so a lock
left by a killed run is free: the next run takes it over and says whose it
was. The file is beside the folder, not in it, so that it outlives the swap
of ``<out>.partial`` into ``out``'s place. A released lock's file is removed;
a run that opened the file just before checks after locking that the file it
locked is still the one at the path, and retries if not.

On NFS, Linux turns ``flock`` into POSIX byte-range locks held by the server's
lock manager: runs on different hosts exclude each other, and the lock of a
host that crashed is freed when its lease ends (NFSv4: about 90 s). A file
system without locks (``ENOLCK``, ``ENOSYS``: NFS without ``lockd``, Lustre
mounted ``noflock``) cannot lock: the run says so on stderr and goes on
unlocked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from ngm_jax.files import WriteError, writing

try:
  import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
  fcntl = None

__all__ = ["FolderInUse", "lock_path", "acquire", "release", "holding", "holder"]

#: errnos of a file system that cannot lock (the run goes on, unlocked).
_NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)


class FolderInUse(ValueError):
  """Another run holds ``out``'s lock. ``holder`` is its record (``pid``,
  ``host``, ``started``, ``command``; empty if it had not written one yet).
  A ValueError, so a command answers it with one line and exit code 2."""

  def __init__(self, out: Path, holder: dict[str, Any]):
    self.out, self.holder = out, holder
    if holder:
      command = " ".join(str(holder.get("command") or "").split())  # one line
      if len(command) > 160:
        command = command[:157] + "..."
      who = (f"PID {holder.get('pid', '?')} on host {holder.get('host', '?')}, started"
             f" {holder.get('started', '?')}" + (f" ({command})" if command else ""))
    else:
      who = "a run that is starting (it has not recorded its PID yet)"
    super().__init__(
        f"{out} is in use by another run: {who}. One run at a time writes into a folder:"
        " wait for it to finish (or stop it), or choose another folder.")


@dataclasses.dataclass
class _Lock:
  fd: int | None  # None: the file system cannot lock
  holds: int = 0  # open holding() blocks
  run: bool = False  # taken by a run (prepare_out), given back by finish_out


#: This process's locks, by the lock file's absolute path.
_HELD: dict[str, _Lock] = {}


def lock_path(out: str | os.PathLike) -> Path:
  """``<out>.lock``, beside ``out`` (``out`` made absolute: ``.`` locks
  ``../<name of the current folder>.lock``)."""
  out = Path(os.path.abspath(out))
  return out.with_name(out.name + ".lock")


def _record(fd: int) -> dict[str, Any]:
  """The holder's record in the lock file (empty if none, or unreadable)."""
  try:
    text = os.pread(fd, 65536, 0).decode("utf-8", "replace")
    record = json.loads(text) if text.strip() else {}
    return record if isinstance(record, dict) else {}
  except (OSError, ValueError):
    return {}


def holder(out: str | os.PathLike) -> dict[str, Any] | None:
  """The record of the run holding ``out``'s lock, or None if none holds it
  (a probe for tests and tools: it holds a shared lock for an instant, in
  which a run starting would be refused)."""
  if fcntl is None:
    return None
  path = lock_path(out)
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return None
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except BlockingIOError:
    return _record(fd)
  except OSError:
    return None
  finally:
    os.close(fd)
  return None


def _lock_file(out: Path, path: Path) -> int | None:
  """An open descriptor of ``path`` with the flock taken (None: no locks here).

  Raises:
    FolderInUse: another process holds it.
    WriteError: the file cannot be made.
  """
  for _ in range(100):  # each retry: the file was removed or replaced meanwhile
    with writing(path):
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      record = _record(fd)
      os.close(fd)
      raise FolderInUse(out, record) from None
    except OSError as e:
      os.close(fd)
      if e.errno in _NO_LOCKS:
        print(f"warning: {path}: this file system cannot lock files ({e.strerror});"
              f" the run goes on unlocked: make sure no other run writes into {out}.",
              file=sys.stderr, flush=True)
        return None
      raise WriteError(path, e) from e
    try:
      now, mine = os.stat(path), os.fstat(fd)
      if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
        return fd
    except FileNotFoundError:
      pass
    os.close(fd)
  raise RuntimeError(f"{path}: the lock file kept being replaced; is another run starting?")


def acquire(out: str | os.PathLike, *, run: bool = False) -> bool:
  """Takes ``out``'s lock for this process; returns whether it was taken now
  (False: this process held it already).

  Args:
    out: the run's folder (its parent is made if missing).
    run: taken for a run (:func:`ngm_jax.results.prepare_out`): given back by
      ``release(out, run=True)`` (:func:`ngm_jax.results.finish_out`) unless
      a :func:`holding` block still holds it.

  Raises:
    FolderInUse: another process holds it (naming the holder).
    WriteError: the lock file cannot be made (read-only, full, ...).
  """
  out = Path(out)
  path = lock_path(out)
  key = str(path)
  lock = _HELD.get(key)
  taken = lock is None
  if taken:
    if fcntl is None:
      lock = _Lock(None)
    else:
      with writing(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
      fd = _lock_file(out, path)
      lock = _Lock(fd)
      if fd is not None:
        try:
          _take_over(fd, path, out)
        except BaseException:
          os.close(fd)  # unlocked: the file holds no record, or the killed run's
          raise
    _HELD[key] = lock
  lock.run = lock.run or run
  return taken


def _take_over(fd: int, path: Path, out: Path) -> None:
  """Writes this process's record into the lock file; a record already there
  is of a run that ended without releasing it (killed): said on stderr."""
  before = _record(fd)
  record = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": shlex.join(getattr(sys, "orig_argv", sys.argv))}
  with writing(path):
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    os.fsync(fd)
  if before:
    print(f"Note: {out} was locked by PID {before.get('pid', '?')} on host"
          f" {before.get('host', '?')} (started {before.get('started', '?')}), which ended"
          " without releasing it (killed?); this run takes it over.", file=sys.stderr,
          flush=True)


def release(out: str | os.PathLike, *, run: bool = False) -> None:
  """Gives back ``out``'s lock: ``run=True`` the hold of a run
  (:func:`acquire` with ``run=True``), kept while a :func:`holding` block is
  open; ``run=False`` every hold. The lock file is removed, then unlocked."""
  path = lock_path(out)
  key = str(path)
  lock = _HELD.get(key)
  if lock is None:
    return
  if run:
    lock.run = False
    if lock.holds:
      return
  del _HELD[key]
  if lock.fd is not None:
    with contextlib.suppress(OSError):
      path.unlink()  # before unlocking: a run waiting on this file retries on a new one
    os.close(lock.fd)


@contextlib.contextmanager
def holding(out: str | os.PathLike, hold: bool = True) -> Iterator[None]:
  """``out``'s lock for the block (released when the block ends, however it
  ends); a run inside it (:func:`ngm_jax.results.prepare_out`) shares it.
  ``hold=False``: nothing (e.g. a process other than 0)."""
  if not hold:
    yield
    return
  acquire(out)
  _HELD[str(lock_path(out))].holds += 1
  try:
    yield
  finally:
    lock = _HELD.get(str(lock_path(out)))
    if lock is not None:
      lock.holds -= 1
      if lock.holds == 0:
        release(out)
