"""The accelerator check: the paper's protocols timed on a GPU, in one command.

    bash experiments/gpu_check.sh MNIST_DIR [OUT]            # on the GPU machine
    python experiments/gpu_check.py --data-dir MNIST_DIR --tiny --out /tmp/check  # CPU rehearsal

Measures, writing each result to OUT/gpu_check.json as soon as it is known
(and a Markdown summary, OUT/gpu_check.md, at the end):

1. Split MNIST, full protocol (5 tasks x 200 iterations, Task 1 evaluated every
   iteration), five optimizers x five seeds: compile and run time per
   optimizer (goal: under 10 s of running for all five).
2. Split CIFAR-10, full protocol (5 tasks x 400 iterations, batch 256,
   augmentation, slim ResNet-18) on synthetic data in the real format (50,000
   + 10,000 images 32x32x3), five optimizers x five seeds (goal: under 5 min).
3. The ResNet's seeds vmapped in one program against one seed's program called
   per seed (sequential) and, with several devices, sharded over them: the
   vmapped program split over the devices, and one seed per device
   (``seed_axis="shard"``, no vmap) (40 iterations per task: iterations per
   second is the figure).
4. Split MNIST metrics at the default matmul precision (TF32 on recent NVIDIA
   GPUs) against ``jax.default_matmul_precision("highest")``.
5. Peak device memory after each item (``memory_stats()["peak_bytes_in_use"]``,
   where the device reports it).

``--tiny`` shrinks every item (2 seeds, 2 iterations per task, small synthetic
CIFAR) to rehearse the script on a CPU in a minute or two.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from ngm_jax import benchmarks  # pylint: disable=g-import-not-at-top
from ngm_jax.cli.args import comma_separated
from ngm_jax.dataset import ImageDataset
from ngm_jax.optimizers import OPTIMIZERS
from ngm_jax.runner import run_benchmark
from ngm_jax.streams import split_cifar10


def synthetic_cifar10(train: int, test: int, seed: int = 0) -> ImageDataset:
  """Random uint8 images and balanced labels in CIFAR-10's format."""
  rng = np.random.default_rng(seed)
  return ImageDataset(
      rng.integers(0, 256, (train, 32, 32, 3), dtype=np.uint8),
      np.repeat(np.arange(10, dtype=np.int32), train // 10),
      rng.integers(0, 256, (test, 32, 32, 3), dtype=np.uint8),
      np.repeat(np.arange(10, dtype=np.int32), test // 10))


def peak_memory_mb() -> float | None:
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return None if peak is None else round(peak / 2**20, 1)


def _timings(result) -> dict:
  t = result.meta["timings"]
  return {"per_optimizer": t,
          "compile_s": round(sum(v["compile_s"] for v in t.values()), 2),
          "run_s": round(sum(v["run_s"] for v in t.values()), 2)}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data-dir", required=True, help="folder with the four MNIST IDX files")
  parser.add_argument("--out", default="results/gpu_check")
  parser.add_argument("--tiny", action="store_true", help="rehearse on a CPU: tiny sizes")
  parser.add_argument("--skip", default=(), help="comma-separated items to skip (1..4)",
                      type=comma_separated(str, "--skip", choices=("1", "2", "3", "4"),
                                           noun="item"))
  args = parser.parse_args(argv)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  skip = set(args.skip)
  seeds = 2 if args.tiny else 5
  device = jax.devices()[0]
  report = {"device": f"{device.platform}: {device.device_kind}", "devices": jax.device_count(),
            "jax": jax.__version__, "tiny": args.tiny, "seeds": seeds}

  def save():
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")

  def log(key, value):
    report[key] = value
    save()
    print(f"{key}: {json.dumps(value)}", flush=True)

  save()
  mnist = benchmarks.load_benchmark("split_mnist", args.data_dir)
  mnist_config = benchmarks.get("split_mnist").config
  if args.tiny:
    mnist_config = dataclasses.replace(mnist_config, iterations_per_task=2, task_eval_every=2)

  mnist_default = None  # item 1's run, item 4's default precision
  if "1" not in skip:
    t0 = time.perf_counter()
    mnist_default = run_benchmark(mnist, list(OPTIMIZERS), mnist_config, num_seeds=seeds,
                                  show_progress=False)
    wall_s = round(time.perf_counter() - t0, 2)
    log("split_mnist", {**_timings(mnist_default), "wall_s": wall_s, "goal_run_s": 10,
                        "loop": mnist_default.meta["loop"],
                        "seed_axis": mnist_default.meta["seed_axis"],
                        "peak_memory_mb": peak_memory_mb()})

  record = benchmarks.get("split_cifar10")
  cifar_config = record.config
  sizes = (2000, 500) if args.tiny else (50000, 10000)
  cifar = split_cifar10(synthetic_cifar10(*sizes))
  if args.tiny:
    cifar_config = dataclasses.replace(cifar_config, iterations_per_task=2, task_eval_every=2,
                                       batch_size=32, eval_batch_size=250)
  if "2" not in skip:
    # One optimizer at a time, each logged when done: a run cut short by a time
    # limit still says how far it got.
    per_optimizer = {}
    for name in OPTIMIZERS:
      result = run_benchmark(cifar, [name], cifar_config, num_seeds=seeds,
                             augment=record.augment, show_progress=False)
      per_optimizer[name] = result.meta["timings"][name]
      log("split_cifar10_synthetic", {
          "per_optimizer": per_optimizer,
          "optimizers_done": f"{len(per_optimizer)} of {len(OPTIMIZERS)}",
          "compile_s": round(sum(v["compile_s"] for v in per_optimizer.values()), 2),
          "run_s": round(sum(v["run_s"] for v in per_optimizer.values()), 2),
          "goal_run_s": 300, "loop": result.meta["loop"],
          "seed_axis": result.meta["seed_axis"], "peak_memory_mb": peak_memory_mb()})

  if "3" not in skip:
    # Iterations per second is what differs between the seed axes: 40 iterations
    # per task (200 in all) measure it without spending the device's time budget.
    short = dataclasses.replace(cifar_config, iterations_per_task=min(
        40, cifar_config.iterations_per_task), task_eval_every=min(
            20, cifar_config.task_eval_every))
    modes = {"vmap": dict(loop="scan", seed_axis="vmap", devices=1),
             "sequential": dict(loop="chunked", seed_axis="sequential", devices=1)}
    if jax.device_count() > 1:
      modes["sharded"] = dict(loop="scan", seed_axis="vmap", devices=jax.device_count())
      modes["one_per_device"] = dict(loop="scan", seed_axis="shard",
                                     devices=jax.device_count())
    rows = {}
    for name, how in modes.items():
      result = run_benchmark(cifar, ["ngm_sgd"], short, num_seeds=seeds,
                             augment=record.augment, show_progress=False, **how)
      rows[name] = {**result.meta["timings"]["ngm_sgd"], "loop": result.meta["loop"],
                    "seed_axis": result.meta["seed_axis"], "peak_memory_mb": peak_memory_mb()}
      log("resnet_seed_axis", rows)  # after each mode: a cut-short run keeps what it measured

  if "4" not in skip:
    rows = {}
    for precision in ("default", "highest"):
      t0 = time.perf_counter()
      if precision == "default" and mnist_default is not None:
        result, wall_s = mnist_default, report["split_mnist"]["wall_s"]  # item 1's run
      else:
        with jax.default_matmul_precision(None if precision == "default" else "highest"):
          result = run_benchmark(mnist, list(OPTIMIZERS), mnist_config, num_seeds=seeds,
                                 show_progress=False)
        wall_s = round(time.perf_counter() - t0, 2)
      rows[precision] = {
          "wall_s": wall_s, **_timings(result),
          "metrics": {label: {m: result.metrics[label][m]["mean"]
                              for m in ("avg_acc", "avg_min_acc", "wc_acc", "avg_sg")}
                      for label in result.labels}}
    log("matmul_precision", rows)

  lines = [f"# GPU check: {report['device']} x{report['devices']}, jax {report['jax']}"
           + (" (tiny rehearsal)" if args.tiny else ""), ""]
  if "split_mnist" in report:
    r = report["split_mnist"]
    lines.append(f"- Split MNIST, 5 optimizers x {seeds} seeds: run {r['run_s']} s after"
                 f" {r['compile_s']} s of compiling (goal < 10 s); peak {r['peak_memory_mb']} MB")
  if "split_cifar10_synthetic" in report:
    r = report["split_cifar10_synthetic"]
    lines.append(f"- Split CIFAR-10 (synthetic), 5 optimizers x {seeds} seeds: run {r['run_s']} s"
                 f" after {r['compile_s']} s ({r['loop']}/{r['seed_axis']}; goal < 300 s);"
                 f" peak {r['peak_memory_mb']} MB")
  for name, r in report.get("resnet_seed_axis", {}).items():
    lines.append(f"- ResNet seeds {name}: run {r['run_s']} s, compile {r['compile_s']} s")
  for name, r in report.get("matmul_precision", {}).items():
    m = r["metrics"].get("ngm_sgd", {})
    lines.append(f"- matmul precision {name}: run {r['run_s']} s; ngm_sgd "
                 + ", ".join(f"{k} {100 * v:.2f} %" for k, v in m.items() if v is not None))
  (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))
  return 0


if __name__ == "__main__":
  sys.exit(main())
