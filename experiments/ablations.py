"""Ablations of NGM: which part of the gain closes the stability gap.

    python -m experiments.ablations --benchmark split_mnist --data-dir DIR --reuse results/split_mnist
    python -m experiments.ablations --benchmark rotated_mnist --data-dir DIR --reuse results/rotated_mnist
    python -m experiments.ablations --remake docs/analysis/ablations_split_mnist   # outputs from saved curves

On one benchmark (its config in ``experiments/configs``: iterations, lr, γ, g0, η, batch; five seeds),
trains (:data:`experiments.ablation_registry.ABLATIONS`):

- ``ngm_sgd``; the constant-gain ablation ``g0_sgd`` at g0 = 1 (``g0_sgd_1``)
  and at NGM-SGD's time-averaged gain ḡ (``g0_sgd_mean``; ḡ computed from the
  ``ngm_sgd`` curves of this run, :func:`ngm_jax.gain_analysis.time_averaged_gain`);
- ``entropy_lr_sgd``: NGM's step-size rule lr·g² without ``W_eff = g·W``,
  its gain following its own network's entropy;
- ``replayed_lr_sgd``: NGM-SGD's exact step sizes lr·g(t)² without
  ``W_eff = g·W``: each seed replays the gain its ``ngm_sgd`` run had
  (:func:`ngm_jax.gain_analysis.gain_schedule`, :func:`ngm_jax.gain.replayed_gain_sgd`);
- ``msgd_reset``, ``adam_reset``: oracle optimizer-state resets at task
  boundaries (they use task identity);
- ``ngm_msgd``, ``ngm_adam``: the gain on top of momentum SGD and Adam;
- the baselines ``sgd``, ``msgd``, ``adam``.

Rotated MNIST evaluates Task 1 on its first 2000 test images (as the main
run; ``--eval-task1-limit``). With ``--reuse DIR ...``, a variant whose
optimizer, full training config, seeds and evaluation equal those of a
variant saved in DIR (checked against DIR/run.json) takes its curves from
there instead of being trained; the output says which. Variants trained here
are saved by :func:`ngm_jax.run_benchmark` in OUT/trained/ (and
OUT/trained_mean_gain/ for ``g0_sgd_mean``), which a later call can reuse.

Writes OUT (default results/analysis/ablations_<benchmark>)/: curves.npz,
run.json, metrics.json, table.md and figure.png (as ``experiments.run``),
ablations.md (the ablation table and paired differences with 95% CIs),
ablation.png (the paper's ablation figure: accuracy over the seen tasks,
Task-1 accuracy and gain of NGM-SGD against the constant gains) and
ablation_variants.png (every variant, grouped). On two busy CPU cores a
Split MNIST variant takes 2-4 min for five seeds, a Rotated MNIST one 3-6 min.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # run as a script: make the repo importable
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # pylint: disable=g-import-not-at-top

from experiments import configs
from experiments.ablation_registry import (ABLATIONS, ablation_table, ablation_variants,
                                           comparison_table)
from experiments.saved_runs import load_run, reusable_curves
from ngm_jax import benchmarks, results
from ngm_jax.cli.args import comma_separated
from ngm_jax.cli.experiment import load_experiment
from ngm_jax.data import DataUnavailableError
from ngm_jax.results import report
from ngm_jax.run_record import protocol_record, run_record, variant_record
from ngm_jax.runner import run_benchmark
from ngm_jax.failures import failed_seeds_note, failed_seeds_of_run, run_test_sizes
from ngm_jax.gain_analysis import TimeAveragedGain, gain_schedule, time_averaged_gain
from ngm_jax.plots import COLOURS
from ngm_jax.plots_ablation import plot_ablation
from ngm_jax.train import curve_iterations

#: Columns of the variants figure: {title: labels}.
GROUPS = {
    "step size vs reparameterisation": ("ngm_sgd", "entropy_lr_sgd", "replayed_lr_sgd",
                                        "g0_sgd_mean", "sgd"),
    "momentum SGD": ("ngm_sgd", "msgd", "msgd_reset", "ngm_msgd"),
    "Adam": ("ngm_sgd", "adam", "adam_reset", "ngm_adam"),
}
#: ``(colour, line style)`` of each ablation label in the figures: the paper's
#: colours for NGM-SGD, MSGD, Adam, SGD and the constant gain (purple: solid at
#: ḡ, dashed at g0 = 1); resets dashed.
ABLATION_STYLES = {
    "ngm_sgd": (COLOURS["ngm_sgd"], "-"),
    "g0_sgd_mean": (COLOURS["g0_sgd"], "-"),
    "g0_sgd_1": (COLOURS["g0_sgd"], "--"),
    "entropy_lr_sgd": ("tab:red", "-"),
    "replayed_lr_sgd": ("tab:red", "--"),
    "sgd": (COLOURS["sgd"], "-"),
    "msgd": (COLOURS["msgd"], "-"),
    "msgd_reset": ("tab:cyan", "--"),
    "ngm_msgd": ("tab:brown", "-"),
    "adam": (COLOURS["adam"], "-"),
    "adam_reset": ("tab:olive", "--"),
    "ngm_adam": ("tab:pink", "-"),
}
_OVERRIDES = {"iterations_per_task": int, "batch_size": int, "eval_every": int,
              "task_eval_every": int}


def _limit(text: str) -> int:
  """``--eval-task1-limit``: an integer >= 1, or 0 for 'all' (None: not given)."""
  if text.lower() == "all":
    return 0
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise argparse.ArgumentTypeError(
        f"--eval-task1-limit {text!r}: an integer >= 1, or 'all'.")
  return value


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m experiments.ablations", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--benchmark", default=None,
                      help=f"one of: {', '.join(configs.available())} (meant for split_mnist, rotated_mnist)")
  parser.add_argument("--remake", default=None, metavar="DIR",
                      help="re-make tables and figures from the curves saved in DIR; trains nothing")
  parser.add_argument("--data-dir", default=None,
                      help="folder with the dataset's standard files; default $NGM_JAX_DATA_DIR, else tensorflow-datasets or a download")
  parser.add_argument("--out", default=None,
                      help="output folder (default: results/analysis/ablations_<benchmark>)")
  parser.add_argument("--reuse", nargs="+", default=(), metavar="DIR",
                      help="saved run folders whose identical variants are reused instead of trained")
  parser.add_argument("--variants", default=tuple(ABLATIONS),
                      type=comma_separated(str, "--variants", choices=ABLATIONS, noun="variant"),
                      help=f"comma-separated subset (default all: {','.join(ABLATIONS)})")
  parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: the config's, 5)")
  parser.add_argument("--eval-task1-limit", type=_limit, default=None, metavar="N",
                      help="evaluate Task 1 on its first N test images, or 'all'"
                           " (default: the benchmark config's eval_task1_limit)")
  for flag, kind in _OVERRIDES.items():
    parser.add_argument("--" + flag.replace("_", "-"), type=kind, default=None,
                        help=f"override the config's {flag}")
  parser.add_argument("--overwrite", action="store_true", help="replace earlier outputs in --out")
  parser.add_argument("--no-progress", action="store_true", help="no progress bars")
  return parser


def _train(stream, variants, config, num_seeds, out, augment, args, extra_meta,
           seed_hyperparams=None):
  """Trains ``variants`` and saves them in ``out`` (so that a later call can
  reuse them); returns their curves and timings."""
  result = run_benchmark(stream, variants, config, num_seeds=num_seeds, augment=augment,
                         out=out, show_progress=not args.no_progress,
                         overwrite=args.overwrite, extra_meta=extra_meta,
                         seed_hyperparams=seed_hyperparams)
  return result.curves, result.meta["timings"]


def run(args: argparse.Namespace) -> Path:
  start = time.perf_counter()
  if args.benchmark is None:
    raise ValueError("give --benchmark (to train) or --remake DIR (to re-make outputs).")
  config = configs.get_config(args.benchmark)  # an unknown name fails before anything loads
  limit = (config.train.eval_task1_limit if args.eval_task1_limit is None
           else args.eval_task1_limit or None)
  out = Path(args.out or f"results/analysis/ablations_{args.benchmark}")
  if (out / "curves.npz").exists() and not args.overwrite:
    raise ValueError(f"{out} already holds ablations; pass --overwrite or choose another --out.")
  sources = {folder: load_run(folder, option="--reuse") for folder in args.reuse}
  labels = list(args.variants)
  for needs_ngm in ("g0_sgd_mean", "replayed_lr_sgd"):
    if needs_ngm in labels and "ngm_sgd" not in labels:
      labels.insert(0, "ngm_sgd")
      print(f"note: {needs_ngm} needs NGM-SGD's gain curves; adding ngm_sgd.")
  labels = [l for l in ABLATIONS if l in labels]

  args.eval_task1_limit = None  # applied below ('all' included)
  experiment = load_experiment(args, config)
  stream, num_seeds, augment = experiment.stream, experiment.num_seeds, experiment.augment
  train_config = dataclasses.replace(experiment.train, eval_task1_limit=limit)
  extra_meta = experiment.meta
  subset = extra_meta["test_subset_per_task"]
  record = protocol_record(
      stream, train_config, seeds=range(num_seeds), augment=augment is not None,
      model=type(benchmarks.get(stream.name).model(stream.num_classes)).__name__)
  # What a saved variant must share to be reused (experiments.saved_runs).
  protocol = {**{k: record[k] for k in ("benchmark", "seeds", "task1_eval_size", "model",
                                        "augment")},
              "benchmark_options": extra_meta["benchmark_options"],
              "test_subset_per_task": subset}
  iterations = curve_iterations(train_config, stream.num_tasks)
  k, i = stream.num_tasks, train_config.iterations_per_task
  print(f"{stream.name}: {num_seeds} seeds, {k} tasks x {i} iterations, Task-1 accuracy on"
        f" {protocol['task1_eval_size']} of {int(stream.test_task_ends[0])} test images every"
        f" {train_config.eval_every} iteration(s)")

  curves: dict[str, dict] = {}
  sources_of: dict[str, str] = {}
  after_ngm = ("g0_sgd_mean", "replayed_lr_sgd")  # built from the ngm_sgd curves
  variants = ablation_variants(train_config,
                               labels=[l for l in labels if l not in after_ngm])
  to_train = {}
  for label, (name, cfg) in variants.items():
    found, where, why = reusable_curves(sources, name, cfg, protocol, iterations, num_seeds)
    if found is not None:
      curves[label], sources_of[label] = found, where
    else:
      to_train[label] = (name, cfg)
      sources_of[label] = "trained here"
    print(f"  {label:<15} {where or 'train' + (f' (not reusable: {why})' if why else '')}")
  timings = {}
  if to_train:
    print(f"Training {', '.join(to_train)} ({len(to_train)} variants x {num_seeds} seeds) ...",
          flush=True)
    trained, t = _train(stream, to_train, train_config, num_seeds, out / "trained", augment,
                        args, extra_meta)
    curves.update({l: trained[l] for l in to_train})
    timings.update(t)

  mean_gain = None
  if "g0_sgd_mean" in labels:
    mean_gain = time_averaged_gain(curves["ngm_sgd"]["gain"])
    per_seed = ", ".join(f"{g:.4f}" for g in mean_gain.per_seed)
    print(f"NGM-SGD time-averaged gain ḡ = {mean_gain.mean:.6f} (per seed: {per_seed};"
          f" from ngm_sgd, {sources_of['ngm_sgd']})")
    name, cfg = ablation_variants(train_config, mean_gain.mean, ["g0_sgd_mean"])["g0_sgd_mean"]
    found, where, why = reusable_curves(sources, name, cfg, protocol, iterations, num_seeds)
    print(f"  {'g0_sgd_mean':<15} {where or 'train' + (f' (not reusable: {why})' if why else '')}")
    if found is not None:
      curves["g0_sgd_mean"], sources_of["g0_sgd_mean"] = found, where
    else:
      trained, t = _train(stream, {"g0_sgd_mean": (name, cfg)}, train_config, num_seeds,
                          out / "trained_mean_gain", augment, args, extra_meta)
      curves["g0_sgd_mean"], sources_of["g0_sgd_mean"] = trained["g0_sgd_mean"], "trained here"
      timings.update(t)
    variants["g0_sgd_mean"] = (name, cfg)
  if "replayed_lr_sgd" in labels:
    # Never reused: its curves depend on the ngm_sgd curves it replays.
    schedule = gain_schedule(curves["ngm_sgd"]["gain"], train_config.g0)
    print(f"  {'replayed_lr_sgd':<15} train (replays each seed's ngm_sgd gain, from"
          f" {sources_of['ngm_sgd']})")
    variant = ablation_variants(train_config, labels=["replayed_lr_sgd"])
    trained, t = _train(stream, variant, train_config, num_seeds, out / "trained_replayed",
                        augment, args, extra_meta,
                        seed_hyperparams={"replayed_lr_sgd": {"schedule": schedule}})
    curves["replayed_lr_sgd"], sources_of["replayed_lr_sgd"] = (trained["replayed_lr_sgd"],
                                                                "trained here")
    timings.update(t)
    variants.update(variant)
  curves = {l: curves[l] for l in labels}
  variants = {l: variants[l] for l in labels}

  out.mkdir(parents=True, exist_ok=True)
  results.save_curves(out / "curves.npz", curves, iterations)
  meta = run_record(record, {l: variant_record(n, c) for l, (n, c) in variants.items()},
                    extra={**extra_meta, "sources": sources_of})
  meta["timings"] = timings
  if "replayed_lr_sgd" in labels:
    meta["seed_hyperparams"] = {"replayed_lr_sgd": {"schedule": [num_seeds, k * i]}}
    meta["replayed_schedule"] = {
        "definition": "each seed's NGM-SGD gain before every step: g0, then its gain after"
                      " steps 1..T-1",
        "from": sources_of["ngm_sgd"],
    }
  if mean_gain is not None:
    meta["mean_gain"] = {
        "value": mean_gain.mean, "per_seed": mean_gain.per_seed.tolist(),
        # None with one seed (no standard error): JSON has no NaN.
        "stderr": mean_gain.stderr if np.isfinite(mean_gain.stderr) else None,
        "definition": "NGM-SGD's gain after every iteration, averaged over all"
                      f" {k * i} iterations and {num_seeds} seeds",
        "from": sources_of["ngm_sgd"],
    }
  meta["wall_s"] = round(time.perf_counter() - start, 1)
  results.write_json(out / "run.json", meta)
  metrics = report(out).metrics
  _write_ablation_outputs(out, meta, metrics, curves, iterations, mean_gain)
  return out


def remake(out: str | Path) -> Path:
  """Metrics, tables and figures again from ``out``'s curves.npz and run.json."""
  out = Path(out)
  if not (out / "run.json").exists() or not (out / "curves.npz").exists():
    raise ValueError(f"--remake {out}: holds no saved ablations (needs run.json and curves.npz).")
  meta = results.read_json(out / "run.json")
  if "sources" not in meta:
    raise ValueError(f"--remake {out}: its run.json was not written by this command.")
  curves, iterations = results.load_curves(out / "curves.npz")
  mean_gain = None
  if "mean_gain" in meta:
    m = meta["mean_gain"]
    mean_gain = TimeAveragedGain(m["value"], np.asarray(m["per_seed"]), m["stderr"])
  metrics = report(out).metrics
  _write_ablation_outputs(out, meta, metrics, curves, iterations, mean_gain)
  return out


def _write_ablation_outputs(out: Path, meta: dict[str, Any], metrics, curves, iterations,
                            mean_gain) -> None:
  k, i = meta["num_tasks"], meta["train"]["iterations_per_task"]
  s = len(meta["seeds"])
  train = meta["train"]
  failed = {l: failed_seeds_of_run(c, meta) for l, c in curves.items()}
  without_failed = results.metrics_of_kept_seeds(curves, failed, iterations, k, i)
  names = {}
  if mean_gain is not None:
    names["g0_sgd_mean"] = f"constant gain g0 = ḡ = {mean_gain.mean:.3f}"
  notes = [
      f"Protocol: the {meta['benchmark']} config (lr {train['learning_rate']:g}, γ"
      f" {train['gamma']:g}, g0 {train['g0']:g}, η {train['eta']:g}, batch"
      f" {train['batch_size']}); Task-1 accuracy every {train['eval_every']} iteration(s) on"
      f" {meta['task1_eval_size']} of {meta['task1_test_size']} Task-1 test images;"
      f" every task's accuracy every {train['task_eval_every']} iterations.",
  ]
  if mean_gain is not None:
    per_seed = ", ".join(f"{g:.4f}" for g in mean_gain.per_seed)
    notes.append(f"Constant gain at ḡ: ḡ = {mean_gain.mean:.4f}, NGM-SGD's gain averaged over"
                 f" all {k * i} iterations and {s} seeds (per seed: {per_seed}), computed from"
                 f" the ngm_sgd curves ({meta['mean_gain']['from']}).")
  if "replayed_schedule" in meta:
    notes.append("NGM's lr·g² replayed (`replayed_lr_sgd`): each seed steps by lr·g(t)², g(t)"
                 " the gain its own ngm_sgd run trained step t with"
                 f" ({meta['replayed_schedule']['from']}), on the raw weights (no W_eff ="
                 " g·W); the schedule does not react to this run.")
  resets = [l for l in meta["optimizers"] if meta["variants"][l]["optimizer"].endswith("_reset")]
  if resets:
    notes.append(f"{', '.join(resets)} reset the optimizer state at every task boundary: the"
                 " only place task identity is used (an oracle).")
  if any(bad.any() for bad in failed.values()):
    notes.append(failed_seeds_note(failed, meta.get("num_classes"), run_test_sizes(meta))
                 + " Paired differences leave out seeds where either variant failed.")
  reused = [l for l, src in meta["sources"].items() if src.startswith("reused")]
  if reused:
    notes.append("Curves reused (same optimizer, training config, seeds and evaluation,"
                 " checked against the saved run.json): "
                 + "; ".join(f"{l} ({meta['sources'][l][len('reused: '):]})" for l in reused)
                 + ". Every other variant was trained for this table.")
  text = "\n\n".join([
      f"# Ablations on {meta['benchmark']}: {s} seeds, {k} tasks x {i} iterations",
      "\n".join(f"- {n}" for n in notes),
      f"**Task-1 metrics (%), mean ± standard error over {s} seeds** (each metric on each"
      " seed's curve; avg-SG: lower is a smaller stability gap):",
      ablation_table(metrics, meta["sources"], names, failed, without_failed).rstrip(),
      "**Paired differences a − b over the same seeds, percentage points, mean"
      " [95% CI: ± t(0.975, n − 1) × s.e. over the n seeds used]** (negative ΔavgSG: a has"
      " the smaller gap):",
      comparison_table(metrics, names=names, failed=failed).rstrip(),
  ]) + "\n"
  (out / "ablations.md").write_text(text)
  results.write_json(out / "ablations.json", {
      "failed_seeds": {l: bad.tolist() for l, bad in failed.items()},
      "metrics_without_failed_seeds": without_failed,
      "mean_gain": meta.get("mean_gain"),
      "sources": meta["sources"],
  })
  title = f"{meta['benchmark']}: {s} seeds, mean ± s.e."
  legend = {l: names.get(l, ABLATIONS[l].name if l in ABLATIONS else l) for l in curves}
  constant_gain = [l for l in curves if l in ABLATIONS and ABLATIONS[l].optimizer == "g0_sgd"]
  figures = {"ablation.png": {"NGM-SGD vs constant gain": ("ngm_sgd", "g0_sgd_mean", "g0_sgd_1")},
             "ablation_variants.png": GROUPS}
  for name, groups in figures.items():
    if any(l in curves for ls in groups.values() for l in ls):
      plot_ablation(curves, iterations, k, i, groups, names=legend, styles=ABLATION_STYLES,
                    constant_gain=constant_gain, title=title, path=out / name, failed=failed)
  print(text)


def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  try:
    out = remake(args.remake) if args.remake else run(args)
  except (ValueError, DataUnavailableError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"Wrote {out}/: ablations.md, ablations.json, ablation.png, ablation_variants.png,"
        " table.md, figure.png, metrics.json, curves.npz, run.json")
  return 0


if __name__ == "__main__":
  sys.exit(main())
