"""Files written whole or not at all, and one clear error when the disk refuses.

:func:`atomic_path` writes to a temporary name beside the target, then
renames; :func:`writing` guards the other writes (making, renaming and
removing folders). Shared by the results (:mod:`ngm_jax.results`) and the
figures (:mod:`ngm_jax.plots`), so that a run stopped at any moment leaves
each file as it was or complete, never a part, and a full or read-only disk
ends in a :class:`WriteError` naming the file and the cause, not a
traceback from NumPy, JSON or Pillow.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "writing", "WriteError"]

#: What an errno means for the one who reads the message.
_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file would exceed the largest file allowed here",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "no permission to write there",
    errno.EPERM: "no permission to write there",
}


class WriteError(OSError, ValueError):
  """A file or folder could not be written (a full disk, a read-only file
  system, no permission, ...). ``str()`` is one line naming the path and the
  cause; ``errno`` and ``filename`` are the failed call's.

  Both an OSError (what it is) and a ValueError, so that every command of
  this library, which answers a ValueError with one line and exit code 2,
  answers this one the same way.
  """

  def __init__(self, path: str | os.PathLike, cause: OSError):
    reason = cause.strerror or str(cause) or type(cause).__name__
    super().__init__(cause.errno, reason, str(path))
    meaning = _CAUSES.get(cause.errno)
    code = errno.errorcode.get(cause.errno) if cause.errno is not None else None
    self.message = (f"cannot write {path}: {reason}{f' [{code}]' if code else ''}"
                    f"{f' ({meaning})' if meaning else ''}. Files written before are"
                    " unchanged.")

  def __str__(self) -> str:
    return self.message


def _os_error(error: BaseException) -> OSError | None:
  """``error`` if it is an OSError, else the OSError it was raised while
  handling (Pillow raises ``AttributeError: '_idat' object has no attribute
  'fileno'`` around the ``OSError`` of a full disk), else None."""
  seen = 0
  while error is not None and seen < 8:
    if isinstance(error, OSError):
      return error
    error, seen = error.__cause__ or error.__context__, seen + 1
  return None


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
  """Turns an OSError inside the block into a :class:`WriteError` naming ``path``::

      with writing(out):
        out.mkdir(parents=True, exist_ok=True)
  """
  try:
    yield
  except WriteError:
    raise
  except Exception as e:  # pylint: disable=broad-except  # only those caused by an OSError
    cause = _os_error(e)
    if cause is None:
      raise
    raise WriteError(path, cause) from e


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
  """A temporary file beside ``path`` (same folder, same suffix) to write to;
  on leaving the ``with`` block without an error it is flushed to disk and
  renamed to ``path`` (``os.replace``: readers see the old file or the whole
  new one, never a part), else removed::

      with atomic_path(out / "table.md") as tmp:
        tmp.write_text(text)

  Raises:
    WriteError: the temporary file could not be made, written, flushed or
      renamed (an OSError inside the block, or an error raised while handling
      one); ``path`` is then as it was before.
  """
  path = Path(path)
  with writing(path):
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
                                dir=path.parent)
  os.close(fd)
  tmp = Path(name)
  try:
    with writing(path):
      yield tmp
      with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
      os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would have given
      os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):  # on a file system gone read-only, it stays
      tmp.unlink(missing_ok=True)
    raise
