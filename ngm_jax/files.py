"""Files written whole or not at all: a temporary name beside the target, then a rename.

Shared by the results (:mod:`ngm_jax.results`) and the figures
(:mod:`ngm_jax.plots`), so that a run stopped at any moment leaves each file
as it was or complete, never a part.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path"]


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
  """
  path = Path(path)
  fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
                              dir=path.parent)
  os.close(fd)
  tmp = Path(name)
  try:
    yield tmp
    with open(tmp, "rb+") as f:
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would have given
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
