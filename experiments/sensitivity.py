"""Sensitivity of NGM-SGD's stability gap to η and γ on Split MNIST, as one program.

    python -m experiments.sensitivity --data-dir DIR [--out results/analysis/sensitivity]

Trains NGM-SGD on every (η, γ) of the grid (default η ∈ {0, 0.1, 0.2, 0.4,
0.6, 0.8} × γ ∈ {0.5, 0.7, 0.8, 0.9, 0.95}) and five seeds: 150 runs vmapped
in one compiled program (:func:`ngm_jax.sweep.sweep`; η and γ injected into
the optimizer state). Everything else is the split_mnist config (lr 0.01,
g0 1, the gain starting at g0, batch 128, 5 tasks × 200 iterations), except
that, to keep the cost sane on a CPU, Task 1 is evaluated every iteration on
its first ``--eval-task1-limit`` test images (500) and every task every
``--task-eval-every`` iterations (50). Then ``--separate`` of the settings
(spread over the grid) are run again, each as its own compiled 5-seed
program with ``ngm_sgd``, the same settings; their curves are checked
against the sweep's, and their wall time, scaled to the whole grid when not
every setting is run, is set against the sweep's.

Writes ``OUT/``: ``sensitivity.json`` (grids of avg-ACC, avg-min-ACC, WC-ACC
and avg-SG per seed and mean ± s.e., timings, settings), ``table.md``,
``heatmaps.png`` (avg-SG and avg-ACC over (η, γ)) and ``curves.npz``
(``task1_acc`` ``[η, γ, seed, iteration]``, ``task_acc``, and the axes).
About 25 minutes on two busy CPU cores with ``--separate 6`` (21.5 min of it the sweep).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):  # run as a script: make the repo importable
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # pylint: disable=g-import-not-at-top

from ngm_jax import benchmarks, plots_analysis, results
from ngm_jax.data import DataUnavailableError
from ngm_jax.metrics import METRIC_LABELS, TABLE_METRICS
from ngm_jax.benchmarks import load_benchmark
from ngm_jax.cli.args import comma_separated
from ngm_jax.sweep import check_grid, grid_metrics, separate_runs, sweep
from ngm_jax.run_record import environment_record, protocol_record
from ngm_jax.train import curve_iterations


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m experiments.sensitivity",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data-dir", default=None, help="folder with MNIST's IDX files")
  parser.add_argument("--out", default="results/analysis/sensitivity",
                      help="output folder (default: %(default)s)")
  parser.add_argument("--etas", type=comma_separated(float, "--etas"), default=(0.0, 0.1, 0.2, 0.4, 0.6, 0.8),
                      help="η values, comma-separated")
  parser.add_argument("--gammas", type=comma_separated(float, "--gammas"), default=(0.5, 0.7, 0.8, 0.9, 0.95),
                      help="γ values, comma-separated, each < 1")
  parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
  parser.add_argument("--separate", default="6",
                      help="how many settings to run again as separate programs for the"
                           " timing (spread over the grid), or 'all'")
  parser.add_argument("--eval-task1-limit", type=int, default=500,
                      help="Task 1 evaluated every iteration on its first N test images")
  parser.add_argument("--task-eval-every", type=int, default=50,
                      help="every task's test set evaluated every N iterations")
  parser.add_argument("--eval-batch-size", type=int, default=2000,
                      help="evaluate in chunks of N images (bounds memory over 150 runs)")
  parser.add_argument("--report-only", action="store_true",
                      help="re-make table.md and heatmaps.png from OUT's saved sweep")
  parser.add_argument("--iterations-per-task", type=int, default=None, help=argparse.SUPPRESS)
  parser.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)
  return parser


def spread(num_settings: int, count: int) -> list[int]:
  """``count`` distinct indices spread evenly over ``0..num_settings-1``."""
  return sorted({int(round(x)) for x in np.linspace(0, num_settings - 1, count)})


def _fmt(mean: float, se: float) -> str:
  if not np.isfinite(mean):
    return "n/a"
  return f"{100 * mean:.2f}" + ("" if se is None or not np.isfinite(se) else f" ± {100 * se:.2f}")


def grid_table(grids, etas, gammas, metric: str, num_seeds: int) -> str:
  """A markdown table of one metric, rows η, columns γ, mean ± s.e. in %."""
  head = "| η \\ γ | " + " | ".join(f"{g:g}" for g in gammas) + " |"
  rule = "|---|" + "---:|" * len(gammas)
  rows = [f"| {e:g} | " + " | ".join(_fmt(grids[metric]["mean"][i, j],
                                          grids[metric]["stderr"][i, j])
                                     for j in range(len(gammas))) + " |"
          for i, e in enumerate(etas)]
  return (f"**{METRIC_LABELS[metric]} (%), mean ± s.e. over {num_seeds} seeds**\n\n"
          + "\n".join([head, rule, *rows]))


def _corner(grids, etas, gammas, metric, best_is_low):
  mean = grids[metric]["mean"]
  flat = np.nanargmin(mean) if best_is_low else np.nanargmax(mean)
  i, j = np.unravel_index(flat, mean.shape)
  return {"eta": float(etas[i]), "gamma": float(gammas[j]), "mean": float(mean[i, j]),
          "stderr": _json(grids[metric]["stderr"][i, j])}  # None with one seed


def _value(x) -> float:
  """A float32 grid value as the decimal it was given as (0.4, not 0.4000000059604645)."""
  return round(float(x), 6)


def _json(x):
  x = np.asarray(x, np.float64)
  if x.ndim == 0:
    return float(x) if np.isfinite(x) else None
  return [_json(v) for v in x]


def _machine(record) -> str:
  """The machine a saved sweep ran on, as its record states it: JAX's device,
  the CPU count, and the 1-min load average before and after the sweep (how
  busy the machine was; e.g. other jobs on the same cores)."""
  cores = record.get("cpu_count")
  parts = [record.get("device", "device not recorded"),
           f"{cores} CPU cores" if cores else "CPU count not recorded"]
  load = record.get("timing", {}).get("sweep", {}).get("load_avg_1min")
  if load:
    parts.append(f"1-min load average {load[0]:.1f} before the sweep, {load[1]:.1f} after")
  return ", ".join(parts)


def _run(args, etas, gammas, num_separate, config, base, stream, out: Path) -> None:
  """Trains the sweep and the separate runs; writes curves.npz and sensitivity.json."""
  k = stream.num_tasks
  num_settings = len(etas) * len(gammas)
  print(f"sweep: {len(etas)} η x {len(gammas)} γ x {args.seeds} seeds ="
        f" {num_settings * args.seeds} runs in one program ...", flush=True)
  load_before = os.getloadavg()
  curves, sweep_time = sweep(stream, config, etas, gammas, args.seeds)
  sweep_time["load_avg_1min"] = [load_before[0], os.getloadavg()[0]]
  print(f"  compile {sweep_time['compile_s']:.1f} s, run {sweep_time['run_s']:.1f} s,"
        f" wall {sweep_time['wall_s']:.1f} s", flush=True)
  results.save_curves(out / "curves.npz",
                      {"sweep": {"task1_acc": curves["task1_acc"],
                                 "task_acc": curves["task_acc"],
                                 "etas": etas, "gammas": gammas}},
                      curve_iterations(config, k))
  record = {
      **protocol_record(stream, config, seeds=range(args.seeds), model="MLP", augment=False),
      "optimizer": "ngm_sgd (optax.inject_hyperparams; η and γ swept, g0 and lr fixed, gain"
                   " starting at g0)",
      "etas": [_value(e) for e in etas],
      "gammas": [_value(g) for g in gammas],
      "default": {"eta": base.eta, "gamma": base.gamma},
      "timing": {"sweep": {k_: round(v, 2) if isinstance(v, float) else v
                           for k_, v in sweep_time.items()}},
      **environment_record(),
      "cpu_count": os.cpu_count(),
  }
  results.write_json(out / "sensitivity.json", record)  # nothing finished is lost

  # The same settings, each as its own program, for the wall time.
  settings = [(_value(e), _value(g)) for e in etas for g in gammas]
  chosen = spread(num_settings, num_separate) if num_separate else []
  print(f"separate runs: {len(chosen)} of {num_settings} settings ...", flush=True)

  def report_one(n, timing):
    print(f"  [{n + 1}/{len(chosen)}] η {timing['eta']:g} γ {timing['gamma']:g}: compile"
          f" {timing['compile_s']:.1f} s, run {timing['run_s']:.1f} s, wall"
          f" {timing['wall_s']:.1f} s", flush=True)

  load_before = os.getloadavg()
  sep_curves, sep_times = separate_runs(stream, config, [settings[c] for c in chosen],
                                        args.seeds, callback=report_one)
  load_after = os.getloadavg()
  agreement = []
  for c, run in zip(chosen, sep_curves):
    i, j = divmod(c, len(gammas))
    agreement.append({
        "eta": settings[c][0], "gamma": settings[c][1],
        "max_abs_diff_task1_acc": float(np.abs(run["task1_acc"] - curves["task1_acc"][i, j]).max()),
        "max_rel_diff_gain": float(np.abs(run["gain"] / curves["gain"][i, j] - 1).max()),
        "avg_sg_diff": float(np.abs(grid_metrics(run["task1_acc"], k)["avg_sg"]["mean"]
                                    - grid_metrics(curves["task1_acc"][i, j], k)["avg_sg"]["mean"])),
    })
  if sep_times:
    measured = float(sum(t["wall_s"] for t in sep_times))
    per_setting = measured / len(sep_times)
    total = measured if len(sep_times) == num_settings else per_setting * num_settings
    record["timing"]["separate"] = {
        "settings_measured": len(sep_times),
        "settings_total": num_settings,
        "measured_wall_s": round(measured, 2),
        "mean_wall_s_per_setting": round(per_setting, 2),
        "mean_compile_s_per_setting": round(float(np.mean([t["compile_s"] for t in sep_times])), 2),
        "mean_run_s_per_setting": round(float(np.mean([t["run_s"] for t in sep_times])), 2),
        "total_wall_s": round(total, 2),
        "total_is": ("measured" if len(sep_times) == num_settings else
                     f"extrapolated: mean of {len(sep_times)} measured settings x {num_settings}"),
        "per_setting": [{k_: round(v, 2) for k_, v in t.items()} for t in sep_times],
        "load_avg_1min": [load_before[0], load_after[0]],
    }
    record["timing"]["speedup"] = round(total / sweep_time["wall_s"], 2)
  record["separate_vs_sweep_curves"] = agreement
  results.write_json(out / "sensitivity.json", record)


def write_report(out: str | Path) -> dict:
  """Metric grids, table.md and heatmaps.png from ``out/curves.npz`` and
  ``out/sensitivity.json``; the grids and best/worst settings are added to
  the JSON. Returns the record."""
  out = Path(out)
  if not (out / "curves.npz").exists() or not (out / "sensitivity.json").exists():
    raise ValueError(f"{out} holds no saved sweep (no curves.npz and sensitivity.json).")
  record = results.read_json(out / "sensitivity.json")
  curves, _ = results.load_curves(out / "curves.npz")
  etas = np.array([_value(e) for e in curves["sweep"]["etas"]])
  gammas = np.array([_value(g) for g in curves["sweep"]["gammas"]])
  k, num_seeds = record["num_tasks"], len(record["seeds"])
  config = record["train"]
  grids = grid_metrics(curves["sweep"]["task1_acc"], k)
  record["metrics"] = {m: {"mean": _json(grids[m]["mean"]), "stderr": _json(grids[m]["stderr"]),
                           "per_seed": _json(grids[m]["per_seed"])} for m in TABLE_METRICS}
  corners = {"best_avg_sg": ("avg_sg", True), "worst_avg_sg": ("avg_sg", False),
             "best_avg_acc": ("avg_acc", False), "worst_avg_acc": ("avg_acc", True)}
  for key, (metric, low) in corners.items():
    record[key] = _corner(grids, etas, gammas, metric, best_is_low=low)
  results.write_json(out / "sensitivity.json", record)

  num_settings = len(etas) * len(gammas)
  best_sg, worst_sg = record["best_avg_sg"], record["worst_avg_sg"]
  best_acc, worst_acc = record["best_avg_acc"], record["worst_avg_acc"]
  default = record["default"]
  notes = [
      f"# Split MNIST: sensitivity of NGM-SGD to η and γ ({num_settings} settings x"
      f" {num_seeds} seeds, one program)",
      "",
      f"NGM-SGD, lr {config['learning_rate']:g}, g0 {config['g0']:g} (the gain starts at"
      f" g0), batch {config['batch_size']}, {k} tasks x {config['iterations_per_task']}"
      f" iterations. Task 1 evaluated every {config['eval_every']} iteration(s) on"
      f" {record['task1_eval_size']} of {record['task1_test_size']} Task-1 test images; every"
      f" task every {config['task_eval_every']} iterations. The benchmark's default is"
      f" η {default['eta']:g}, γ {default['gamma']:g}.",
      "",
      f"Lowest avg-SG: η {best_sg['eta']:g}, γ {best_sg['gamma']:g}"
      f" ({_fmt(best_sg['mean'], best_sg['stderr'])} %); highest: η {worst_sg['eta']:g},"
      f" γ {worst_sg['gamma']:g} ({_fmt(worst_sg['mean'], worst_sg['stderr'])} %)."
      f" Highest avg-ACC: η {best_acc['eta']:g}, γ {best_acc['gamma']:g}"
      f" ({_fmt(best_acc['mean'], best_acc['stderr'])} %); lowest: η {worst_acc['eta']:g},"
      f" γ {worst_acc['gamma']:g} ({_fmt(worst_acc['mean'], worst_acc['stderr'])} %).",
      "",
  ]
  tables = [grid_table(grids, etas, gammas, m, num_seeds)
            for m in ("avg_sg", "avg_acc", "avg_min_acc", "wc_acc")]
  timing = record["timing"]
  sw = timing["sweep"]
  lines = [f"**Wall time** ({_machine(record)}):", "",
           f"- sweep, one program ({num_settings * num_seeds} runs): {sw['wall_s']:.1f} s"
           f" (compile {sw['compile_s']:.1f} s, run {sw['run_s']:.1f} s)"]
  if "separate" in timing:
    sep = timing["separate"]
    lines.append(
        f"- separate programs, one per setting ({num_seeds} seeds vmapped each, ngm_sgd):"
        f" measured {sep['settings_measured']} of {num_settings} settings,"
        f" {sep['measured_wall_s']:.1f} s ({sep['mean_wall_s_per_setting']:.1f} s per setting:"
        f" compile {sep['mean_compile_s_per_setting']:.1f} s, run"
        f" {sep['mean_run_s_per_setting']:.1f} s)")
    label = ("measured" if sep["total_is"] == "measured"
             else f"**extrapolated** from {sep['settings_measured']} measured settings")
    ratio = timing["speedup"]
    verdict = (f"the sweep is {ratio:.2f}x faster" if ratio >= 1
               else f"the sweep is slower: separate / sweep = {ratio:.2f}")
    lines.append(f"- all {num_settings} settings as separate programs: {sep['total_wall_s']:.1f}"
                 f" s ({label}); {verdict}")
    agreement = record.get("separate_vs_sweep_curves", [])
    if agreement:
      worst = max(a["max_abs_diff_task1_acc"] for a in agreement)
      worst_sg = max(a["avg_sg_diff"] for a in agreement)
      lines.append(f"- the separate runs reproduce the sweep's curves up to float32 rounding"
                   f" (batched matmuls sum in another order, and the difference grows along a"
                   f" run, most at high gain): max |Δ Task-1 accuracy| {worst:.4f} at one"
                   f" point, max |Δ avg-SG| {worst_sg:.4f}, over the {len(agreement)}"
                   f" settings run both ways")
  (out / "table.md").write_text("\n".join(notes) + "\n" + "\n\n".join(tables) + "\n\n"
                                + "\n".join(lines) + "\n")
  plots_analysis.plot_sensitivity(
      grids, etas.tolist(), gammas.tolist(), default=(default["eta"], default["gamma"]),
      title=(f"Split MNIST, NGM-SGD (lr {config['learning_rate']:g}, g0 {config['g0']:g}):"
             f" Task-1 metrics over (η, γ), {num_seeds} seeds, mean ± s.e."),
      path=out / "heatmaps.png")
  return record


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = _parser().parse_args(argv)
  args.argv = argv
  try:
    if args.report_only:
      record = write_report(args.out)
      print(f"Re-made {args.out}/: table.md, heatmaps.png, sensitivity.json metrics")
      return 0
    if not hasattr(plots_analysis, "plot_sensitivity"):  # fail before an hour of training
      raise ValueError("ngm_jax.plots_analysis has no plot_sensitivity; restore it.")
    etas, gammas = check_grid(args.etas, args.gammas)
    if args.seeds < 1:
      raise ValueError(f"--seeds {args.seeds}: need at least 1 seed.")
    num_settings = len(etas) * len(gammas)
    if args.separate == "all":
      num_separate = num_settings
    elif args.separate.isdigit() and 0 <= int(args.separate) <= num_settings:
      num_separate = int(args.separate)
    else:
      raise ValueError(f"--separate {args.separate!r}: give 'all' or an integer in"
                       f" 0..{num_settings}.")
    base = benchmarks.get("split_mnist").config
    overrides = {"eval_task1_limit": args.eval_task1_limit,
                 "task_eval_every": args.task_eval_every,
                 "eval_batch_size": args.eval_batch_size,
                 "iterations_per_task": args.iterations_per_task,
                 "batch_size": args.batch_size}
    config = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    print("Loading split_mnist ...", flush=True)
    stream = load_benchmark("split_mnist", args.data_dir)
  except (ValueError, DataUnavailableError) as err:
    print(f"error: {err}", file=sys.stderr)
    return 2
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  _run(args, etas, gammas, num_separate, config, base, stream, out)
  record = write_report(out)
  print(f"Wrote {out}/: sensitivity.json, table.md, heatmaps.png, curves.npz")
  if "separate" in record["timing"]:
    sep = record["timing"]["separate"]
    print(f"sweep {record['timing']['sweep']['wall_s']:.1f} s vs separate"
          f" {sep['total_wall_s']:.1f} s ({sep['total_is']}): {record['timing']['speedup']:.2f}x")
  return 0


if __name__ == "__main__":
  sys.exit(main())
