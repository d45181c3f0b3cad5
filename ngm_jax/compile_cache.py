"""A persistent compilation cache: compile a program once per machine.

:func:`enable` points JAX's persistent compilation cache at a folder (default
``$NGM_JAX_COMPILE_CACHE``, else ``$XDG_CACHE_HOME/ngm-jax/jax`` or
``~/.cache/ngm-jax/jax``) and caches every program, however quick its
compile. A later process that builds the same program loads the executable
from there instead of compiling it: ``run.json``'s ``compile_s`` is still
the time to have the executable, now mostly a read.

What invalidates an entry (JAX keys each one by a hash of): the program
itself (the lowered StableHLO, so any change of model, optimizer, schedule,
shapes, dtypes, batch size, number of seeds or devices, sharding), the
compile options and XLA flags, the jax/jaxlib version, and the backend and
device kind. Data values do not: they are arguments of the program. The
cache grows without bound; delete the folder to empty it.

``NGM_JAX_COMPILE_CACHE=off`` (or ``0``) turns it off for every command,
``--no-compile-cache`` for one.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["ENV", "default_folder", "enable"]

#: A folder for the cache, or ``off``/``0`` to leave it off.
ENV = "NGM_JAX_COMPILE_CACHE"
_OFF = ("off", "0", "false", "no", "")


def default_folder() -> Path | None:
  """The cache folder: ``$NGM_JAX_COMPILE_CACHE`` (None if it says off), else
  the user cache directory's ``ngm-jax/jax``."""
  env = os.environ.get(ENV)
  if env is not None:
    return None if env.strip().lower() in _OFF else Path(env).expanduser()
  base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
  return Path(base) / "ngm-jax" / "jax"


def enable(folder: str | os.PathLike | None = None) -> Path | None:
  """Turns the persistent compilation cache on in ``folder`` (default
  :func:`default_folder`) for this process; returns the folder, or None when
  it stays off (the environment says so, or the folder cannot be made).

  A cache another caller configured already (``jax_compilation_cache_dir``
  set) is kept as it is.
  """
  current = jax.config.jax_compilation_cache_dir
  if current:
    return Path(current)
  folder = Path(folder) if folder is not None else default_folder()
  if folder is None:
    return None
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", str(folder))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return folder
