"""The gain as a readout of task complexity: mean gain per task block against the task index.

    python -m experiments.gain_readout --runs results/split_mnist results/rotated_mnist
        # writes results/analysis/gain_readout (--out DIR)

Reads saved run folders (``experiments.run``: run.json and curves.npz), any
number, class-incremental (``split_*``) and domain-incremental
(``rotated_*``, ``domain_*``) side by side. For each run, from the gain
curve ``[S, T]`` of ``--optimizer`` (default ``ngm_sgd``):

- ``ḡ_k``, the mean gain over task ``k``'s block of iterations, per seed
  (:func:`ngm_jax.gain_analysis.block_mean_gain`);
- a least-squares line ``ḡ_k ≈ a + b·k`` per seed, and the slope ``b`` as mean
  ± ``t(0.975, S−1)``·s.e. over seeds (:func:`ngm_jax.gain_analysis.gain_trend`);
- the same again without the first ``--skip-fraction`` (default half) of
  every block: the settled gain, free of the transient after each boundary
  and, in block 1, of the high-entropy learning from scratch, which otherwise
  raises ``ḡ_1``.

Writes OUT/figure.png (one panel per run: per-seed block gains, mean ± s.e.,
the fitted line), OUT/table.md (block gains and slope ± CI per run) and
OUT/gain_readout.json (every number). Takes a few seconds.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

if __package__ in (None, ""):  # run as a script: make the repo importable
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # pylint: disable=g-import-not-at-top

from experiments.saved_runs import load_run, run_variants
from ngm_jax import benchmarks, results
from ngm_jax.gain_analysis import gain_trend
from ngm_jax.plots_ablation import plot_gain_readout


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m experiments.gain_readout", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--runs", nargs="+", required=True, metavar="DIR",
                      help="saved run folders (run.json + curves.npz)")
  parser.add_argument("--out", default="results/analysis/gain_readout",
                      help="output folder (default: %(default)s)")
  parser.add_argument("--optimizer", default="ngm_sgd",
                      help="the variant whose gain is read (default: %(default)s)")
  parser.add_argument("--level", type=float, default=0.95,
                      help="confidence level of the slope's interval (default: %(default)s)")
  parser.add_argument("--skip-fraction", type=float, default=0.5,
                      help="second readout: leave out this fraction of every block's first"
                           " iterations; 0: whole blocks only (default: %(default)s)")
  return parser


def benchmark_kind(meta: dict[str, Any]) -> str:
  """A saved run's kind, ``"class-incremental"`` or ``"domain-incremental"``:
  recorded in its run.json (``kind``), or, for runs saved before that, the
  registry's record of its benchmark (:data:`ngm_jax.benchmarks.BENCHMARKS`).

  Raises:
    ValueError: neither says.
  """
  if meta.get("kind"):
    return meta["kind"]
  name = meta.get("stream", meta.get("benchmark"))
  if name in benchmarks.BENCHMARKS:
    return benchmarks.get(name).kind
  raise ValueError(f"run of {name!r}: its run.json records no kind and the benchmark is not"
                   f" registered ({', '.join(benchmarks.BENCHMARKS)}).")


def read_run(folder: str, optimizer: str, level: float, skip_fraction: float = 0.0
             ) -> dict[str, Any]:
  """The block gains and their trend of one saved run (ValueError if unusable):
  ``trend`` over whole blocks, ``settled`` (None when ``skip_fraction`` is 0)
  without the first ``⌊skip_fraction·I⌋`` iterations of every block."""
  meta, curves, _ = load_run(folder)
  if optimizer not in curves:
    raise ValueError(f"{folder}: no {optimizer!r} curves; it holds {', '.join(curves) or 'none'}.")
  gain = np.asarray(curves[optimizer]["gain"], np.float64)
  if np.all(gain == gain.flat[0]):
    raise ValueError(f"{folder}: the gain of {optimizer!r} is constant ({gain.flat[0]:g});"
                     " choose a gain-modulated variant with --optimizer.")
  variants = run_variants(meta)
  train = variants.get(optimizer, (optimizer, meta["train"]))[1]
  trend = gain_trend(gain, meta["num_tasks"], level)
  skip = int(skip_fraction * train["iterations_per_task"])
  settled = gain_trend(gain, meta["num_tasks"], level, skip) if skip else None
  return {
      "run": str(folder),
      "finished": "wall_s" in meta,
      "benchmark": meta["benchmark"],
      "kind": benchmark_kind(meta),
      "optimizer": optimizer,
      "seeds": gain.shape[0],
      "num_tasks": meta["num_tasks"],
      "iterations_per_task": train["iterations_per_task"],
      "eta": train["eta"], "gamma": train["gamma"], "g0": train["g0"],
      "trend": trend,
      "settled": settled,
  }


def _jsonable(x):
  if isinstance(x, dict):
    return {k: _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple, np.ndarray)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.generic):
    x = x.item()
  if isinstance(x, float) and not math.isfinite(x):
    return None  # e.g. the standard error of a single seed
  return x


def gain_trend_table(entries: Sequence[Mapping[str, Any]]) -> str:
  """Markdown: per run and readout, the mean block gain of each task and the
  fitted slope.

  Args:
    entries: dicts with ``benchmark``, ``kind``, ``optimizer``, ``seeds`` (S),
      ``num_tasks`` (K), ``iterations_per_task`` (I), ``eta`` (η) and a
      :func:`ngm_jax.gain_analysis.gain_trend` result under ``trend``; a row per entry, whose
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


def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  try:
    if not 0.0 < args.level < 1.0:
      raise ValueError(f"--level {args.level}: must be in (0, 1).")
    if not 0.0 <= args.skip_fraction < 1.0:
      raise ValueError(f"--skip-fraction {args.skip_fraction}: must be in [0, 1).")
    entries = [read_run(folder, args.optimizer, args.level, args.skip_fraction)
               for folder in args.runs]
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  order = {"class-incremental": 0, "domain-incremental": 1}
  entries.sort(key=lambda e: order[e["kind"]])  # stable: the given order within a kind
  for e in entries:
    note = "" if e["finished"] else "  (run still in progress: the curves saved so far)"
    print(f"{e['run']}: {e['benchmark']} ({e['kind']}), {e['seeds']} seeds{note}")
    for name, tr in (("whole blocks", e["trend"]), ("settled", e["settled"])):
      if tr is not None:
        s = tr["slope"]
        print(f"  {name} (skip {tr['skip']}): block gains {np.round(tr['block_mean'], 4).tolist()},"
              f" slope {s['mean']:+.4f} ± {s['half_width']:.4f} per task")
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  pct = int(round(100 * args.level))
  table = "\n\n".join([
      f"# The gain as a readout of task complexity ({entries[0]['optimizer']})",
      "ḡ_k: the mean of the gain after every iteration of task k's block, per seed. Slope:"
      " a least-squares line ḡ_k ≈ a + b·k (k = 1..K) fitted to each seed, then b as mean"
      f" ± t({(1 + args.level) / 2:g}, S−1) × s.e. over the S seeds ({pct}% CI)."
      + (" Two readouts: the whole block, and the block without its first"
         f" {args.skip_fraction:g}·I iterations, which leaves out the transient after each"
         " boundary and, in block 1, the high-entropy learning from scratch."
         if args.skip_fraction else "")
      + " ḡ: the gain averaged over all iterations and seeds. Runs: "
      + ", ".join(f"{e['run']}" + ("" if e["finished"] else " (unfinished)") for e in entries)
      + ".",
      gain_trend_table(
          [r for e in entries for r in (e, {**e, "trend": e["settled"]}) if r["trend"]]).rstrip(),
  ]) + "\n"
  (out / "table.md").write_text(table)
  results.write_json(out / "gain_readout.json", {
      "level": args.level, "skip_fraction": args.skip_fraction, "command": results.command_line(),
      "runs": [_jsonable(e) for e in entries]})
  plot_gain_readout(
      entries,
      title=f"mean gain per task block ({entries[0]['optimizer']}): mean ± s.e. over seeds;"
            f" slope ± {pct}% CI",
      path=out / "figure.png")
  print(table)
  print(f"Wrote {out}/: figure.png, table.md, gain_readout.json")
  return 0


if __name__ == "__main__":
  sys.exit(main())
