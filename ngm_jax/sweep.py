"""Sensitivity of NGM-SGD to η and γ: a whole grid × seeds as one program.

:func:`make_sweep` builds ``sweep_fn(etas [E], gammas [G], keys [S]) ->
curves [E, G, S, ...]``: NGM-SGD is built with ``optax.inject_hyperparams``,
so η and γ are values in the optimizer state, and the run of
:func:`ngm_jax.train.make_train` is ``vmap``-ped three times, over seeds,
over γ and over η. Compiled once, it trains every (η, γ, seed) together.
:func:`sweep` compiles and runs it; :func:`separate_runs` runs settings one
program each (the Python loop the sweep replaces), for timing and checks;
:func:`grid_metrics` reduces the curves to avg-SG, avg-ACC, ... grids, mean
± standard error over seeds (:mod:`ngm_jax.metrics`).

The gain starts at g0 in every run (g0 and the learning rate are not swept).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ngm_jax.execution import train_seeds
from ngm_jax.gain import ngm_sgd
from ngm_jax.metrics import TABLE_METRICS, task1_metrics
from ngm_jax.optimizers import Optimizer, partition_by_gain
from ngm_jax.placement import gain_mask
from ngm_jax.variants import network
from ngm_jax.sharding import run_mesh
from ngm_jax.stats import mean_and_stderr
from ngm_jax.sampling import Sampler
from ngm_jax.streams import TaskStream
from ngm_jax.train import TrainConfig, make_train, make_train_parts, seed_keys

__all__ = [
    "check_grid",
    "make_sweep",
    "sweep",
    "separate_runs",
    "grid_metrics",
]


def check_grid(etas: Sequence[float], gammas: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
  """The grid as float32 arrays ``[E]``, ``[G]``, after checking it.

  Raises:
    ValueError: an empty axis, a repeated value, or a value outside its range
      (η finite and ``>= 0``; γ in ``[0, 1)``), naming the value.
  """
  checks = (("eta", etas, lambda v: v >= 0.0, "[0, inf)"),
            ("gamma", gammas, lambda v: 0.0 <= v < 1.0, "[0, 1)"))
  out = []
  for name, values, ok, allowed in checks:
    values = [float(v) for v in values]
    if not values:
      raise ValueError(f"sweep: no {name} values given; give at least one in {allowed}.")
    for v in values:
      if not math.isfinite(v) or not ok(v):
        raise ValueError(f"sweep: {name}={v!r} is not allowed; {name} must be a finite"
                         f" number in {allowed}.")
    if len(set(values)) != len(values):
      raise ValueError(f"sweep: repeated {name} values in {values}.")
    out.append(np.asarray(values, np.float32))
  return out[0], out[1]


def _injected_ngm_sgd(config: TrainConfig, where: Any) -> Optimizer:
  """NGM-SGD with η and γ as values in its state (``inject_hyperparams``); with
  ``backbone_momentum``, the parameters off the placement get momentum SGD."""
  tx = optax.inject_hyperparams(ngm_sgd)(
      learning_rate=config.learning_rate, gamma=config.gamma, g0=config.g0, eta=config.eta)
  if config.backbone_momentum is not None:
    tx = partition_by_gain(
        tx, optax.sgd(config.learning_rate, momentum=config.backbone_momentum),
        lambda params: gain_mask(params, where))
  return Optimizer(tx, name="ngm_sgd")


def make_sweep(
    stream: TaskStream,
    config: TrainConfig,
    *,
    sampler: Sampler | None = None,
    **network_kwargs: Any,
) -> tuple[Callable[..., dict[str, jax.Array]], Any]:
  """``sweep_fn(etas, gammas, keys) -> curves``, pure; ``jax.jit`` it.

  Args:
    stream: the benchmark.
    config: the training config; its learning rate and g0 hold for every
      run, its η and γ only initialise the state before they are replaced.
    sampler: the training rows each step draws (default joint training).
    **network_kwargs: ``model``, ``where``, ``preprocess``, ``augment``
      (default: the benchmark's, :func:`ngm_jax.runner.network`).

  Returns:
    ``(sweep_fn, data)``: ``sweep_fn(etas, gammas, keys, data)`` of ``etas``
    float32 ``[E]`` (η), ``gammas`` float32 ``[G]`` (γ), PRNG ``keys`` ``[S]``
    and the stream's arrays on the device, returning the curves of
    :func:`ngm_jax.train.make_train` with leading axes ``[E, G, S]``; run
    ``(i, j, s)`` is NGM-SGD with ``η = etas[i]``, ``γ = gammas[j]``, seed key
    ``keys[s]``. With ``config.backbone_momentum`` set, the parameters off the
    gain placement get momentum SGD, as in the image benchmarks' NGM-SGD.
  """
  net, _ = network(stream, **network_kwargs)
  train, data = make_train(stream, _injected_ngm_sgd(config, net["where"]), config,
                           sampler=sampler, **net)

  def one(eta, gamma, key, data):
    return train(key, data, {"eta": eta, "gamma": gamma})

  over_seeds = jax.vmap(one, in_axes=(None, None, 0, None))
  over_gammas = jax.vmap(over_seeds, in_axes=(None, 0, None, None))
  return jax.vmap(over_gammas, in_axes=(0, None, None, None)), data


def sweep(
    stream: TaskStream,
    config: TrainConfig,
    etas: Sequence[float],
    gammas: Sequence[float],
    num_seeds: int,
    *,
    sampler: Sampler | None = None,
    devices: int | None = None,
    **network_kwargs: Any,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """Trains NGM-SGD on every (η, γ) and seed ``0..num_seeds-1``, as one program.

  The ``E·G·S`` runs are one axis, split over ``devices`` devices (default
  all; :mod:`ngm_jax.sharding`), η and γ set per run in the optimizer state.

  Args:
    stream, config, sampler, network_kwargs: see :func:`make_sweep`.
    etas: η values, ``>= 0``.
    gammas: γ values, in ``[0, 1)``.
    num_seeds: seeds; seed ``s`` uses ``jax.random.key(s)`` as everywhere.
    devices: how many devices the runs are split over (default: all).

  Returns:
    ``(curves, timings)``: NumPy curves ``[E, G, S, ...]`` (names as in
    :func:`ngm_jax.train.make_train`) and ``{"compile_s", "run_s",
    "wall_s", "chunks", ...}`` in seconds (``wall_s`` also counts building
    the program; see :func:`ngm_jax.execution.train_seeds`).

  Raises:
    ValueError: a bad grid (:func:`check_grid`) or fewer than one seed.
  """
  etas, gammas = check_grid(etas, gammas)
  if num_seeds < 1:
    raise ValueError(f"sweep: num_seeds={num_seeds!r}; need at least 1 seed.")
  t0 = time.perf_counter()
  net, _ = network(stream, **network_kwargs)
  parts = make_train_parts(stream, _injected_ngm_sgd(config, net["where"]), config,
                           sampler=sampler, **net)
  # The grid and the seeds are one axis of runs, sharded over every device.
  e, g, n = len(etas), len(gammas), num_seeds
  keys = jnp.tile(seed_keys(n), e * g)
  hyperparams = {"eta": np.repeat(etas, g * n), "gamma": np.tile(np.repeat(gammas, n), e)}
  curves, timing = train_seeds(parts, keys, hyperparams=hyperparams, mesh=run_mesh(devices))
  curves = {k: v.reshape((e, g, n) + v.shape[1:]) for k, v in curves.items()}
  wall = time.perf_counter() - t0
  return curves, {**timing, "wall_s": wall}


def separate_runs(
    stream: TaskStream,
    config: TrainConfig,
    settings: Sequence[tuple[float, float]],
    num_seeds: int,
    *,
    sampler: Sampler | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    **network_kwargs: Any,
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, float]]]:
  """Each ``(η, γ)`` of ``settings`` as its own compiled, seed-vmapped run.

  Every setting builds ``ngm_sgd`` with its η and γ (no injected
  hyperparameters), then :func:`ngm_jax.train.make_train_parts` and
  :func:`ngm_jax.train.train_seeds` (one scan, seeds vmapped): what one would
  do in a Python loop over the grid.

  Returns:
    ``(curves, timings)``, one entry per setting: curves ``[S, ...]``, and
    ``{"eta", "gamma", "compile_s", "run_s", "wall_s"}`` (``wall_s`` also
    counts building the run).
  """
  net, _ = network(stream, **network_kwargs)
  keys = seed_keys(num_seeds)
  all_curves, timings = [], []
  for i, (eta, gamma) in enumerate(settings):
    check_grid([eta], [gamma])
    t0 = time.perf_counter()
    run_config = dataclasses.replace(config, eta=float(eta), gamma=float(gamma))
    parts = make_train_parts(stream, "ngm_sgd", run_config, sampler=sampler, **net)
    curves, timing = train_seeds(parts, keys)
    timing = {"eta": float(eta), "gamma": float(gamma), **timing,
              "wall_s": time.perf_counter() - t0}
    all_curves.append(curves)
    timings.append(timing)
    if callback is not None:
      callback(i, timing)
  return all_curves, timings


def grid_metrics(
    task1_acc: Any,
    num_tasks: int,
    metrics: Sequence[str] = TABLE_METRICS,
) -> dict[str, dict[str, np.ndarray]]:
  """The paper's Task-1 metrics on a grid, mean ± standard error over seeds.

  Args:
    task1_acc: Task-1 accuracy curves ``[E, G, S, K·P]`` (fractions), e.g.
      ``curves["task1_acc"]`` of :func:`sweep`; any leading axes work, the
      seed axis is the second to last.
    num_tasks: K.
    metrics: names from :func:`ngm_jax.metrics.task1_metrics` with one value
      per run (default avg-ACC, avg-min-ACC, WC-ACC, avg-SG).

  Returns:
    ``{metric: {"per_seed": [E, G, S], "mean": [E, G], "stderr": [E, G]}}``
    as float64 fractions (NaN where undefined, e.g. the standard error of
    one seed).

  Raises:
    ValueError: an unknown metric name (the message lists the known ones).
  """
  values = task1_metrics(np.asarray(task1_acc, np.float64), num_tasks)
  known = [k for k, v in values.items() if v.ndim == np.ndim(task1_acc) - 1]
  unknown = [m for m in metrics if m not in known]
  if unknown:
    raise ValueError(f"grid_metrics: unknown metric(s) {unknown}; choose from"
                     f" {', '.join(known)}.")
  out = {}
  for name in metrics:
    mean, se = mean_and_stderr(values[name], axis=-1)
    out[name] = {"per_seed": values[name], "mean": mean, "stderr": se}
  return out
