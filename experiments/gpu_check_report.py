"""The GPU check's sections of docs/results.md: Markdown from what it measured.

Each function takes an item's numbers (as ``experiments/gpu_check.py`` logs
them) and returns the lines of its section; nothing here measures.
"""

from __future__ import annotations

import datetime
import sys
from typing import Any

from ngm_jax.cost import flops_per_iteration, peak_for
from ngm_jax.train import TrainConfig

METRICS = ("avg_acc", "avg_min_acc", "wc_acc", "avg_sg")
_METRIC_NAMES = {"avg_acc": "avg-ACC", "avg_min_acc": "avg-min-ACC", "wc_acc": "WC-ACC",
                 "avg_sg": "avg-SG"}
TITLES = {"peaks": "Matmul peaks", "mnist": "Split MNIST: compile + run, cold and warm cache",
          "profile": "Profile of a short Split CIFAR-10 run",
          "flops": "FLOPs and the fraction of peak achieved",
          "precision": "bf16 against fp32", "cifar": "Split CIFAR-10 end to end",
          "scaling": "Scaling over devices"}


def command_line(args) -> str:
  del args
  return "python experiments/gpu_check.py " + " ".join(sys.argv[1:])


def _platform(check) -> str:
  return check.record["device"].split(":")[0]


def header(check) -> list[str]:
  r = check.record
  what = (" (--tiny CPU rehearsal: synthetic data, tiny sizes; no figure here is the"
          " protocol's)" if r["tiny"] else "")
  return [f"## GPU check (issue 18): {r['device']} x{r['devices']},"
          f" {datetime.date.today().isoformat()}{what}", "",
          f"`{r['command']}` (jax {r['jax']}; {r['seeds']} seeds; optimizers"
          f" {', '.join(r['optimizers'])}; budget {r['budget_s']:.0f} s). Each subsection was"
          " appended as soon as it was measured; the numbers are in OUT/gpu_check.json."]


def peaks(values: dict[str, dict[str, Any]]) -> list[str]:
  lines = [f"### {TITLES['peaks']}", "",
           "| kind | measured (TFLOP/s) | datasheet, dense (TFLOP/s) |", "|---|---:|---:|"]
  for kind, v in values.items():
    sheet = "—" if v["datasheet"] is None else f"{v['datasheet'] / 1e12:.1f}"
    lines.append(f"| {kind} | {v['measured'] / 1e12:.3f} | {sheet} |")
  return lines + ["", "Measured: the best of 10 square matmuls (`ngm_jax.cost.device_peaks`)."]


def mnist_cache(runs: dict, check) -> list[str]:
  lines = [f"### {TITLES['mnist']}", "",
           f"`ngm-jax run --benchmark split_mnist` ({len(check.optimizers)} optimizers x"
           f" {check.seeds} seeds), each in a fresh process; the second with the compilation"
           " cache the first filled. Goal: compile + run under 10 s on a warm cache.", "",
           "| run | process wall (s) | run_benchmark wall (s) | compile_s | run_s |"
           " compile + run (s) |", "|---|---:|---:|---:|---:|---:|"]
  for name in ("cold", "warm"):
    r = runs[name]
    lines.append(f"| {name} cache | {r['process_wall_s']} | {r['wall_s']} | {r['compile_s']} |"
                 f" {r['run_s']} | {r['compile_s'] + r['run_s']:.2f} |")
  same = runs["cold"]["metrics"] == runs["warm"]["metrics"]
  return lines + ["", f"The two runs' metrics are {'equal' if same else 'NOT equal'}."]


def _metric(value) -> str:
  return "—" if value is None else f"{100 * value:.2f}"


def mnist_bf16(runs: dict, check) -> list[str]:
  fp32, bf16 = runs["warm"], runs["bf16"]
  base = "TF32" if _platform(check) == "gpu" else "fp32"
  lines = [f"### {TITLES['precision']}: Split MNIST metrics", "",
           f"The warm run ({base}: float32 at JAX's default matmul precision) against"
           " `--compute-dtype bfloat16` (parameters, gradients, optimizer state and gain"
           f" float32); mean over {check.seeds} seeds, %. bf16: run_s {bf16['run_s']} against"
           f" {fp32['run_s']}, compile_s {bf16['compile_s']} (cache cold for it).", "",
           "| optimizer | " + " | ".join(f"{_METRIC_NAMES[m]} {base} | {_METRIC_NAMES[m]} bf16"
                                        for m in METRICS) + " |",
           "|---|" + "---:|" * (2 * len(METRICS))]
  for label, m in fp32["metrics"].items():
    b = bf16["metrics"].get(label, {})
    lines.append(f"| {label} | " + " | ".join(f"{_metric(m[k])} | {_metric(b.get(k))}"
                                              for k in METRICS) + " |")
  return lines


def _achieved(per_iteration, seeds, iterations, run_s, peaks_, dtype, platform) -> str:
  if per_iteration is None or not run_s:
    return "— | —"
  achieved = per_iteration * seeds * iterations / run_s
  peak = peak_for(peaks_ or {}, dtype, platform)
  frac = "—" if peak is None else f"{100 * achieved / peak[1]:.2f} % of {peak[0]}"
  return f"{achieved / 1e9:.1f} | {frac}"


def _mflop(x) -> str:
  return "—" if x is None else f"{x / 1e6:,.1f}"


def flops(counts: dict, check, configs: dict[str, TrainConfig]) -> list[str]:
  lines = [f"### {TITLES['flops']}", "",
           "XLA's counts for one seed, NGM-SGD (`ngm_jax.cost.protocol_flops`), MFLOP:", "",
           "| benchmark | training step | Task-1 evaluation | all-task evaluation |"
           " per iteration |", "|---|---:|---:|---:|---:|"]
  for name, c in counts.items():
    lines.append(f"| {name} | {_mflop(c['train_step'])} | {_mflop(c['task1_eval'])} |"
                 f" {_mflop(c['all_tasks_eval'])} |"
                 f" {_mflop(flops_per_iteration(c, configs[name]))} |")
  mnist = check.record.get("mnist", {})
  if mnist:
    per_it = flops_per_iteration(counts["split_mnist"], configs["split_mnist"])
    iterations = 5 * configs["split_mnist"].iterations_per_task  # Split MNIST: 5 tasks
    lines += ["", "Achieved by item 2's Split MNIST runs (FLOPs per iteration x seeds x"
              " iterations / run_s):", "", "| run | optimizer | GFLOP/s | fraction of peak |",
              "|---|---|---:|---:|"]
    for run, dtype in (("warm", "float32"), ("bf16", "bfloat16")):
      for label, t in mnist.get(run, {}).get("per_optimizer", {}).items():
        lines.append(f"| {run} | {label} | " + _achieved(
            per_it, check.seeds, iterations, t["run_s"], check.record.get("peaks"), dtype,
            _platform(check)) + " |")
  return lines


def profile(rec: dict, check) -> list[str]:
  del check
  lines = [f"### {TITLES['profile']}", "",
           f"NGM-SGD, one seed, a short schedule ({rec['loop']} loop; timings"
           f" {rec['timings']['ngm_sgd']}). Trace in `{rec['folder']}`: open"
           " `plugins/profile/*/perfetto_trace.json.gz` at ui.perfetto.dev, or the folder with"
           " `xprof --port 8791 FOLDER` (pip install xprof). Top costs by self time (Python and"
           " compiler threads left out; `ngm_jax.profiling.top_costs`):", "",
           "| operation | where | self time (ms) | calls | share |", "|---|---|---:|---:|---:|"]
  for r in rec["top_costs"]:
    lines.append(f"| `{r['name'][:70]}` | {r['where']} | {r['self_ms']:.1f} | {r['count']} |"
                 f" {100 * r['share']:.1f} % |")
  return lines


def resnet_precision(rows: dict, check) -> list[str]:
  lines = [f"### {TITLES['precision']}: the ResNet's speed", "",
           f"Split CIFAR-10 (synthetic), NGM-SGD, {check.seeds} seeds, a short schedule"
           f" ({next(iter(rows.values()))['iterations']} iterations).", "",
           "| compute dtype | loop / seeds | compile_s | run_s | seed-iterations/s |",
           "|---|---|---:|---:|---:|"]
  for dtype, r in rows.items():
    lines.append(f"| {dtype} | {r['loop']} / {r['seed_axis']} | {r['compile_s']} |"
                 f" {r['run_s']} | {r['seed_iterations_per_s']} |")
  return lines


def cifar(done: dict, check, config: TrainConfig, iterations: int) -> list[str]:
  lines = [f"### {TITLES['cifar']}", "",
           f"Synthetic data in the real format, full protocol ({iterations} iterations),"
           f" {check.seeds} seeds per optimizer, one optimizer at a time, computing in"
           f" {config.compute_dtype}. Goal: the five under 180 s after compiling.", "",
           "| optimizer | loop / seeds | compile_s | run_s | wall (s) | GFLOP/s |"
           " fraction of peak |", "|---|---|---:|---:|---:|---:|---:|"]
  counts = check.record.get("flops", {}).get("split_cifar10")
  per_it = flops_per_iteration(counts, config) if counts else None
  for name, t in done.items():
    lines.append(f"| {name} | {t['loop']} / {t['seed_axis']} | {t['compile_s']} | {t['run_s']} |"
                 f" {t['wall_s']} | " + _achieved(per_it, check.seeds, iterations, t["run_s"],
                                                   check.record.get("peaks"),
                                                   config.compute_dtype, _platform(check))
                 + " |")
  total_run = sum(t["run_s"] for t in done.values())
  total_compile = sum(t["compile_s"] for t in done.values())
  missing = [o for o in check.optimizers if o not in done]
  lines += ["", f"{len(done)} of {len(check.optimizers)} optimizers: run {total_run:.1f} s after"
            f" {total_compile:.1f} s of compiling."
            + (f" Not run (time budget): {', '.join(missing)}; all"
               f" {len(check.optimizers)} extrapolated from the mean of those run (not measured):"
               f" {total_run / len(done) * len(check.optimizers):.0f} s of running."
               if missing and done else "")]
  return lines


def scaling(rows: dict, check) -> list[str]:
  lines = [f"### {TITLES['scaling']}", ""]
  if not rows:
    del check
    return lines + ["One device here: not measured (needs N > 1 devices)."]
  lines += ["| devices | seeds run by | seeds | compile_s | run_s | seed-iterations/s |"
            " speed-up |", "|---:|---|---:|---:|---:|---:|---:|"]
  one = rows.get("1", {}).get("seed_iterations_per_s")
  for devices, r in rows.items():
    up = f"{r['seed_iterations_per_s'] / one:.2f}x" if one else "—"
    lines.append(f"| {devices} | {r['seed_axis']} | {r['seeds']} | {r['compile_s']} |"
                 f" {r['run_s']} | {r['seed_iterations_per_s']} | {up} |")
  return lines
