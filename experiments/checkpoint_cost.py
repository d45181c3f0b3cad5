"""What checkpointing costs a run: one optimizer's run with and without checkpoints.

    python -m experiments.checkpoint_cost --data-dir DIR --json docs/bench/checkpoint_overhead.json

Runs :func:`ngm_jax.run_benchmark` twice in this process, one after the
other, on the benchmark's registry config (default: Split MNIST, NGM-SGD,
five seeds, Task-1 evaluation at every iteration): first with checkpoints
(the default: the training carry saved with orbax-checkpoint at every task
boundary and at most every 60 s), then without (``checkpoint_every_s=0``),
each into a temporary folder, the compilation cache off. Records each run's
wall, compile and run time, whether the two runs' curves are bit-identical,
and the seconds and bytes of every checkpoint written (each
:meth:`ngm_jax.checkpoint.RunCheckpoints.save` call timed). The 1-minute
load average before and after each run says how shared the machine was.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ngm_jax import benchmarks, checkpoint
from ngm_jax.runner import run_benchmark


def _folder_bytes(folder: Path) -> int:
  return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def timed_run(stream, optimizer: str, config, num_seeds: int, out: Path,
              checkpoint_every_s: float) -> tuple[dict[str, Any], Any]:
  """One run into ``out`` with every checkpoint save timed; returns (record, result)."""
  saves: list[dict[str, float]] = []
  original = checkpoint.RunCheckpoints.save

  def save(self, step, carry, records, meta):
    start = time.perf_counter()
    original(self, step, carry, records, meta)
    saves.append({"s": round(time.perf_counter() - start, 4),
                  "bytes": _folder_bytes(self.path / str(step))})

  load = [os.getloadavg()[0]]
  checkpoint.RunCheckpoints.save = save
  try:
    start = time.perf_counter()
    result = run_benchmark(stream, [optimizer], config, num_seeds=num_seeds, out=out,
                           show_progress=False, checkpoint_every_s=checkpoint_every_s,
                           compile_cache=False)
    wall = time.perf_counter() - start
  finally:
    checkpoint.RunCheckpoints.save = original
  load.append(os.getloadavg()[0])
  timing = result.meta["timings"][optimizer]
  return {"checkpoint_every_s": checkpoint_every_s, "wall_s": round(wall, 2),
          "compile_s": timing["compile_s"], "run_s": timing["run_s"],
          "checkpoints": saves, "checkpoint_s": round(sum(s["s"] for s in saves), 3),
          "load_average_1min": load}, result


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--benchmark", default="split_mnist", choices=benchmarks.names())
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--optimizer", default="ngm_sgd")
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--iterations-per-task", type=int, default=None,
                      help="shorten the schedule (default: the registry config's)")
  parser.add_argument("--json", default=None, help="write the record here")
  args = parser.parse_args(argv)
  record = benchmarks.get(args.benchmark)
  config = record.config
  if args.iterations_per_task:
    config = dataclasses.replace(config, iterations_per_task=args.iterations_per_task)
  stream = benchmarks.load_benchmark(args.benchmark, args.data_dir)
  runs, curves = {}, {}
  with tempfile.TemporaryDirectory() as tmp:
    for name, every in (("with_checkpoints", 60.0), ("without_checkpoints", 0.0)):
      runs[name], result = timed_run(stream, args.optimizer, config, args.seeds,
                                     Path(tmp) / name, every)
      curves[name] = result.curves[args.optimizer]
      print(name, json.dumps({k: v for k, v in runs[name].items() if k != "checkpoints"}),
            flush=True)
  on, off = curves["with_checkpoints"], curves["without_checkpoints"]
  out = {"command": "python -m experiments.checkpoint_cost " + " ".join(
             sys.argv[1:] if argv is None else argv),
         "benchmark": args.benchmark, "optimizer": args.optimizer, "seeds": args.seeds,
         "iterations_per_task": config.iterations_per_task, "cpu_count": os.cpu_count(),
         "curves_bit_identical": all(np.array_equal(on[k], off[k]) for k in on),
         **runs}
  if args.json:
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
  print(f"curves bit-identical: {out['curves_bit_identical']}; checkpoints"
        f" {len(runs['with_checkpoints']['checkpoints'])} in"
        f" {runs['with_checkpoints']['checkpoint_s']} s")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
