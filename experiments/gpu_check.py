"""The accelerator check: what issue 18 asks of one GPU, in one command, into docs/results.md.

    bash experiments/gpu_check.sh MNIST_DIR [OUT]                        # on the GPU machine
    python experiments/gpu_check.py --tiny --out /tmp/check --results /tmp/results.md  # CPU

Each item appends its section to ``--results`` (default ``docs/results.md``)
and to ``OUT/gpu_check.md`` as soon as it is measured, and its numbers to
``OUT/gpu_check.json``, so that a run cut short keeps what it measured:

1. ``peaks``: the device's matmul peaks (fp32, TF32 and bf16 on a GPU, fp32 on
   a CPU; :func:`ngm_jax.cost.device_peaks`), with NVIDIA's datasheet figures.
2. ``mnist``: Split MNIST, full protocol, five optimizers x five seeds, as a
   user runs it (``ngm-jax run`` in a fresh process), twice: with an empty
   persistent compilation cache, then with the cache the first filled
   (goal: compile + run under 10 s warm); then once more with
   ``--compute-dtype bfloat16``.
3. ``profile``: a ``jax.profiler`` trace of a short Split CIFAR-10 run (one
   optimizer, one seed; OUT/profile) and its top costs.
4. ``flops``: XLA's FLOPs of a training step and the evaluations (the MLP and
   the slim ResNet-18), and the FLOP/s and fraction of peak the item-2 runs
   achieved.
5. ``precision``: bf16 against fp32 (TF32 on a GPU): Split MNIST's metrics
   (item 2's runs) and the ResNet's speed on a short run.
6. ``cifar``: Split CIFAR-10 (synthetic data in the real format: 50,000 +
   10,000 images 32x32x3), full protocol, five optimizers x five seeds, end
   to end (goal: under 3 min after compiling). One optimizer at a time; an
   optimizer the time budget has no room for is not started, and the five
   are extrapolated from those done. ``--cifar-compute-dtype bfloat16`` runs
   it in bf16.
7. ``scaling``: with N > 1 devices, the short ResNet run on 1 and on N
   devices (one seed per device).

``--budget-s`` (default 540) is the time the check may take: an item is not
started with less left than it needs, and says so; an item that fails says
why in its section and the check goes on. ``--tiny`` rehearses every
item on a CPU in a few minutes: learnable synthetic MNIST written to OUT,
small synthetic CIFAR, a slim ResNet of width 4, 2 tasks' worth of iterations.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from experiments import gpu_check_report as report  # pylint: disable=g-import-not-at-top
from experiments.bench import synthetic_dataset
from ngm_jax import benchmarks
from ngm_jax.cli.args import comma_separated
from ngm_jax.cost import device_peaks, protocol_flops
from ngm_jax.data import ImageDataset, write_idx
from ngm_jax.models import CLASSIFIER, SlimResNet18
from ngm_jax.optimizers import OPTIMIZERS
from ngm_jax.profiling import top_costs
from ngm_jax.profiling import trace as profile_trace
from ngm_jax.results import load_result
from ngm_jax.runner import network, run_benchmark
from ngm_jax.streams import split_cifar10

ROOT = Path(__file__).resolve().parents[1]
ITEMS = ("peaks", "mnist", "profile", "flops", "precision", "cifar", "scaling")
#: Seconds an item needs on a GPU (compiling included) before it is started.
NEEDS = {"peaks": 20, "mnist": 150, "flops": 60, "profile": 60, "precision": 90,
         "cifar": 90, "scaling": 60}


class Check:
  """The check's state: options, what it measured, its clock and its outputs."""

  def __init__(self, args):
    self.args, self.out = args, Path(args.out)
    self.out.mkdir(parents=True, exist_ok=True)
    self.start = time.perf_counter()
    self.tiny = args.tiny
    self.seeds = 2 if args.tiny else 5
    self.optimizers = list(args.optimizers or (("ngm_sgd", "adam") if args.tiny else OPTIMIZERS))
    device = jax.devices()[0]
    self.record = {"device": f"{device.platform}: {device.device_kind}",
                   "devices": jax.device_count(), "jax": jax.__version__, "tiny": args.tiny,
                   "seeds": self.seeds, "optimizers": self.optimizers,
                   "budget_s": args.budget_s, "command": report.command_line(args)}
    (self.out / "gpu_check.md").write_text("")
    self.save()

  def elapsed(self) -> float:
    return time.perf_counter() - self.start

  def left(self) -> float:
    return self.args.budget_s - self.elapsed()

  def save(self) -> None:
    (self.out / "gpu_check.json").write_text(json.dumps(self.record, indent=1) + "\n")

  def log(self, key: str, value) -> None:
    self.record[key] = value
    self.save()
    print(f"{key}: {json.dumps(value)}", flush=True)

  def section(self, lines: list[str]) -> None:
    """Appends ``lines`` (Markdown) to the results file and OUT/gpu_check.md."""
    text = "\n".join(lines).rstrip() + "\n\n"
    for path in (Path(self.args.results), self.out / "gpu_check.md"):
      with open(path, "a", encoding="utf-8") as f:
        f.write(text)
    print(text, flush=True)


# --- Data and configs --------------------------------------------------------


def learnable_mnist(per_class: int, test_per_class: int, seed: int = 0) -> ImageDataset:
  """MNIST-shaped uint8 images whose bright rows encode the class (a network
  learns it), noise added."""
  rng = np.random.default_rng(seed)

  def split(n):
    labels = np.repeat(np.arange(10, dtype=np.uint8), n)
    images = rng.integers(0, 40, (len(labels), 28, 28), dtype=np.uint8)
    for c in range(10):
      images[labels == c, 2 + 2 * c:4 + 2 * c, 4:24] = 250
    order = rng.permutation(len(labels))
    return images[order], labels[order]

  return ImageDataset(*split(per_class), *split(test_per_class))


def mnist_dir(check: Check) -> Path:
  """``--data-dir``, or (``--tiny`` without it) learnable synthetic IDX files in OUT."""
  if check.args.data_dir:
    return Path(check.args.data_dir)
  folder = check.out / "synthetic_mnist"
  folder.mkdir(exist_ok=True)
  data = learnable_mnist(60, 20)
  for name, array in (("train-images-idx3-ubyte", data.train_images),
                      ("train-labels-idx1-ubyte", data.train_labels),
                      ("t10k-images-idx3-ubyte", data.test_images),
                      ("t10k-labels-idx1-ubyte", data.test_labels)):
    write_idx(folder / name, array)
  return folder


def mnist_config(check: Check):
  """Split MNIST's registry config (``--tiny``: 4 iterations per task)."""
  config = benchmarks.get("split_mnist").config
  if check.tiny:
    config = dataclasses.replace(config, iterations_per_task=4, task_eval_every=2)
  return config


def cifar_setup(check: Check):
  """The synthetic Split CIFAR-10 stream, its config and network keyword
  arguments (the registry's; ``--tiny``: small sizes, a width-4 ResNet)."""
  record = benchmarks.get("split_cifar10")
  sizes = (500, 100) if check.tiny else (50000, 10000)
  stream = split_cifar10(synthetic_dataset("cifar10", *sizes))
  config = dataclasses.replace(record.config, compute_dtype=check.args.cifar_compute_dtype)
  net = {"augment": record.augment}
  if check.tiny:
    config = dataclasses.replace(config, iterations_per_task=2, task_eval_every=2, batch_size=8,
                                 eval_batch_size=None)
    net.update(model=SlimResNet18(num_classes=10, width=4, stages=(1, 1)), where=CLASSIFIER)
  return stream, config, net


def short(config, iterations_per_task: int = 40):
  """``config`` with at most ``iterations_per_task`` (the speed items)."""
  i = min(iterations_per_task, config.iterations_per_task)
  return dataclasses.replace(config, iterations_per_task=i,
                             task_eval_every=min(config.task_eval_every, i))


# --- Items -------------------------------------------------------------------


def item_peaks(check: Check) -> None:
  peaks = device_peaks()
  check.log("peaks", peaks)
  check.section(report.peaks(peaks))


def cli_run(check: Check, name: str, *flags: str, env: dict | None = None) -> dict:
  """``ngm-jax run`` of Split MNIST in a fresh process into OUT/name; its
  wall time, compile and run times, and metrics."""
  folder = check.out / name
  cmd = [sys.executable, "-m", "ngm_jax.cli", "run", "--benchmark", "split_mnist",
         "--data-dir", str(mnist_dir(check)), "--out", str(folder), "--overwrite",
         "--no-progress", "--checkpoint-every-s", "0", "--seeds", str(check.seeds),
         "--optimizers", ",".join(check.optimizers), *flags]
  config = mnist_config(check)
  cmd += ["--iterations-per-task", str(config.iterations_per_task),
          "--task-eval-every", str(config.task_eval_every)]
  # This process holds most of a GPU's memory (JAX preallocates 75 %): the child
  # allocates what it uses from the rest.
  environ = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
             **(env or {})}
  t0 = time.perf_counter()
  proc = subprocess.run(cmd, cwd=ROOT, env=environ, text=True, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, check=False)
  wall = round(time.perf_counter() - t0, 2)
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
  result = load_result(folder)
  timings = result.meta["timings"]
  return {"process_wall_s": wall, "wall_s": result.meta.get("wall_s"),
          "compile_s": round(sum(t["compile_s"] for t in timings.values()), 2),
          "run_s": round(sum(t["run_s"] for t in timings.values()), 2),
          "per_optimizer": timings, "folder": str(folder),
          "metrics": {label: {m: result.metrics[label][m]["mean"] for m in report.METRICS}
                      for label in result.labels}}


def item_mnist(check: Check) -> None:
  cache = check.out / "compile_cache_mnist"
  shutil.rmtree(cache, ignore_errors=True)  # the first run compiles from scratch
  env = {"NGM_JAX_COMPILE_CACHE": str(cache)}
  runs = {}
  for name, flags in (("cold", ()), ("warm", ()), ("bf16", ("--compute-dtype", "bfloat16"))):
    runs[name] = cli_run(check, f"mnist_{name}", *flags, env=env)
    check.log("mnist", runs)
    if name == "warm":
      check.section(report.mnist_cache(runs, check))
  check.section(report.mnist_bf16(runs, check))


def item_flops(check: Check) -> None:
  mnist = benchmarks.load_benchmark("split_mnist", mnist_dir(check))  # item 2's data
  counts = {"split_mnist": protocol_flops(mnist, "ngm_sgd", mnist_config(check),
                                          **network(mnist)[0])}
  stream, config, net = cifar_setup(check)
  counts["split_cifar10"] = protocol_flops(stream, "ngm_sgd", config, **network(stream, **net)[0])
  check.log("flops", counts)
  check.section(report.flops(counts, check, {"split_mnist": mnist_config(check),
                                             "split_cifar10": config}))


def item_profile(check: Check) -> None:
  stream, config, net = cifar_setup(check)
  folder = check.out / "profile"
  shutil.rmtree(folder, ignore_errors=True)
  with profile_trace(folder):
    result = run_benchmark(stream, ["ngm_sgd"], short(config, 20), num_seeds=1,
                           show_progress=False, **net)
  costs = top_costs(folder, 12)
  check.log("profile", {"folder": str(folder), "timings": result.meta["timings"],
                        "loop": result.meta["loop"], "top_costs": costs})
  check.section(report.profile(check.record["profile"], check))


def item_precision(check: Check) -> None:
  stream, config, net = cifar_setup(check)
  rows = {}
  for dtype in ("float32", "bfloat16"):
    cfg = dataclasses.replace(short(config), compute_dtype=dtype)
    result = run_benchmark(stream, ["ngm_sgd"], cfg, num_seeds=check.seeds,
                           show_progress=False, **net)
    t = result.meta["timings"]["ngm_sgd"]
    iterations = stream.num_tasks * cfg.iterations_per_task
    rows[dtype] = {**t, "seed_iterations_per_s": round(check.seeds * iterations / t["run_s"], 2),
                   "iterations": iterations, "loop": result.meta["loop"],
                   "seed_axis": result.meta["seed_axis"]}
    check.log("resnet_precision", rows)
  check.section(report.resnet_precision(rows, check))


def item_cifar(check: Check) -> None:
  stream, config, net = cifar_setup(check)
  done, last_wall = {}, None
  for name in check.optimizers:
    need = last_wall * 1.1 if last_wall else NEEDS["cifar"]
    if not check.tiny and check.left() < need:
      check.log("cifar_stopped", f"{name}: {check.left():.0f} s left, about {need:.0f} s needed")
      break
    t0 = time.perf_counter()
    result = run_benchmark(stream, [name], config, num_seeds=check.seeds, show_progress=False,
                           **net)
    last_wall = time.perf_counter() - t0
    done[name] = {**result.meta["timings"][name], "wall_s": round(last_wall, 2),
                  "loop": result.meta["loop"], "seed_axis": result.meta["seed_axis"]}
    check.log("cifar", done)
  check.section(report.cifar(done, check, config, stream.num_tasks * config.iterations_per_task))


def item_scaling(check: Check) -> None:
  n = jax.device_count()
  if n == 1:
    check.section(report.scaling({}, check))
    return
  stream, config, net = cifar_setup(check)
  cfg = short(config)
  rows = {}
  for devices in sorted({1, n}):
    result = run_benchmark(stream, ["ngm_sgd"], cfg, num_seeds=max(check.seeds, n),
                           devices=devices, seed_axis="shard" if devices > 1 else "auto",
                           show_progress=False, **net)
    t = result.meta["timings"]["ngm_sgd"]
    seeds = max(check.seeds, n)
    rows[str(devices)] = {**t, "seeds": seeds, "seed_axis": result.meta["seed_axis"],
                          "seed_iterations_per_s": round(
                              seeds * stream.num_tasks * cfg.iterations_per_task / t["run_s"], 2)}
    check.log("scaling", rows)
  check.section(report.scaling(rows, check))


RUNNERS = {"peaks": item_peaks, "mnist": item_mnist, "flops": item_flops,
           "profile": item_profile, "precision": item_precision, "cifar": item_cifar,
           "scaling": item_scaling}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data-dir", default=None,
                      help="folder with the four MNIST IDX files (--tiny: synthetic if not given)")
  parser.add_argument("--out", default="results/gpu_check")
  parser.add_argument("--results", default=str(ROOT / "docs" / "results.md"),
                      help="the Markdown file each item's section is appended to")
  parser.add_argument("--tiny", action="store_true", help="rehearse on a CPU: tiny sizes")
  parser.add_argument("--items", default=ITEMS, help=f"comma-separated, of {', '.join(ITEMS)}",
                      type=comma_separated(str, "--items", choices=ITEMS, noun="item"))
  parser.add_argument("--optimizers", default=None,
                      type=comma_separated(str, "--optimizers", choices=OPTIMIZERS,
                                           noun="optimizer"),
                      help="default: all five (--tiny: ngm_sgd,adam)")
  parser.add_argument("--cifar-compute-dtype", choices=("float32", "bfloat16"),
                      default="float32", help="the dtype the ResNet computes in (items 3-7;"
                                              " the precision item compares both)")
  parser.add_argument("--budget-s", type=float, default=540.0,
                      help="seconds the check may take; an item that does not fit is skipped")
  args = parser.parse_args(argv)
  if not args.data_dir and not args.tiny and "mnist" in args.items:
    parser.error("--data-dir: the MNIST IDX folder is needed (or --tiny, or leave out the"
                 " mnist item with --items)")
  if args.tiny and args.budget_s == 540.0:
    args.budget_s = 3600.0  # a loaded CPU: the rehearsal runs every item
  check = Check(args)
  check.section(report.header(check))
  for item in ITEMS:
    if item not in args.items:
      continue
    if check.left() < NEEDS[item] and not check.tiny:
      check.section([f"### {report.TITLES[item]}", "",
                     f"Not measured: {check.left():.0f} s of the {args.budget_s:.0f} s budget"
                     f" left, about {NEEDS[item]} s needed."])
      continue
    try:
      RUNNERS[item](check)
    except Exception as err:  # pylint: disable=broad-except  # one failed item, not the check
      check.log(f"{item}_failed", f"{type(err).__name__}: {err}"[:2000])
      check.section([f"### {report.TITLES[item]}", "",
                     f"Failed after {check.elapsed():.0f} s: `{type(err).__name__}: "
                     f"{str(err)[:500]}`"])
  check.log("elapsed_s", round(check.elapsed(), 1))
  check.section([f"The check took {check.elapsed():.0f} s in all."])
  return 0


if __name__ == "__main__":
  sys.exit(main())
