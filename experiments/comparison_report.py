"""The fair comparison's tables, verdicts and figure, made from saved tunings.

    python -m experiments.comparison_report docs/runs/comparison --doc docs/comparison.md

For every folder under the given one that holds a ``tuning.json`` (from
``experiments/comparison.py`` or ``ngm-jax tune``): re-makes its
``tuning.md`` and ``tradeoff.png``, then writes, between the markers
``<!-- comparison:begin -->`` and ``<!-- comparison:end -->`` of ``--doc``,
each benchmark's protocol, its table (selection, validation objective, test
stability and plasticity), the costs, and the measured verdict: which method
has the lowest Task-1 gap, the highest WC-ACC over all tasks and the highest
final accuracy, and NGM-SGD's difference from the best other method on each
(± the combined standard error). One figure, ``--figure``, puts every
benchmark's trade-off side by side.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from ngm_jax.results import load_result, read_json
from ngm_jax.tuning import OBJECTIVES, select, tuning_table, write_tuning_report

BEGIN, END = "<!-- comparison:begin -->", "<!-- comparison:end -->"
#: (metric, words, larger is better) of the verdict.
VERDICT = (("avg_sg", "lowest Task-1 gap (avg-SG)", False),
           ("dl_wc_acc", "highest WC-ACC over all tasks", True),
           ("dl_final_acc_all", "highest final accuracy over all tasks", True))


def _pm(entry: Mapping[str, Any]) -> str:
  return f"{100 * entry['mean']:.2f} ± {100 * (entry['stderr'] or 0.0):.2f}"


def verdict(metrics: Mapping[str, Mapping[str, Any]], ngm: str = "ngm_sgd") -> list[str]:
  """One line per :data:`VERDICT` metric: the best method, and NGM-SGD against
  the best other method (difference ± combined standard error, in points)."""
  lines = []
  for name, words, larger in VERDICT:
    entries = {k: m[name] for k, m in metrics.items() if m[name]["mean"] is not None}
    if not entries:
      continue
    sign = 1.0 if larger else -1.0
    best = max(entries, key=lambda k: sign * entries[k]["mean"])
    line = f"- {words}: **{best}** ({_pm(entries[best])} %)"
    others = {k: v for k, v in entries.items() if k != ngm}
    if ngm in entries and others:
      rival = max(others, key=lambda k: sign * others[k]["mean"])
      diff = 100 * (entries[ngm]["mean"] - others[rival]["mean"])
      se = 100 * math.hypot(entries[ngm]["stderr"] or 0.0, others[rival]["stderr"] or 0.0)
      line += (f"; {ngm} − {rival} = {diff:+.2f} ± {se:.2f} points"
               f" ({'within' if abs(diff) <= 2 * se else 'beyond'} 2 standard errors)")
    lines.append(line)
  return lines


def selections(record: Mapping[str, Any]) -> list[str]:
  """Per method, the trial (1-based, ``tuning.json`` order) each objective
  would select from the same validation results, and that trial's
  hyperparameters: how much the verdict depends on the objective."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  lines = ["| method | " + " | ".join(OBJECTIVES) + " |",
           "|---|" + "---:|" * len(OBJECTIVES)]
  for label, entry in record["optimizers"].items():
    trials = entry["trials"]
    per_trial = {m: np.asarray([[np.nan if v is None else v
                                 for v in t["validation"][m]["per_seed"]] for t in trials])
                 for m in OBJECTIVES}
    cells = []
    for objective in OBJECTIVES:
      c = select(per_trial, objective)
      cells.append(f"#{c + 1} (" + ", ".join(f"{k}={v:.3g}" for k, v in
                                          trials[c]["hyperparameters"].items()) + ")")
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return lines


def _costs(folder: Path, record: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
  search = sum((e.get("search_timings") or {}).get("run_s", 0.0)
               for e in record["optimizers"].values())
  final = sum(t.get("run_s", 0.0) for t in meta.get("timings", {}).values())
  return (f"Training time here (2 shared CPU cores): searches {search / 60:.1f} min, final runs"
          f" {final / 60:.1f} min (compiling not counted; `{folder.name}/run.json`,"
          " `tuning.json`).")


def section(folder: Path, doc_dir: Path | None = None
            ) -> tuple[str, dict[str, Any], Mapping[str, Any]]:
  """The markdown of one tuned benchmark, its record and its final metrics."""
  record = read_json(folder / "tuning.json")
  result = load_result(folder)
  write_tuning_report(folder, record, result.metrics)
  train = result.meta["train"]
  search = record.get("search_train") or train
  options = {k: v for k, v in (result.meta.get("benchmark_options") or {}).items()
             if v is not None}
  protocol = (f"{result.meta['num_tasks']} tasks × {train['iterations_per_task']} iterations,"
              f" batch {train['batch_size']}; Task 1 evaluated every"
              f" {train['eval_every']} iteration(s) on {result.meta['task1_eval_size']} test"
              f" images in the final runs, every {search['eval_every']} during the search;"
              f" budget {record['budget']} configurations × {len(record['search_seeds'])}"
              f" search seeds per method, {len(record['final_seeds'])} fresh seeds in the"
              " final runs" + (f"; options {options}" if options else "") + ".")
  table = tuning_table(record, result.metrics).split("\n", 2)[2]  # without the title line
  text = "\n".join([
      f"### {record['benchmark']}", "", protocol, "", table.strip(), "",
      _costs(folder, record, result.meta), "",
      "Measured verdict:", *verdict({k: result.metrics[k] for k in record["optimizers"]}), "",
      "The configuration each objective would select from the same validation trials"
      " (`tuning.json`; the final runs used the first column's):", "",
      *selections(record), "",
      f"![trade-off]({_link(folder / 'tradeoff.png', doc_dir)})", ""])
  return text, record, result.metrics


def _link(path: Path, doc_dir: Path | None) -> str:
  """``path`` as a markdown link from a doc in ``doc_dir`` (as given without one)."""
  if doc_dir is None:
    return path.as_posix()
  return Path(os.path.relpath(path.resolve(), doc_dir.resolve())).as_posix()


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("folder", help="holds one folder per tuned benchmark")
  parser.add_argument("--doc", default=None, help="markdown file with the markers to fill")
  parser.add_argument("--figure", default=None, help="the side-by-side trade-off figure")
  args = parser.parse_args(argv)
  order = ["split_mnist", "rotated_mnist", "permuted_mnist"]
  folders = sorted((p.parent for p in Path(args.folder).glob("*/tuning.json")),
                   key=lambda p: (order.index(p.name) if p.name in order else 99, p.name))
  if not folders:
    raise SystemExit(f"error: no */tuning.json under {args.folder}")
  parts, panels = [], []
  for folder in folders:
    text, record, metrics = section(folder, Path(args.doc).parent if args.doc else None)
    parts.append(text)
    panels.append((record, metrics))
  if args.figure:
    from ngm_jax.plots import finish, new_figure  # pylint: disable=import-outside-toplevel
    from ngm_jax.plots_tradeoff import plot_tradeoff  # pylint: disable=import-outside-toplevel
    fig = new_figure(figsize=(5.0 * len(panels), 4.3))
    for i, (record, metrics) in enumerate(panels):
      ax = fig.add_subplot(1, len(panels), i + 1)
      plot_tradeoff({k: metrics[k] for k in record["optimizers"]}, ax=ax,
                    title=f"{record['benchmark']} (budget {record['budget']})")
    finish(fig, args.figure)
  body = "\n".join(parts)
  if args.doc:
    doc = Path(args.doc)
    text = doc.read_text()
    if BEGIN not in text or END not in text:
      raise SystemExit(f"error: {doc} has no {BEGIN} ... {END} block to fill")
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END),
                  lambda _: f"{BEGIN}\n{body}\n{END}", text, flags=re.S)
    doc.write_text(text)
  else:
    print(body)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
