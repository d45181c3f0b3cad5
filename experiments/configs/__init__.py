"""One config per benchmark, what the docs ran: each module's ``get_config()``
returns an :class:`~ngm_jax.config.ExperimentConfig`.

The ``ngm-jax`` command's default for a benchmark is its registry record's
(:meth:`ngm_jax.config.ExperimentConfig.of_benchmark`); ``ngm-jax run --config
experiments/configs/<name>.py`` runs one of these instead, and the analyses in
``experiments/`` start from them.
"""

from __future__ import annotations

import importlib
import pkgutil

from ngm_jax.config import ExperimentConfig

__all__ = ["ExperimentConfig", "available", "get_config"]


def available() -> list[str]:
  """Names of the benchmark configs in this package."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg)


def get_config(name: str) -> ExperimentConfig:
  """The config of benchmark ``name``; ValueError names the known ones."""
  if name not in available():
    raise ValueError(f"Unknown benchmark {name!r}; choose from {', '.join(available())}.")
  return importlib.import_module(f"{__name__}.{name}").get_config()
