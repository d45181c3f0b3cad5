"""Tuning every method at the same budget, on validation data, then testing it.

:func:`tune` gives each method exactly ``budget`` configurations of its search
space (:mod:`ngm_jax.search`) and trains them, ``search_seeds`` seeds each, on
a validation split carved from each task's training data
(:mod:`ngm_jax.validation`). A method's whole search is one
:func:`ngm_jax.runner.run_benchmark` variant: configurations × seeds on the
runs axis, each run's hyperparameters set in its optimizer state
(``optax.inject_hyperparams``), sharded and chunked like any run. The
configuration with the best validation objective (mean over the search
seeds) is selected, then trained again with fresh seeds on the full
training data and evaluated on the test set. The search never sees a test
row: the search stream does not hold one.

Files in ``out``: ``tuning.json`` (budget, objective, the validation split,
and per method its space, every trial's hyperparameters and validation
metrics, the selected configuration), ``search/<label>/`` (each search's
run), and the final run's ``run.json``, ``curves.npz``, ``metrics.json``,
``table.md``, figures.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from ngm_jax import benchmarks, checks, results
from ngm_jax.metrics import de_lange_metrics, task1_metrics
from ngm_jax.placement import Placement, gain_mask
from ngm_jax.runner import run_benchmark
from ngm_jax.variants import network
from ngm_jax.search import Tunable, builtin_tunable, configurations
from ngm_jax.streams import TaskStream
from ngm_jax.train import TrainConfig
from ngm_jax.validation import validation_split

__all__ = ["OBJECTIVES", "tune", "trial_metrics", "select", "tuning_table",
           "write_tuning_report"]

#: Objective name → True if larger is better. Computed on the validation
#: curves: ``wc_acc_all``, De Lange et al.'s worst-case accuracy at the end of
#: the stream over every task (the last task's final accuracy / K + (1 − 1/K)
#: × the old tasks' mean minimum after each was learned, on the per-task
#: evaluation grid: :func:`ngm_jax.metrics.de_lange_metrics`); the Task-1
#: metrics of :func:`ngm_jax.metrics.task1_metrics` (``wc_acc``, ``avg_acc``,
#: ``avg_min_acc``, ``avg_sg``); and the final accuracy over all tasks
#: (``final_acc``).
#:
#: The default is ``wc_acc_all``. The Task-1 ``wc_acc`` alone rewards a
#: configuration that keeps Task 1 by never learning the later tasks: on
#: Split MNIST's validation split it picked SGD at learning rate 5e-4, whose
#: final accuracy over all tasks was 22 % (docs/comparison.md).
OBJECTIVES = {"wc_acc_all": True, "wc_acc": True, "avg_acc": True, "avg_min_acc": True,
              "avg_sg": False, "final_acc": True}
#: The first seed of the final runs: fresh seeds, never used by a search.
FINAL_SEED_START = 1000


def trial_metrics(curves: Mapping[str, np.ndarray], num_tasks: int, budget: int,
                  search_seeds: int, iterations_per_task: int) -> dict[str, np.ndarray]:
  """Validation metrics of every run of a search → ``{metric: [budget, seeds]}``.

  Args:
    curves: the search's curves, runs ordered configuration-major
      (``run = c·search_seeds + s``): ``task1_acc`` ``[R, P]``, ``task_acc``
      ``[R, P_all, K]``, ``diverged_at`` ``[R]``.
    num_tasks: K.
    budget, search_seeds: ``R = budget · search_seeds``.
    iterations_per_task: I (the per-task points are evenly spaced over ``K·I``).

  Returns:
    Fractions; a diverged run's metrics are NaN (the run counts as failed).
  """
  task1 = np.asarray(curves["task1_acc"], np.float64)
  values = task1_metrics(task1, num_tasks)
  out = {name: values[name] for name in OBJECTIVES if name in values}
  task_acc = np.asarray(curves["task_acc"], np.float64)
  out["final_acc"] = task_acc[:, -1, :].mean(-1)
  points = task_acc.shape[1]
  every = iterations_per_task * num_tasks // points
  out["wc_acc_all"] = de_lange_metrics(task_acc, every * np.arange(1, points + 1),
                                       iterations_per_task)["wc_acc"]
  diverged = np.asarray(curves.get("diverged_at", np.full(len(task1), -1))) >= 0
  shape = (budget, search_seeds)
  return {k: np.where(diverged, np.nan, v).reshape(shape) for k, v in out.items()}


def select(per_trial: Mapping[str, np.ndarray], objective: str) -> int:
  """The index of the best trial by ``objective``'s mean over seeds; a trial
  with a NaN seed (diverged, or the metric undefined) ranks last; ties are
  broken by the final accuracy over all tasks, then by order."""
  def score(name):
    mean = np.asarray(per_trial[name], np.float64).mean(axis=1)
    return np.where(np.isfinite(mean), mean if OBJECTIVES[name] else -mean, -np.inf)

  primary, secondary = score(objective), score("final_acc")
  best = np.flatnonzero(primary == primary.max())
  return int(best[np.argmax(secondary[best])])


def _mean_json(values: np.ndarray) -> dict[str, Any]:
  """``{metric: {"mean", "per_seed"}}`` of one trial, JSON-ready."""
  finite = lambda x: None if not np.isfinite(x) else float(x)
  return {"mean": finite(np.mean(values)), "per_seed": [finite(v) for v in values]}


def _resolve(optimizers: Sequence[Any] | Mapping[str, Any], config: TrainConfig,
             mask: Callable[[Any], Any]) -> dict[str, Tunable]:
  if isinstance(optimizers, (str, bytes)) or not isinstance(optimizers, (Sequence, Mapping)):
    raise TypeError(f"optimizers={optimizers!r}: give built-in names or {{label: name or"
                    " ngm_jax.search.Tunable}.")
  if not isinstance(optimizers, Mapping):
    optimizers = {name: name for name in optimizers}
  if not optimizers:
    raise ValueError("optimizers is empty; give at least one.")
  out = {}
  for label, value in optimizers.items():
    if isinstance(value, str):
      value = builtin_tunable(value, config, mask)
    if not isinstance(value, Tunable):
      raise TypeError(f"optimizers[{label!r}]={value!r}: expected a built-in name or an"
                      " ngm_jax.search.Tunable (a factory with its search space).")
    out[label] = value
  return out


def tune(
    stream: TaskStream,
    optimizers: Sequence[Any] | Mapping[str, Any],
    config: TrainConfig | None = None,
    *,
    budget: int,
    search_seeds: int = 3,
    num_seeds: int = 5,
    objective: str = "wc_acc_all",
    validation_fraction: float = 0.1,
    validation_seed: int = 0,
    sample_seed: int = 0,
    search_config: TrainConfig | None = None,
    model: Any = None,
    where: Placement | None = None,
    preprocess: Callable[[jax.Array], jax.Array] | None = None,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    show_progress: bool = True,
    **run_kwargs: Any,
) -> tuple[dict[str, Any], results.Result]:
  """Tunes every method at the same budget on validation data, then tests it.

  Args:
    stream: the benchmark (its test set is read only by the final runs).
    optimizers: built-in names (:data:`ngm_jax.search.TUNABLE_NAMES`), or
      ``{label: name or ngm_jax.search.Tunable}`` (a user's factory with its
      search space).
    config: the schedule and the values a method does not tune (default: the
      registered benchmark's config).
    budget: configurations per method, the same for every method.
    search_seeds: seeds per configuration in the search (seeds
      ``0..search_seeds-1``, the same for every configuration).
    num_seeds: fresh seeds of the final runs (``1000, 1001, ...``).
    objective: what selection maximises on validation (:data:`OBJECTIVES`;
      ``avg_sg`` is minimised): default WC-ACC over all tasks.
    validation_fraction, validation_seed: the validation split
      (:func:`ngm_jax.validation.validation_split`).
    sample_seed: seeds the quasi-random sample of multi-dimensional spaces.
    search_config: the search's schedule, if it should differ from
      ``config`` (e.g. a coarser evaluation); default ``config``.
    model, where, preprocess, augment: the network (default the benchmark's).
    out: None, or the folder of ``tuning.json``, ``search/<label>/`` and the
      final run's files.
    overwrite: replace a tuning in ``out`` (written into ``<out>.partial``,
      swapped in when finished).
    resume: continue a stopped tuning in ``out``: finished searches are read
      back, a stopped one continues from its checkpoint, as
      :func:`ngm_jax.runner.run_benchmark` does.
    show_progress: progress bars and one line per search.
    **run_kwargs: passed to every :func:`ngm_jax.runner.run_benchmark` call
      (``devices``, ``loop``, ``seed_axis``, ``checkpoint_every_s``, ``sampler``,
      ``log``: each search and the final runs log into their own folders).

  Returns:
    ``(tuning, result)``: the ``tuning.json`` record and the final runs'
    :class:`ngm_jax.results.Result` (labels as given).

  Raises:
    TypeError, ValueError: bad arguments, before anything is trained.
  """
  for what, value in (("budget", budget), ("search_seeds", search_seeds),
                      ("num_seeds", num_seeds)):
    checks.check_integer(what, value, 1)
  budget, search_seeds, num_seeds = int(budget), int(search_seeds), int(num_seeds)
  if objective not in OBJECTIVES:
    raise ValueError(f"objective={objective!r}; choose from {', '.join(OBJECTIVES)}.")
  if resume and overwrite:
    raise ValueError("resume=True and overwrite=True: choose one.")
  if config is None:
    if stream.name not in benchmarks.BENCHMARKS:
      raise ValueError(f"stream {stream.name!r} is not a registered benchmark; pass config=.")
    config = benchmarks.get(stream.name).config
  search_config = search_config or config
  net, _ = network(stream, model, where, preprocess, augment)
  tunables = _resolve(optimizers, config, lambda p: gain_mask(p, net["where"]))
  search_stream, split = validation_split(stream, validation_fraction, validation_seed)
  writer = jax.process_index() == 0
  say = print if show_progress and writer else (lambda *a, **k: None)
  work = _work_folder(out, overwrite, resume, writer)
  final_seeds = list(range(FINAL_SEED_START, FINAL_SEED_START + num_seeds))
  record: dict[str, Any] = {
      "benchmark": stream.name, "budget": budget, "objective": objective,
      "objective_larger_is_better": OBJECTIVES[objective],
      "search_seeds": list(range(search_seeds)), "final_seeds": final_seeds,
      "sample_seed": sample_seed, "validation": split.to_json(),
      "search_train": (dataclasses.asdict(search_config) if search_config is not config
                       else None),
      "optimizers": {},
  }
  run_kwargs = dict(model=model, where=where, preprocess=preprocess, augment=augment,
                    resume=resume, show_progress=show_progress, **run_kwargs)
  for n, (label, tunable) in enumerate(tunables.items(), 1):
    say(f"[{n}/{len(tunables)}] search {label}: {budget} configurations x {search_seeds}"
        f" seeds = {budget * search_seeds} runs in one program"
        f" ({', '.join(sorted(tunable.space))})", flush=True)
    record["optimizers"][label] = _search(
        label, tunable, search_stream, search_config, record, split,
        None if work is None else work / "search" / label, say, run_kwargs)
    if work is not None and writer:
      results.write_json(work / "tuning.json", record)
  final = {label: tunable.optimizer(record["optimizers"][label]["selected"])
           for label, tunable in tunables.items()}
  say(f"final runs: the selected configurations, seeds {final_seeds[0]}..{final_seeds[-1]},"
      " full training data, test set", flush=True)
  result = run_benchmark(
      stream, final, config, seeds=final_seeds, out=work,
      extra_meta={"tuning": {"file": "tuning.json", "budget": budget, "objective": objective,
                             "selected": {k: v["selected"]
                                          for k, v in record["optimizers"].items()}}},
      **run_kwargs)
  record["final_metrics"] = {
      label: {m: {k: result.metrics[label][m][k] for k in ("mean", "stderr")}
              for m in FINAL_METRICS}
      for label in tunables}
  if work is not None and writer:
    results.write_json(work / "tuning.json", record)
    write_tuning_report(work, record, result.metrics)
    results.finish_out(work, out)
  say(tuning_table(record), flush=True)
  return record, result


#: The final runs' metrics kept in ``tuning.json``.
FINAL_METRICS = ("avg_acc", "avg_min_acc", "wc_acc", "avg_sg", "dl_wc_acc", "dl_final_acc_all")


def _work_folder(out: str | Path | None, overwrite: bool, resume: bool, writer: bool
                 ) -> Path | None:
  """The folder a tuning writes into (``<out>.partial`` for an overwrite,
  swapped in when finished), after checking ``out``."""
  if out is None:
    return None
  out = Path(out)
  if out.exists() and not out.is_dir():
    raise ValueError(f"out={str(out)!r} is a file; choose a folder.")
  if (out / "tuning.json").exists() and not (overwrite or resume):
    raise ValueError(f"{out} already holds a tuning; pass resume=True to continue it,"
                     " overwrite=True to replace it, or choose another folder.")
  work = results.work_folder(out, overwrite, resume)
  if overwrite and writer:
    shutil.rmtree(work, ignore_errors=True)
  return work


def _search(label: str, tunable: Tunable, search_stream: TaskStream,
            search_config: TrainConfig, record: Mapping[str, Any], split: Any,
            out: Path | None, say: Callable[..., None], run_kwargs: Mapping[str, Any]
            ) -> dict[str, Any]:
  """One method's search: ``budget`` configurations × the search seeds as one
  run, each run's hyperparameters in its optimizer state; returns its
  ``tuning.json`` entry (space, trials with validation metrics, selection)."""
  budget, objective = record["budget"], record["objective"]
  search_seeds = len(record["search_seeds"])
  trials = configurations(tunable.space, budget, record["sample_seed"])
  hyperparams = {name: np.repeat(np.asarray([t[name] for t in trials], np.float32),
                                 search_seeds) for name in sorted(tunable.space)}
  searched = run_benchmark(
      search_stream, {label: tunable.injected()}, search_config,
      seeds=list(range(search_seeds)) * budget, seed_hyperparams={label: hyperparams}, out=out,
      extra_meta={"benchmark_label": f"{search_stream.name}, validation search of {label}",
                  "split": "validation", "validation": split.to_json()},
      **run_kwargs)
  per_trial = trial_metrics(searched.curves[label], search_stream.num_tasks, budget,
                            search_seeds, search_config.iterations_per_task)
  best = select(per_trial, objective)
  entry = {
      "optimizer": tunable.name or "user factory",
      "space": tunable.space_json(),
      "trials": [{"hyperparameters": trials[c],
                  "validation": {m: _mean_json(v[c]) for m, v in per_trial.items()}}
                 for c in range(budget)],
      "selected": trials[best],
      "selected_index": best,
      "search_timings": searched.meta["timings"].get(label),
  }
  value = entry["trials"][best]["validation"][objective]["mean"]
  shown = ", ".join(f"{k}={v:.4g}" for k, v in trials[best].items())
  say(f"  selected {label}: {shown} (validation {objective}"
      f" {'n/a' if value is None else f'{100 * value:.2f} %'})", flush=True)
  return entry


def write_tuning_report(out: str | Path, record: Mapping[str, Any] | None = None,
                        metrics: Mapping[str, Any] | None = None) -> None:
  """``tuning.md`` (:func:`tuning_table`) and ``tradeoff.png`` (avg-SG against
  final all-task accuracy, :func:`ngm_jax.plots_tradeoff.plot_tradeoff`) in
  ``out``, from the given record and final metrics or from those saved there
  (``tuning.json``, the final run)."""
  from ngm_jax.plots_tradeoff import plot_tradeoff  # pylint: disable=import-outside-toplevel
  out = Path(out)
  record = record if record is not None else results.read_json(out / "tuning.json")
  metrics = metrics if metrics is not None else results.load_result(out).metrics
  with results.atomic_path(out / "tuning.md") as tmp:
    tmp.write_text(tuning_table(record, metrics))
  seeds = len(record["final_seeds"])
  plot_tradeoff({label: metrics[label] for label in record["optimizers"]},
                out / "tradeoff.png",
                title=f"{record['benchmark']}: tuned at budget {record['budget']},"
                      f" {seeds} fresh seeds (mean ± s.e.)")


def _pct(entry: Mapping[str, Any] | None, stderr: bool = True) -> str:
  if not entry or entry.get("mean") is None:
    return "n/a"
  text = f"{100 * entry['mean']:.2f}"
  if stderr and entry.get("stderr") is not None:
    text += f" ± {100 * entry['stderr']:.2f}"
  return text


def tuning_table(record: Mapping[str, Any],
                 metrics: Mapping[str, Mapping[str, Any]] | None = None) -> str:
  """Markdown: per method, the selected configuration, its validation
  objective, and the final runs' test metrics (stability: avg-SG and WC-ACC
  of Task 1; plasticity: final accuracy over all tasks), in percent."""
  objective = record["objective"]
  val = record["validation"]
  better = "larger" if record["objective_larger_is_better"] else "smaller"
  lines = [
      f"# {record['benchmark']}: every method tuned at budget {record['budget']}",
      "",
      f"Selection by validation {objective} ({better} is better), mean over search seeds {record['search_seeds']}, on"
      f" {100 * val['fraction']:.0f} % of each task's training data (split seed {val['seed']});"
      f" final runs on the full training data with fresh seeds {record['final_seeds'][0]}.."
      f"{record['final_seeds'][-1]}, evaluated on the test set. Mean ± standard error, %.",
      "",
      "| method | selected | validation " + objective + " | test avg-SG (Task 1) |"
      " test WC-ACC (Task 1) | test WC-ACC, all tasks | test final ACC, all tasks |",
      "|---|---|---:|---:|---:|---:|---:|",
  ]
  for label, entry in record["optimizers"].items():
    chosen = ", ".join(f"{k}={v:.4g}" for k, v in entry["selected"].items())
    trial = entry["trials"][entry["selected_index"]]["validation"][objective]
    final = (metrics or record.get("final_metrics", {})).get(label, {})
    lines.append(f"| {label} | {chosen} | {_pct(trial, stderr=False)} |"
                 f" {_pct(final.get('avg_sg'))} | {_pct(final.get('wc_acc'))} |"
                 f" {_pct(final.get('dl_wc_acc'))} | {_pct(final.get('dl_final_acc_all'))} |")
  return "\n".join(lines) + "\n"
