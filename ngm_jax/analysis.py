"""Analyses of saved curves: the gain as a readout, the ablations, seed statistics.

Pure NumPy functions of the curves of :func:`ngm_jax.train.make_train`
(leading axis: seeds ``S``) and of the ``run.json`` records of
:func:`ngm_jax.experiment.run_benchmark`.

The gain ``g`` (unitless) is recorded after every optimizer step, ``[S, T]``
with ``T = K·I`` (``K`` tasks of ``I`` iterations). Task ``k`` (1-based)
covers iterations ``((k−1)·I, k·I]``.

- Time-averaged gain ``ḡ``: the mean of ``g`` over iterations (per seed) and
  over seeds; the constant gain of the ``g0_sgd`` ablation that matches NGM's
  average step size.
- Block gain ``ḡ_k``: the mean of ``g`` over task ``k``'s iterations (or over
  its later iterations only, leaving out the transient after the boundary),
  per seed, ``[S, K]``; its trend over ``k`` (a line fitted per seed, then
  mean ± ``t_{(1+level)/2, S−1}``·s.e. of the slopes) tests the gain as a
  readout of task complexity.
- Accuracy over the seen tasks: the mean of the per-task test accuracies of
  tasks ``1..k`` at each point of task ``k``.

Confidence intervals use :func:`student_t_quantile`, computed from the exact
Student-t distribution function for integer degrees of freedom (no SciPy).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from ngm_jax.metrics import TABLE_METRICS, mean_and_stderr, task_blocks
from ngm_jax.train import TrainConfig

__all__ = [
    "TimeAveragedGain",
    "time_averaged_gain",
    "gain_schedule",
    "block_mean_gain",
    "seen_tasks_accuracy",
    "failed_seeds",
    "failed_seeds_note",
    "student_t_quantile",
    "confidence_interval",
    "linear_fit",
    "gain_trend",
    "paired_difference",
    "benchmark_kind",
    "ABLATIONS",
    "ABLATION_COMPARISONS",
    "ablation_variants",
    "run_variants",
    "find_reusable",
    "ablation_table",
    "comparison_table",
    "gain_trend_table",
]


# ----------------------------------------------------------------------------
# The gain


class TimeAveragedGain(NamedTuple):
  """The time-averaged gain ``ḡ`` of a gain curve ``[S, T]``.

  Attributes:
    mean: ``ḡ``, the mean over iterations and seeds (unitless float).
    per_seed: ``[S]`` the mean over iterations of each seed.
    stderr: the standard error of ``per_seed`` over seeds (NaN for one seed).
  """

  mean: float
  per_seed: np.ndarray
  stderr: float


def _gain_curve(gain: Any) -> np.ndarray:
  gain = np.asarray(gain, dtype=np.float64)
  if gain.ndim != 2 or gain.shape[0] < 1 or gain.shape[1] < 1:
    raise ValueError(
        f"A gain curve must be [seeds, iterations] with at least one of each;"
        f" got shape {gain.shape}."
    )
  if not np.all(np.isfinite(gain)):
    raise ValueError("The gain curve holds non-finite values.")
  return gain


def time_averaged_gain(gain: Any) -> TimeAveragedGain:
  """``ḡ``: the gain averaged over iterations and seeds, and per seed.

  Every seed has the same ``T`` iterations, so ``ḡ`` is also the mean of the
  per-seed means.

  Args:
    gain: ``[S, T]`` the gain after every iteration (unitless).

  Returns:
    A :class:`TimeAveragedGain`.

  Raises:
    ValueError: ``gain`` is not a finite ``[S, T]`` array.
  """
  gain = _gain_curve(gain)
  per_seed = gain.mean(axis=1)
  _, se = mean_and_stderr(per_seed)
  return TimeAveragedGain(float(gain.mean()), per_seed, float(se))


def gain_schedule(gain: Any, g0: float) -> np.ndarray:
  """The gain each step of a run *used*, from the gain recorded after each.

  A training curve records the gain after every step's update (the gain the
  next step trains with); step 0 trains with the initial gain ``g0``. This
  is the schedule that :func:`ngm_jax.gain.replayed_gain_sgd` replays.

  Args:
    gain: ``[S, T]`` the gain after every iteration (unitless).
    g0: the initial gain (NGM's resting gain), ``> 0``.

  Returns:
    ``[S, T]`` float32: ``[g0, gain[:, 0], ..., gain[:, T−2]]`` per seed.

  Raises:
    ValueError: ``gain`` is not a finite ``[S, T]`` array, or ``g0`` is not
      a finite positive number.
  """
  gain = _gain_curve(gain)
  if not (math.isfinite(g0) and g0 > 0):
    raise ValueError(f"gain_schedule: g0={g0!r} must be a finite number > 0.")
  first = np.full((gain.shape[0], 1), g0)
  return np.concatenate([first, gain[:, :-1]], axis=1).astype(np.float32)


def block_mean_gain(gain: Any, num_tasks: int, skip: int = 0) -> np.ndarray:
  """``ḡ_k``: the mean gain over each task's block of iterations, per seed.

  Args:
    gain: ``[S, T]`` the gain after every iteration, ``T = K·I``.
    num_tasks: K.
    skip: leave out the first ``skip`` iterations of every block (``0 <= skip
      < I``), e.g. ``I // 2`` to read the settled gain without the transient
      after each boundary (and, in block 1, the learning from scratch).

  Returns:
    ``[S, K]``; entry ``[s, k−1]`` is seed ``s``'s mean gain over iterations
    ``((k−1)·I + skip, k·I]``.

  Raises:
    ValueError: a bad gain curve, ``T`` not a multiple of ``K``, or a bad
      ``skip``.
  """
  if num_tasks < 1:
    raise ValueError(f"num_tasks={num_tasks}: must be >= 1.")
  blocks = task_blocks(_gain_curve(gain), num_tasks)
  if not (isinstance(skip, (int, np.integer)) and 0 <= skip < blocks.shape[-1]):
    raise ValueError(f"skip={skip!r}: must be an integer in [0, {blocks.shape[-1]}), the"
                     " iterations per task.")
  return blocks[..., skip:].mean(axis=-1)


def seen_tasks_accuracy(
    task_acc: Any, iterations: Any, iterations_per_task: int
) -> np.ndarray:
  """Accuracy over all tasks seen so far, at each per-task evaluation point.

  At iteration ``t`` the tasks seen are ``1..k`` with ``k = ⌈t / I⌉`` (so at
  ``t = k·I``, the end of task ``k``, they are ``1..k``).

  Args:
    task_acc: ``[..., P, K]`` test accuracy of each task (fraction).
    iterations: ``[P]`` the iteration (1-based) of each point.
    iterations_per_task: I.

  Returns:
    ``[..., P]`` the mean accuracy over tasks ``1..k`` at each point.

  Raises:
    ValueError: shapes that do not match, ``I < 1``, or an iteration < 1.
  """
  task_acc = np.asarray(task_acc, dtype=np.float64)
  iterations = np.asarray(iterations)
  if iterations_per_task < 1:
    raise ValueError(f"iterations_per_task={iterations_per_task}: must be >= 1.")
  if task_acc.ndim < 2 or iterations.shape != task_acc.shape[-2:-1]:
    raise ValueError(
        f"task_acc {task_acc.shape} must be [..., P, K] with P ="
        f" len(iterations) = {iterations.shape}."
    )
  if iterations.size and iterations.min() < 1:
    raise ValueError(f"iterations start at 1; got {iterations.min()}.")
  k = task_acc.shape[-1]
  seen = np.clip(-(-iterations // iterations_per_task), 1, k)  # ⌈t / I⌉
  mask = np.arange(k)[None, :] < seen[:, None]  # [P, K]
  return (task_acc * mask).sum(axis=-1) / seen


def failed_seeds(
    curves: Mapping[str, Any], num_classes: int | None = None, tail: float = 0.1
) -> np.ndarray:
  """Which seeds' training failed: diverged, or collapsed to guessing.

  A seed failed when its training loss became non-finite (diverged), or,
  given ``num_classes`` C, when its mean training loss over the last ``tail``
  of the iterations is at least ``0.99·ln C`` nats, no better than a uniform
  guess (collapsed). A failed seed's Task-1 accuracy is flat, so its SG_k is
  ~0 and its stability-gap metrics do not measure a gap.

  Args:
    curves: one variant's curves, with ``train_loss`` ``[S, T]``.
    num_classes: C, the output classes (None: only divergence is checked).
    tail: fraction of the iterations at the end, in ``(0, 1]``.

  Returns:
    ``[S]`` bool, True for a failed seed.
  """
  if not 0.0 < tail <= 1.0:
    raise ValueError(f"failed_seeds: tail={tail!r} must be in (0, 1].")
  loss = np.asarray(curves["train_loss"], np.float64)
  if loss.ndim != 2:
    raise ValueError(f"failed_seeds: train_loss must be [S, T]; got shape {loss.shape}.")
  failed = ~np.all(np.isfinite(loss), axis=1)
  if num_classes is not None:
    last = loss[:, -max(1, int(round(tail * loss.shape[1]))):]
    with np.errstate(invalid="ignore"):
      failed |= last.mean(axis=1) >= 0.99 * math.log(num_classes)
  return failed


def failed_seeds_note(failed: Mapping[str, Any], num_classes: int | None) -> str | None:
  """One line for a table's notes on what :func:`failed_seeds` found.

  Args:
    failed: ``{label: [S] bool}`` from :func:`failed_seeds`.
    num_classes: the C it was given (None: only divergence was checked).

  Returns:
    The definition of a failed seed and how the table treats them when any
    seed failed; when none did and collapse was not checked, a line saying
    so; else None.
  """
  if any(np.any(bad) for bad in failed.values()):
    collapse = (f", or over the last 10% of iterations no lower than 0.99·ln {num_classes}"
                " nats (no better than a uniform guess: collapsed)" if num_classes else "")
    return (f"Failed seeds: training loss non-finite (diverged){collapse}. A failed seed's"
            " Task-1 accuracy is flat, so its SG is ~0: averages that include it do not measure"
            " a gap. Rows marked ↳ use only the seeds that did not fail; the figures leave out"
            " diverged seeds and count failed ones in their legends.")
  if num_classes is None:
    return ("No seed diverged (this run.json predates num_classes, so collapse to a"
            " uniform guess was not checked).")
  return None


# ----------------------------------------------------------------------------
# Statistics over seeds


def _t_cdf(t: float, df: int) -> float:
  """P(T <= t) for Student's t with integer ``df`` (A&S 26.7.3, 26.7.4)."""
  if t < 0:
    return 1.0 - _t_cdf(-t, df)
  theta = math.atan(t / math.sqrt(df))
  c2 = math.cos(theta) ** 2
  if df % 2:  # odd: A = (2/π)(θ + sinθ·(cosθ + (2/3)cos³θ + ...))
    j = np.arange(1, (df - 1) // 2)  # ratios 2j/(2j+1) between terms
    terms = math.cos(theta) * np.cumprod(np.r_[1.0, 2 * j / (2 * j + 1) * c2])
    inner = terms.sum() if df > 1 else 0.0
    a = 2.0 / math.pi * (theta + math.sin(theta) * inner)
  else:  # even: A = sinθ·(1 + (1/2)cos²θ + (1·3)/(2·4)cos⁴θ + ...)
    j = np.arange(1, df // 2)
    terms = np.cumprod(np.r_[1.0, (2 * j - 1) / (2 * j) * c2])
    a = math.sin(theta) * terms.sum()
  return 0.5 + 0.5 * min(a, 1.0)


def student_t_quantile(p: float, df: int) -> float:
  """The ``p`` quantile of Student's t distribution with ``df`` degrees of freedom.

  Inverts the exact distribution function for integer ``df`` (Abramowitz and
  Stegun 26.7.3-4) by bisection to ~1e-12; e.g. ``t_{0.975, 4} = 2.7764``.

  Args:
    p: probability in ``(0, 1)``.
    df: degrees of freedom, an integer ``>= 1`` (``S − 1`` for ``S`` seeds).

  Raises:
    ValueError: ``p`` outside ``(0, 1)`` or ``df`` not an integer ``>= 1``.
  """
  if not (isinstance(df, (int, np.integer)) and df >= 1):
    raise ValueError(f"student_t_quantile: df={df!r} must be an integer >= 1.")
  if not 0.0 < p < 1.0:
    raise ValueError(f"student_t_quantile: p={p!r} must be in (0, 1).")
  df = int(df)
  if p < 0.5:
    return -student_t_quantile(1.0 - p, df)
  if p == 0.5:
    return 0.0
  lo, hi = 0.0, 1.0
  while _t_cdf(hi, df) < p:
    lo, hi = hi, 2.0 * hi
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    if _t_cdf(mid, df) < p:
      lo = mid
    else:
      hi = mid
    if hi - lo <= 1e-13 * hi:
      break
  return 0.5 * (lo + hi)


def confidence_interval(values: Any, level: float = 0.95) -> dict[str, float]:
  """Mean of per-seed values with a Student-t confidence interval.

  ``mean ± t_{(1+level)/2, S−1} · s.e.``, with ``s.e. = std(ddof=1) / √S``.

  Args:
    values: ``[S]`` one value per seed.
    level: coverage in ``(0, 1)``, default 0.95.

  Returns:
    ``{"mean", "stderr", "t", "half_width", "low", "high", "n"}`` as Python
    floats (``n`` an int); with one seed every value but ``mean`` and ``n``
    is NaN.

  Raises:
    ValueError: ``values`` is not a non-empty 1-D array, or a bad ``level``.
  """
  values = np.asarray(values, dtype=np.float64)
  if values.ndim != 1 or values.size < 1:
    raise ValueError(f"confidence_interval: need a non-empty [S] array; got shape {values.shape}.")
  if not 0.0 < level < 1.0:
    raise ValueError(f"confidence_interval: level={level!r} must be in (0, 1).")
  mean, se = mean_and_stderr(values)
  n = values.size
  t = student_t_quantile(0.5 + level / 2, n - 1) if n > 1 else math.nan
  half = t * float(se)
  return {"mean": float(mean), "stderr": float(se), "t": t, "half_width": half,
          "low": float(mean) - half, "high": float(mean) + half, "n": n}


def linear_fit(y: Any, x: Any = None) -> tuple[np.ndarray, np.ndarray]:
  """Least-squares line ``y ≈ intercept + slope·x`` along the last axis.

  Args:
    y: ``[..., K]``.
    x: ``[K]`` (default ``1..K``, e.g. the task index).

  Returns:
    ``(slope, intercept)``, each ``[...]``.

  Raises:
    ValueError: fewer than two points, or ``x`` of the wrong length or constant.
  """
  y = np.asarray(y, dtype=np.float64)
  k = y.shape[-1] if y.ndim else 0
  x = np.arange(1, k + 1, dtype=np.float64) if x is None else np.asarray(x, np.float64)
  if k < 2 or x.shape != (k,):
    raise ValueError(f"linear_fit: need y [..., K] with K >= 2 and x [K]; got y {y.shape},"
                     f" x {x.shape}.")
  dx = x - x.mean()
  if not np.any(dx):
    raise ValueError("linear_fit: x is constant; the slope is undefined.")
  slope = (y - y.mean(axis=-1, keepdims=True)) @ dx / (dx @ dx)
  return slope, y.mean(axis=-1) - slope * x.mean()


def gain_trend(gain: Any, num_tasks: int, level: float = 0.95, skip: int = 0
               ) -> dict[str, Any]:
  """The block gain ``ḡ_k`` against the task index ``k``, with the fitted slope.

  A line ``ḡ_k ≈ a + b·k`` (``k = 1..K``) is fitted to each seed; the slope
  ``b`` (gain per task) is reported as mean ± ``t_{(1+level)/2, S−1}``·s.e.
  over seeds.

  Args:
    gain: ``[S, T]`` the gain after every iteration.
    num_tasks: K >= 2.
    level: confidence level of the slope's interval.
    skip: iterations left out at the start of every block
      (:func:`block_mean_gain`).

  Returns:
    ``block_gain`` ``[S, K]``; ``block_mean``, ``block_stderr`` ``[K]``;
    ``slope_per_seed``, ``intercept_per_seed`` ``[S]``; ``slope`` (the dict
    of :func:`confidence_interval`); ``intercept`` (mean over seeds);
    ``time_averaged`` (ḡ over every iteration), ``level`` and ``skip``.
    Arrays are NumPy arrays.

  Raises:
    ValueError: fewer than 2 tasks, or a bad gain curve.
  """
  if num_tasks < 2:
    raise ValueError(f"gain_trend: num_tasks={num_tasks}; a slope needs at least 2 tasks.")
  blocks = block_mean_gain(gain, num_tasks, skip)
  slope, intercept = linear_fit(blocks)
  mean, se = mean_and_stderr(blocks)
  return {
      "block_gain": blocks,
      "block_mean": mean,
      "block_stderr": se,
      "slope_per_seed": slope,
      "intercept_per_seed": intercept,
      "slope": confidence_interval(slope, level),
      "intercept": float(intercept.mean()),
      "time_averaged": time_averaged_gain(gain).mean,
      "level": level,
      "skip": skip,
  }


def paired_difference(a: Any, b: Any, level: float = 0.95) -> dict[str, float]:
  """``a − b`` seed by seed (same seeds), with the :func:`confidence_interval`
  of the mean difference.

  Args:
    a, b: ``[S]`` a metric per seed for two variants trained on the same
      seeds.
    level: confidence level.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired_difference: shapes {a.shape} and {b.shape} differ.")
  return confidence_interval(a - b, level)


def benchmark_kind(name: str) -> str:
  """``"class-incremental"`` (``split_*``) or ``"domain-incremental"``
  (``rotated_*``, ``domain_*``).

  Raises:
    ValueError: a name with none of these prefixes.
  """
  if name.startswith("split_"):
    return "class-incremental"
  if name.startswith(("rotated_", "domain_")):
    return "domain-incremental"
  raise ValueError(
      f"benchmark {name!r}: cannot tell its kind; names start with split_"
      " (class-incremental) or rotated_/domain_ (domain-incremental)."
  )


# ----------------------------------------------------------------------------
# Ablations


class _Ablation(NamedTuple):
  optimizer: str
  name: str  # for tables and legends
  tests: str  # what the variant isolates


#: The ablation variants by label, in table order. ``g0_sgd_mean`` holds the
#: gain at NGM-SGD's time-averaged gain ``ḡ`` (see :func:`ablation_variants`).
ABLATIONS: dict[str, _Ablation] = {
    "ngm_sgd": _Ablation("ngm_sgd", "NGM-SGD", "the full mechanism"),
    "g0_sgd_1": _Ablation("g0_sgd", "constant gain g0 = 1", "no gain dynamics, resting gain"),
    "g0_sgd_mean": _Ablation("g0_sgd", "constant gain g0 = ḡ",
                             "no gain dynamics, NGM's average gain"),
    "entropy_lr_sgd": _Ablation("entropy_lr_sgd", "entropy-driven lr (lr·g²)",
                                "NGM's step-size rule without W_eff = g·W"),
    "replayed_lr_sgd": _Ablation("replayed_lr_sgd", "NGM's lr·g² replayed",
                                 "NGM's exact step sizes without W_eff = g·W"),
    "sgd": _Ablation("sgd", "SGD", "baseline"),
    "msgd": _Ablation("msgd", "MSGD", "baseline"),
    "msgd_reset": _Ablation("msgd_reset", "MSGD + reset (oracle)",
                            "momentum reset at task boundaries (uses task identity)"),
    "ngm_msgd": _Ablation("ngm_msgd", "NGM-MSGD", "the gain on top of momentum"),
    "adam": _Ablation("adam", "Adam", "baseline"),
    "adam_reset": _Ablation("adam_reset", "Adam + reset (oracle)",
                            "Adam state reset at task boundaries (uses task identity)"),
    "ngm_adam": _Ablation("ngm_adam", "NGM-Adam", "the gain on top of Adam"),
}

#: Paired comparisons ``(a, b, question)``: the metric of ``a`` minus that of ``b``.
ABLATION_COMPARISONS = (
    ("ngm_sgd", "g0_sgd_mean", "gain dynamics vs the same average gain held constant"),
    ("ngm_sgd", "g0_sgd_1", "NGM vs constant resting gain"),
    ("entropy_lr_sgd", "sgd", "entropy-driven step size alone vs SGD"),
    ("ngm_sgd", "entropy_lr_sgd", "W_eff = g·W on top of the same step-size rule"),
    ("replayed_lr_sgd", "sgd", "NGM's own step sizes alone vs SGD"),
    ("ngm_sgd", "replayed_lr_sgd", "W_eff = g·W on top of NGM's own step sizes"),
    ("ngm_msgd", "msgd", "gain on top of momentum"),
    ("msgd_reset", "msgd", "oracle momentum reset"),
    ("ngm_adam", "adam", "gain on top of Adam"),
    ("adam_reset", "adam", "oracle Adam reset"),
)


def ablation_variants(
    train_config: TrainConfig,
    mean_gain: float | None = None,
    labels: Sequence[str] | None = None,
) -> dict[str, tuple[str, TrainConfig]]:
  """``{label: (optimizer, config)}`` of the ablations, for ``run_benchmark``.

  Every variant uses ``train_config``; ``g0_sgd_1`` sets ``const_gain = 1``
  and ``g0_sgd_mean`` sets ``const_gain = mean_gain`` (``ḡ``).
  ``replayed_lr_sgd`` also needs each seed's NGM gain schedule
  (:func:`gain_schedule`), passed to ``run_benchmark`` as
  ``seed_hyperparams={"replayed_lr_sgd": {"schedule": ...}}``.

  Args:
    train_config: the benchmark's training config.
    mean_gain: ``ḡ``, needed when ``g0_sgd_mean`` is among ``labels``.
    labels: which of :data:`ABLATIONS` (default all), kept in
      :data:`ABLATIONS`' order.

  Raises:
    ValueError: an unknown label, or ``g0_sgd_mean`` without a positive
      finite ``mean_gain``.
  """
  labels = list(ABLATIONS) if labels is None else list(labels)
  unknown = [l for l in labels if l not in ABLATIONS]
  if unknown:
    raise ValueError(f"Unknown ablation variant(s) {', '.join(map(repr, unknown))};"
                     f" choose from {', '.join(ABLATIONS)}.")
  out = {}
  for label in ABLATIONS:
    if label not in labels:
      continue
    config = train_config
    if label == "g0_sgd_1":
      config = dataclasses.replace(train_config, const_gain=1.0)
    elif label == "g0_sgd_mean":
      if mean_gain is None or not (math.isfinite(mean_gain) and mean_gain > 0):
        raise ValueError("g0_sgd_mean needs NGM-SGD's time-averaged gain; got"
                         f" mean_gain={mean_gain!r}.")
      config = dataclasses.replace(train_config, const_gain=float(mean_gain))
    out[label] = (ABLATIONS[label].optimizer, config)
  return out


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


def _cell(entry: Mapping[str, Any]) -> str:
  mean, se = entry["mean"], entry["stderr"]
  if mean is None:
    return "n/a"
  return f"{100 * mean:.2f} ± {'n/a' if se is None else f'{100 * se:.2f}'}"


_COLUMN_NAMES = {"avg_acc": "avg-ACC (%)", "avg_min_acc": "avg-min-ACC (%)",
                 "wc_acc": "WC-ACC (%)", "avg_sg": "avg-SG (%)"}


def ablation_table(
    metrics: Mapping[str, Mapping[str, Any]],
    sources: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
    failed: Mapping[str, Any] | None = None,
    without_failed: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
  """Markdown: one row per variant, the paper's Task-1 metrics as mean ± s.e.

  Args:
    metrics: ``{label: metrics}`` from :func:`ngm_jax.results.compute_metrics`.
    sources: ``{label: where its curves come from}`` (a last column).
    names: display names (default :data:`ABLATIONS`' names, else the label).
    failed: ``{label: [S] bool}`` from :func:`failed_seeds`; adds a column
      counting them.
    without_failed: ``{label: metrics}`` over a variant's seeds that did not
      fail; each adds a row under its variant's.
  """
  names, failed, without_failed = names or {}, failed or {}, without_failed or {}
  head = ("| variant | optimizer | tests | "
          + " | ".join(_COLUMN_NAMES[c] for c in TABLE_METRICS)
          + (" | failed seeds" if failed else "") + (" | curves |" if sources else " |"))
  rule = ("|---|---|---|" + "---:|" * len(TABLE_METRICS) + ("---:|" if failed else "")
          + ("---|" if sources else ""))
  rows = []
  for label, m in metrics.items():
    info = ABLATIONS.get(label)
    name = names.get(label, info.name if info else label)
    cells = [name, f"`{info.optimizer if info else label}`", info.tests if info else ""]
    cells += [_cell(m[c]) for c in TABLE_METRICS]
    bad = np.asarray(failed.get(label, []), bool)
    if failed:
      cells.append(f"{int(bad.sum())}/{bad.size}" if bad.size else "")
    if sources:
      cells.append(sources.get(label, ""))
    rows.append("| " + " | ".join(cells) + " |")
    if label in without_failed:
      cells = [f"↳ {name}, the {int((~bad).sum())} seeds that did not fail", "", ""]
      cells += [_cell(without_failed[label][c]) for c in TABLE_METRICS]
      cells += ["0"] * bool(failed) + [""] * bool(sources)
      rows.append("| " + " | ".join(cells) + " |")
  return "\n".join([head, rule, *rows]) + "\n"


def comparison_table(
    metrics: Mapping[str, Mapping[str, Any]],
    comparisons: Sequence[tuple[str, str, str]] = ABLATION_COMPARISONS,
    level: float = 0.95,
    names: Mapping[str, str] | None = None,
    failed: Mapping[str, Any] | None = None,
) -> str:
  """Markdown: paired differences ``a − b`` of each Task-1 metric (percentage
  points), mean [``level`` CI] over seeds; comparisons with a variant missing
  from ``metrics`` are left out.

  Args:
    metrics: ``{label: metrics}`` with ``per_seed`` values on the same seeds.
    comparisons: ``(a, b, question)`` triples.
    level: confidence level.
    names: display names (default :data:`ABLATIONS`' names).
    failed: ``{label: [S] bool}`` (:func:`failed_seeds`): a seed where either
      variant failed is left out of that comparison; a column gives the
      seeds used.
  """
  names, failed = names or {}, failed or {}
  name = lambda l: names.get(l, ABLATIONS[l].name if l in ABLATIONS else l)
  pct = int(round(100 * level))
  head = ("| a − b | question | seeds | "
          + " | ".join(f"Δ{_COLUMN_NAMES[c][:-4]} (pp) [{pct}% CI]" for c in TABLE_METRICS) + " |")
  rows = [head, "|---|---|---:|" + "---:|" * len(TABLE_METRICS)]
  for a, b, question in comparisons:
    if a not in metrics or b not in metrics:
      continue
    n_all = len(metrics[a][TABLE_METRICS[0]]["per_seed"])
    keep = np.ones(n_all, bool)
    for label in (a, b):
      if label in failed:
        keep &= ~np.asarray(failed[label], bool)
    cells = []
    for c in TABLE_METRICS:
      if not keep.any():
        cells.append("n/a")
        continue
      per_a = np.asarray(metrics[a][c]["per_seed"], np.float64)[keep]
      per_b = np.asarray(metrics[b][c]["per_seed"], np.float64)[keep]
      ci = paired_difference(per_a, per_b, level)
      if math.isnan(ci["half_width"]):
        cells.append(f"{100 * ci['mean']:+.2f}")
      else:
        cells.append(f"{100 * ci['mean']:+.2f} [{100 * ci['low']:+.2f}, {100 * ci['high']:+.2f}]")
    rows.append(f"| {name(a)} − {name(b)} | {question} | {int(keep.sum())}/{n_all} | "
                + " | ".join(cells) + " |")
  return "\n".join(rows) + "\n"


def gain_trend_table(entries: Sequence[Mapping[str, Any]]) -> str:
  """Markdown: per run and readout, the mean block gain of each task and the
  fitted slope.

  Args:
    entries: dicts with ``benchmark``, ``kind``, ``optimizer``, ``seeds`` (S),
      ``num_tasks`` (K), ``iterations_per_task`` (I), ``eta`` (η) and a
      :func:`gain_trend` result under ``trend``; a row per entry, whose
      readout is the whole block, or the block after its first ``skip``
      iterations.
  """
  head = ("| benchmark | kind | optimizer | η | K × I | seeds | readout | mean block gain"
          " ḡ_k, k = 1..K (± s.e.) | slope (gain/task) | CI of the slope | ḡ |")
  rows = [head, "|---|---|---|---:|---:|---:|---|---|---:|---|---:|"]
  for e in entries:
    tr = e["trend"]
    blocks = ", ".join(f"{m:.3f} ± {s:.3f}" if math.isfinite(s) else f"{m:.3f}"
                       for m, s in zip(tr["block_mean"], tr["block_stderr"]))
    s = tr["slope"]
    pct = int(round(100 * tr["level"]))
    ci = ("n/a (1 seed)" if math.isnan(s["half_width"])
          else f"± {s['half_width']:.4f} ({pct}%: [{s['low']:+.4f}, {s['high']:+.4f}])")
    skip = tr.get("skip", 0)
    readout = ("whole block" if not skip
               else f"iterations {skip + 1}..{e['iterations_per_task']} of each block")
    rows.append(f"| {e['benchmark']} | {e['kind']} | `{e['optimizer']}` | {e['eta']:g} |"
                f" {e['num_tasks']} × {e['iterations_per_task']} | {e['seeds']} | {readout} |"
                f" {blocks} | {s['mean']:+.4f} | {ci} | {tr['time_averaged']:.3f} |")
  return "\n".join(rows) + "\n"
