"""Saved runs as sources of curves: loading one, its variants, and which of
its curves a new run can reuse.

Reads the folders of :func:`ngm_jax.experiment.run_benchmark` (``run.json``
and ``curves.npz``; older ones too: fields they did not record take the
values that code always used).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ngm_jax import results
from ngm_jax.train import TrainConfig

__all__ = ["load_run", "run_variants", "find_reusable", "reusable_curves"]


def load_run(folder: str | Path, option: str = "") -> tuple[dict, dict, dict]:
  """``(meta, curves, iterations)`` of a saved run folder.

  Args:
    folder: holds ``run.json`` and ``curves.npz``.
    option: the command-line option that named it, to start the error message.

  Raises:
    ValueError: either file is missing.
  """
  path = Path(folder)
  if not (path / "run.json").exists() or not (path / "curves.npz").exists():
    raise ValueError(f"{option + ' ' if option else ''}{folder}: holds no saved run (needs"
                     " run.json and curves.npz).")
  meta = results.read_json(path / "run.json")
  curves, iterations = results.load_curves(path / "curves.npz")
  return meta, curves, iterations


def run_variants(meta: Mapping[str, Any]) -> dict[str, tuple[str, dict]]:
  """``{label: (optimizer, train config dict)}`` of a saved ``run.json``.

  A run written before labelled variants existed has no ``variants``: every
  optimizer was trained with ``meta["train"]``.
  """
  if "variants" in meta:
    return {label: (v["optimizer"], dict(v["train"])) for label, v in meta["variants"].items()}
  return {name: (name, dict(meta["train"])) for name in meta["optimizers"]}


#: The protocol a reused curve must share, beyond the optimizer and config,
#: and the value an older ``run.json`` that did not record a key implies.
_PROTOCOL_DEFAULTS = {
    "benchmark": None,
    "seeds": None,
    "task1_eval_size": None,
    "benchmark_options": {},
    "test_subset_per_task": None,
    "model": "MLP",  # MNIST runs before image benchmarks existed
    "augment": False,
}


def _protocol_value(meta: Mapping[str, Any], key: str):
  value = meta.get(key, _PROTOCOL_DEFAULTS[key])
  if key == "benchmark_options":
    value = {k: v for k, v in (value or {}).items() if v is not None}
  if key == "test_subset_per_task":
    value = value or None
  return value


def find_reusable(
    meta: Mapping[str, Any],
    optimizer: str,
    config: TrainConfig,
    protocol: Mapping[str, Any],
) -> tuple[str | None, str]:
  """The label in a saved run whose curves are those of ``(optimizer, config)``.

  A saved variant is identical when its optimizer name and its full training
  config are equal (fields an older run did not record take their defaults,
  which that code always used), it was trained without per-seed
  hyperparameters (``seed_hyperparams`` of
  :func:`ngm_jax.experiment.run_benchmark`, e.g. a replayed gain schedule,
  which the config does not hold), and the run's protocol (benchmark, its
  options, seeds, Task-1 evaluation size, test subset, model, augmentation)
  equals ``protocol``.

  Args:
    meta: a run's ``run.json``.
    optimizer: a name of :data:`ngm_jax.optimizers.OPTIMIZER_NAMES`.
    config: the wanted training config.
    protocol: the wanted values of the protocol keys (a key left out is not
      compared).

  Returns:
    ``(label, "")`` for a match, or ``(None, reason)`` naming the first
    difference.
  """
  for key, wanted in protocol.items():
    if key not in _PROTOCOL_DEFAULTS:
      raise ValueError(f"find_reusable: unknown protocol key {key!r}; known:"
                       f" {', '.join(_PROTOCOL_DEFAULTS)}.")
    have = _protocol_value(meta, key)
    if key in ("benchmark_options", "test_subset_per_task"):
      wanted = _protocol_value({key: wanted}, key)
    if have != wanted:
      return None, f"{key} is {have!r}, not {wanted!r}"
  defaults = dataclasses.asdict(TrainConfig())
  want = dataclasses.asdict(config)
  reason = f"no {optimizer} variant"
  per_seed = meta.get("seed_hyperparams", {})
  for label, (name, train) in run_variants(meta).items():
    if name != optimizer:
      continue
    if per_seed.get(label):  # its curves depend on values the config does not hold
      reason = f"{label}: trained with per-seed {', '.join(per_seed[label])}"
      continue
    have = {**defaults, **train}
    diff = [f"{k}={have.get(k)!r} (not {v!r})" for k, v in want.items() if have.get(k) != v]
    diff += [f"unknown field {k}" for k in have if k not in want]
    if not diff:
      return label, ""
    reason = f"{label}: " + ", ".join(diff)
  return None, reason


def reusable_curves(
    sources: Mapping[str, tuple[dict, dict, dict]],
    optimizer: str,
    config: TrainConfig,
    protocol: Mapping[str, Any],
    iterations: Mapping[str, np.ndarray],
    num_seeds: int,
) -> tuple[dict | None, str, str]:
  """The curves of the first saved variant identical to ``(optimizer, config)``.

  A variant qualifies when :func:`find_reusable` matches it, its curves were
  saved (a run still in progress may not have them yet), and they have the
  wanted iteration axes and ``num_seeds`` seeds.

  Args:
    sources: ``{folder: (meta, curves, iterations)}`` from :func:`load_run`.
    optimizer, config, protocol: as for :func:`find_reusable`.
    iterations: the wanted iteration axes (``{"task1", "tasks", "step"}``).
    num_seeds: the wanted number of seeds.

  Returns:
    ``(curves, "reused: FOLDER (LABEL)", "")`` for a match (noting a run
    still in progress), else ``(None, "", why)`` with each folder's reason.
  """
  reasons = []
  for folder, (meta, curves, its) in sources.items():
    label, reason = find_reusable(meta, optimizer, config, protocol)
    if label is not None and label not in curves:
      label, reason = None, f"{label} not finished (no curves yet)"
    if label is not None:
      same_axes = all(np.array_equal(its.get(k), v) for k, v in iterations.items())
      if not same_axes or curves[label]["task1_acc"].shape[0] != num_seeds:
        label, reason = None, f"{label}: curves of another shape"
    if label is not None:
      finished = "" if "wall_s" in meta else "; that run was still in progress"
      return curves[label], f"reused: {folder} ({label}{finished})", ""
    reasons.append(f"{folder}: {reason}")
  return None, "", "; ".join(reasons)
