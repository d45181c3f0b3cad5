"""Command-line entry point: run a benchmark, save curves, tabulate, plot.

    python -m experiments.run run --benchmark split_mnist --data-dir DIR
    python -m experiments.run report results/split_mnist

``run`` trains every optimizer on every seed (seeds are one vmapped, compiled
program per optimizer), saving curves after each optimizer, then writes the
metrics, the table and the figure. ``report`` re-makes metrics, table and
figure from the saved curves.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np
from tqdm import tqdm

from experiments import configs
from ngm_jax import plots, results
from ngm_jax.data import DataUnavailableError
from ngm_jax.optimizers import OPTIMIZERS
from ngm_jax.streams import load_benchmark
from ngm_jax.train import curve_iterations, make_train, seed_keys, task1_eval_size

# CLI flag → TrainConfig field.
_TRAIN_FLAGS = {
    "iterations_per_task": int,
    "batch_size": int,
    "learning_rate": float,
    "gamma": float,
    "g0": float,
    "eta": float,
    "const_gain": float,
    "eval_every": int,
    "task_eval_every": int,
    "eval_task1_limit": int,
}


def _parse_optimizers(text: str) -> tuple[str, ...]:
  names = OPTIMIZERS if text == "all" else tuple(n.strip() for n in text.split(",") if n.strip())
  unknown = [n for n in names if n not in OPTIMIZERS]
  if unknown or not names:
    raise argparse.ArgumentTypeError(
        f"unknown optimizer(s) {unknown or text!r}; choose from"
        f" {', '.join(OPTIMIZERS)} (comma-separated) or 'all'."
    )
  return names


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m experiments.run", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  run = sub.add_parser("run", help="train, save curves, write metrics, table and figure")
  run.add_argument("--benchmark", required=True,
                   help=f"one of: {', '.join(configs.available())}")
  run.add_argument("--optimizers", type=_parse_optimizers, default=None,
                   help=f"comma-separated subset of {', '.join(OPTIMIZERS)}, or 'all' (default: the config's)")
  run.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 (default: the config's, 5)")
  run.add_argument("--out", default=None, help="output folder (default: results/<benchmark>)")
  run.add_argument("--data-dir", default=None,
                   help="folder with the dataset's standard files (offline); default $NGM_JAX_DATA_DIR, else tensorflow-datasets")
  run.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
  run.add_argument("--no-progress", action="store_true", help="no progress bar")
  for flag, kind in _TRAIN_FLAGS.items():
    run.add_argument("--" + flag.replace("_", "-"), type=kind, default=None,
                     help=f"override the config's TrainConfig.{flag}")
  report = sub.add_parser("report", help="re-make metrics, table and figure from saved curves")
  report.add_argument("out", help="a run's output folder")
  return parser


def report(out: Path) -> dict:
  """Metrics, table and figure from ``out/curves.npz`` and ``out/run.json``."""
  meta = results.read_json(out / "run.json")
  curves, iterations = results.load_curves(out / "curves.npz")
  k, i = meta["num_tasks"], meta["train"]["iterations_per_task"]
  metrics = results.compute_metrics(curves, iterations, k, i)
  results.write_json(out / "metrics.json", metrics)
  eval_note = (
      f"Task-1 accuracy evaluated every {meta['train']['eval_every']} iteration(s) on"
      f" {meta['task1_eval_size']} of {meta['task1_test_size']} Task-1 test images."
  )
  header = (
      f"# {meta['benchmark']}: {len(meta['seeds'])} seeds, {k} tasks x {i} iterations\n\n"
      f"{eval_note}\n\n"
  )
  (out / "table.md").write_text(header + results.metrics_table(metrics, len(meta["seeds"])))
  plots.plot_stability_gap(
      curves, iterations, k, i,
      title=f"{meta['benchmark']} ({len(meta['seeds'])} seeds, mean ± s.e.)",
      path=out / "figure.png",
  )
  return metrics


def run(args: argparse.Namespace) -> Path:
  config = configs.get_config(args.benchmark)
  overrides = {f: getattr(args, f) for f in _TRAIN_FLAGS if getattr(args, f) is not None}
  train_config = dataclasses.replace(config.train, **overrides)
  optimizers = args.optimizers or config.optimizers
  num_seeds = config.seeds if args.seeds is None else args.seeds
  if num_seeds < 1:
    raise ValueError(f"--seeds {num_seeds}: need at least 1 seed.")
  out = Path(args.out or f"results/{args.benchmark}")
  if (out / "curves.npz").exists() and not args.overwrite:
    raise ValueError(f"{out} already holds a run; pass --overwrite or choose another --out.")
  out.mkdir(parents=True, exist_ok=True)

  print(f"Loading {args.benchmark} ...", flush=True)
  stream = load_benchmark(args.benchmark, args.data_dir)
  total = stream.num_tasks * train_config.iterations_per_task
  seeds = list(range(num_seeds))
  keys = seed_keys(seeds)
  device = jax.devices()[0]
  meta = {
      "benchmark": args.benchmark,
      "num_tasks": stream.num_tasks,
      "task_names": list(stream.task_names),
      "train": dataclasses.asdict(train_config),
      "optimizers": list(optimizers),
      "seeds": seeds,
      "task1_eval_size": task1_eval_size(stream, train_config),
      "task1_test_size": int(stream.test_task_ends[0]),
      "train_size": int(stream.train_task_ends[-1]),
      "device": f"{device.platform}: {device.device_kind}",
      "jax_version": jax.__version__,
      "python": platform.python_version(),
      "command": " ".join(sys.argv),
      "timings": {},
  }
  results.write_json(out / "run.json", meta)
  iterations = curve_iterations(train_config, stream.num_tasks)
  all_curves: dict[str, dict[str, np.ndarray]] = {}
  log = open(out / "log.jsonl", "a")
  wall_start = time.perf_counter()
  for n, opt in enumerate(optimizers, 1):
    bar = None

    def progress(step):
      if bar is not None:  # iterations done, reported from the compiled loop
        bar.update(int(np.max(step)) - bar.n)

    train = make_train(stream, opt, train_config, progress=progress)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
    t1 = time.perf_counter()
    if not args.no_progress:
      bar = tqdm(total=total, desc=f"[{n}/{len(optimizers)}] {opt} x{num_seeds} seeds",
                 unit="it")
    curves = jax.device_get(jax.block_until_ready(compiled(keys)))
    t2 = time.perf_counter()
    if bar is not None:
      bar.close()
    all_curves[opt] = curves
    results.save_curves(out / "curves.npz", all_curves, iterations)
    timing = {"compile_s": round(t1 - t0, 2), "run_s": round(t2 - t1, 2),
              "iterations_per_s": round(total / (t2 - t1), 1)}
    meta["timings"][opt] = timing
    results.write_json(out / "run.json", meta)
    log.write(json.dumps({"optimizer": opt, **timing}) + "\n")
    log.flush()
    print(f"  {opt}: compile {timing['compile_s']} s, run {timing['run_s']} s "
          f"({num_seeds} seeds x {total} iterations)", flush=True)
  log.close()
  meta["wall_s"] = round(time.perf_counter() - wall_start, 1)
  results.write_json(out / "run.json", meta)
  report(out)
  print(f"Wrote {out}/: curves.npz, run.json, metrics.json, table.md, figure.png "
        f"(total {meta['wall_s']} s)")
  return out


def main(argv: Sequence[str] | None = None) -> int:
  parser = _parser()
  args = parser.parse_args(argv)
  try:
    if args.command == "run":
      run(args)
    else:
      out = Path(args.out)
      if not (out / "curves.npz").exists():
        raise ValueError(f"{out} holds no saved run (no curves.npz).")
      report(out)
      print(f"Re-made {out}/metrics.json, table.md, figure.png")
  except (ValueError, DataUnavailableError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
