"""A checkpoint step's files, checked; its faults, told in one sentence.

After orbax has written and committed a step, :func:`write_file_list` records
the size and SHA-256 of every file in the step's folder (``files.json``
there). Before a step is restored, :func:`check_file_list` compares the
folder with that list, so that a file cut short, missing or overwritten is
found before orbax reads it (orbax then fails with a traceback, or, where
nothing checks a byte, reads wrong values). A step without the list (made
by an older version, or killed between orbax's commit and the list) is
checked by reading it.

:func:`describe` turns an ``OSError`` or orbax's wrapped errors (TensorStore's
``ValueError`` with ``[os_error_code='28']``) into the cause and the file, and
a failed write is a :class:`CheckpointWriteError` (a
:class:`ngm_jax.files.WriteError`, as every refused write of a run);
:func:`quiet_orbax` keeps orbax's background-thread tracebacks off the
terminal while a step is read or written, since the fault is reported once,
by :class:`CheckpointError`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

from ngm_jax.digests import sha256_file
from ngm_jax.files import WriteError

__all__ = ["CheckpointError", "CheckpointWriteError", "FILE_LIST", "os_error", "write_file_list", "check_file_list", "describe",
           "quiet_orbax", "join_orbax_threads"]

#: The file list a step's folder gets once orbax has committed it.
FILE_LIST = "files.json"

class CheckpointError(ValueError):
  """A checkpoint that cannot be read or written: the message names the
  folder or step and the fault (the command line answers it with one line and
  exit code 2). ``path``: the checkpoint folder or step."""

  def __init__(self, message: str, path: Path):
    super().__init__(message)
    self.path = Path(path)


class CheckpointWriteError(WriteError, CheckpointError):
  """A checkpoint that could not be written (a full or read-only disk, ...):
  a :class:`ngm_jax.files.WriteError` as every refused write of a run is
  (the command line adds the command that resumes), and a
  :class:`CheckpointError`. ``errno``, ``filename``: the failed call's."""

  def __init__(self, message: str, path: Path, cause: OSError):  # pylint: disable=super-init-not-called
    WriteError.__init__(self, cause.filename or path, cause)
    self.message, self.path = message, Path(path)


def _files(folder: Path) -> list[str]:
  return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                if p.is_file() and p.name != FILE_LIST)


def write_file_list(folder: Path) -> None:
  """Writes ``folder/files.json``: ``{relative path: [bytes, sha256]}`` of
  every file in the committed step ``folder`` (written under another name
  and renamed, so a list is whole or absent).

  Raises:
    OSError: it could not be written.
  """
  listing = {name: [(folder / name).stat().st_size, sha256_file(folder / name)]
             for name in _files(folder)}
  tmp = folder / f".{FILE_LIST}.tmp"
  tmp.write_text(json.dumps({"version": 1, "files": listing}, indent=0))
  os.replace(tmp, folder / FILE_LIST)


def check_file_list(folder: Path) -> tuple[bool, str | None]:
  """``(listed, fault)``: whether ``folder`` has a file list, and what is
  wrong with the step (None: every listed file is there with its size and
  digest), e.g. ``"carry/d/3f2a is 4096 bytes, 8192 were written (cut
  short)"``; an empty folder is a fault with or without a list."""
  if not folder.is_dir():
    return False, "the folder is missing"
  if not any(p.is_file() for p in folder.rglob("*")):
    return False, "the folder is empty"
  path = folder / FILE_LIST
  if not path.exists():
    return False, None
  try:
    listing = json.loads(path.read_text())["files"]
    entries = [(str(k), int(v[0]), str(v[1])) for k, v in listing.items()]
  except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
    return True, f"its file list {FILE_LIST} is damaged ({type(e).__name__}: {e})"
  faults = []
  for name, size, digest in entries:
    file = folder / name
    if not file.is_file():
      faults.append(f"{name} is missing")
    elif (now := file.stat().st_size) != size:
      faults.append(f"{name} is {now} bytes, {size} were written"
                    f" ({'cut short' if now < size else 'grown'})")
    elif sha256_file(file) != digest:
      faults.append(f"{name} differs from what was written (SHA-256)")
  if not faults:
    return True, None
  more = f" (and {len(faults) - 1} more damaged files)" if len(faults) > 1 else ""
  return True, faults[0] + more


_TS_ERRNO = re.compile(r"\[os_error_code='?(\d+)'?\]")
_TS_FILE = re.compile(r'(?:Failed writing|Failed to open|Error (?:reading|writing)[^"]*"[^"]*" in'
                      r' OCDBT database at local file|writing local file): "([^"]+)"')


def os_error(error: BaseException) -> OSError | None:
  """The ``OSError`` behind a failed write or read: ``error`` or one it was
  raised from, or TensorStore's ``[os_error_code=N]`` (orbax's ``ValueError``)
  as one, with the file it names; None if there is none."""
  for e in (error, error.__cause__, error.__context__):
    if isinstance(e, OSError) and e.errno:
      return e
  text = str(error)
  code = _TS_ERRNO.search(text)
  if code is None:
    return None
  file = _TS_FILE.findall(text)
  return OSError(int(code.group(1)), os.strerror(int(code.group(1))), file[-1] if file else None)


def describe(error: BaseException) -> str:
  """The cause of a failed write or read, in a phrase: the reason and the
  file of its ``OSError`` (:func:`os_error`; ``No space left on device
  [ENOSPC]: /path``), else the error's type and first line."""
  cause = os_error(error)
  if cause is not None:
    code = errno.errorcode.get(cause.errno, cause.errno)
    return f"{cause.strerror} [{code}]" + (f": {cause.filename}" if cause.filename else "")
  text = str(error).strip() or type(error).__name__
  first = text.splitlines()[0].rstrip(".")
  return f"{type(error).__name__}: {first[:400]}"


class _Hold(logging.Filter):
  """Keeps orbax's records (warnings and up) instead of printing them."""

  def __init__(self):
    super().__init__()
    self.records: list[logging.LogRecord] = []

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING and f"{os.sep}orbax{os.sep}" in record.pathname:
      self.records.append(record)
      return False
    return True


def _closed_loop_noise(unraisable) -> bool:
  """TensorStore's callbacks into the event loop orbax closed after a failed
  read or write (``RuntimeError: Event loop is closed``, unraisable)."""
  e = unraisable.exc_value
  return isinstance(e, RuntimeError) and str(e) == "Event loop is closed"


def _install_unraisable_filter() -> None:
  previous = sys.unraisablehook
  if getattr(previous, "_ngm_jax_filter", False):
    return

  def hook(unraisable):
    if not _closed_loop_noise(unraisable):
      previous(unraisable)

  hook._ngm_jax_filter = True  # pylint: disable=protected-access
  sys.unraisablehook = hook


@contextlib.contextmanager
def quiet_orbax() -> Iterator[_Hold]:
  """While active, orbax's warnings and errors (with their background
  threads' tracebacks) are held in the yielded object's ``records``
  instead of printed; the fault is reported once by the caller. TensorStore's
  late ``Event loop is closed`` callbacks after a failed read or write are
  dropped from then on (they come after orbax has returned)."""
  hold = _Hold()
  loggers = [logging.getLogger("absl"), logging.getLogger()]
  for logger in loggers:
    logger.addFilter(hold)
  _install_unraisable_filter()
  try:
    yield hold
  finally:
    for logger in loggers:
      logger.removeFilter(hold)


def join_orbax_threads(timeout_s: float = 120.0) -> None:
  """Waits (at most ``timeout_s`` in all) for orbax's worker threads that a
  failed save leaves running (they finish the other items' writes, then log
  the failure), so that they neither write into a folder being removed nor
  fail at interpreter exit ("cannot schedule new futures after shutdown")."""
  deadline = time.monotonic() + timeout_s
  for thread in threading.enumerate():
    if thread is not threading.current_thread() and type(thread).__module__.startswith("orbax."):
      thread.join(max(0.0, deadline - time.monotonic()))
