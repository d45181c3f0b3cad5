"""Top Hessian eigenvalue in W and in W_eff around Split MNIST's task boundaries.

    python -m experiments.curvature --data-dir ../shared/data/mnist     # results/figures/curvature.{png,json}

Trains the paper's MLP with NGM-SGD (the ``split_mnist`` config: lr 0.01, γ 0.9,
g0 1, η 0.4, batch 128, 200 iterations per task, 5 tasks; one seed) with the
library's own training step (``ngm_jax.train.make_train_parts``: gain on every
kernel, the joint sampler; ``parts.step`` in a compiled ``fori_loop`` that takes
the data as an argument), so the run is ``make_train``'s run for that seed, and, after
``b + offset`` iterations for every task boundary ``b`` and every ``--offsets``
value, estimates by power iteration (``--power-iters`` Hessian-vector products
at most) the top Hessian eigenvalue of the training loss

- ``λ_W``: as a function of the raw params ``W`` (the loss ``L(g·W)`` that SGD
  steps on), and
- ``λ_Weff``: as a function of the effective params ``W_eff = g·W`` directly,

on a fixed minibatch of ``--hvp-batch`` training examples drawn uniformly from
the tasks seen at that iteration (the joint data the last step sampled from;
one fixed key, so the same rows at every measurement within a task). With every
MLP kernel gain-modulated, ``λ_W = g²·λ_Weff`` exactly; the measured ratio checks
the estimator. Takes about 30-40 s on two busy CPU cores (1 min with --power-iters 100).
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
import jax.numpy as jnp
import numpy as np
import optax

from ngm_jax import benchmarks, plots_analysis
from ngm_jax.curvature import ngm_top_eigenvalues
from ngm_jax.data import DataUnavailableError
from ngm_jax.benchmarks import load_benchmark
from ngm_jax.cli.args import comma_separated
from ngm_jax.gain import effective_params, gain_of
from ngm_jax.models import standardise_mnist
from ngm_jax.placement import gain_mask, kernels
from ngm_jax.sampling import sample_joint_indices
from ngm_jax.train import TrainConfig, TrainData, TrainState, make_train_parts


# fold_in constant for the measurement keys (Hessian batch, power-iteration
# start vectors), kept apart from the training key.
_MEASURE_STREAM = 0x6375

_OFFSETS = comma_separated(int, "--offsets", sort_unique=True)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m experiments.curvature", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data-dir", default=None,
                      help="folder with MNIST's IDX files; default $NGM_JAX_DATA_DIR, else tensorflow-datasets or a download")
  parser.add_argument("--out", default="results/figures/curvature.png",
                      help="output PNG; the JSON goes beside it with .json (default: %(default)s)")
  parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default: %(default)s)")
  parser.add_argument("--tasks", type=int, default=5, help="tasks to train, 2..5 (default: %(default)s)")
  parser.add_argument("--offsets", type=_OFFSETS, default=_OFFSETS("-5,1,3,5,10,20"),
                      help="iterations relative to each task boundary, comma-separated; write --offsets=-5,1,... when the first is negative (default: -5,1,3,5,10,20)")
  parser.add_argument("--hvp-batch", type=int, default=512,
                      help="examples in the fixed minibatch the Hessian is taken on (default: %(default)s)")
  parser.add_argument("--power-iters", type=int, default=20,
                      help="most Hessian-vector products per estimate (default: %(default)s)")
  parser.add_argument("--tol", type=float, default=1e-3,
                      help="stop once successive estimates differ by at most tol·|λ| (default: %(default)s)")
  for flag in ("learning_rate", "gamma", "g0", "eta"):
    parser.add_argument("--" + flag.replace("_", "-"), type=float, default=None,
                        help=f"override the split_mnist config's {flag}")
  parser.add_argument("--batch-size", type=int, default=None, help="override the training batch size")
  parser.add_argument("--iterations-per-task", type=int, default=None, help="override I")
  return parser


def _config(args) -> TrainConfig:
  cfg = benchmarks.get("split_mnist").config
  overrides = {k: getattr(args, k) for k in ("learning_rate", "gamma", "g0", "eta",
                                             "batch_size", "iterations_per_task")
               if getattr(args, k) is not None}
  # task_eval_every must divide I; it is unused here.
  return dataclasses.replace(cfg, **overrides, eval_every=1, task_eval_every=1)


def measurement_iterations(offsets, iterations_per_task, num_tasks):
  """``[(iteration, boundary, offset)]``, iterations in ``[1, K·I]``, sorted."""
  total = iterations_per_task * num_tasks
  points = {(k * iterations_per_task + o, k * iterations_per_task, o)
            for k in range(1, num_tasks) for o in offsets}
  return sorted(p for p in points if 1 <= p[0] <= total)


def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  if not 2 <= args.tasks <= 5:
    print(f"error: --tasks={args.tasks} is not allowed; it must be in [2, 5].", file=sys.stderr)
    return 2
  try:
    cfg = _config(args)
    stream = load_benchmark("split_mnist", args.data_dir)
  except (ValueError, DataUnavailableError) as err:
    print(f"error: {err}", file=sys.stderr)
    return 2
  t_start = time.perf_counter()
  iters, total = cfg.iterations_per_task, cfg.iterations_per_task * args.tasks
  # The library's own training: the paper's MLP, gain on every kernel, the
  # split_mnist joint sampler, one optimizer step per parts.step.
  parts = make_train_parts(stream, "ngm_sgd", cfg, where=kernels, preprocess=standardise_mnist)
  mask = lambda params: gain_mask(params, kernels)
  ends = jnp.asarray(stream.train_task_ends)

  @jax.jit
  def advance(state: TrainState, gains, data: TrainData, stop):
    """Optimizer steps until ``state.step == stop``; gains[t] = gain after t+1 steps."""
    def body(_, carry):
      state, gains = carry
      step = state.step
      state, record = parts.step(state, data)
      return state, gains.at[step].set(record["gain"])
    return jax.lax.fori_loop(state.step, stop, body, (state, gains))

  @jax.jit
  def measure(state: TrainState, data: TrainData, rows, key):
    """λ_W and λ_Weff of the training loss on ``rows``, with the network and
    preprocessing the training step uses (this is the measurement, not a step)."""
    images, labels = data.train_images[rows], data.train_labels[rows]

    def loss(w_eff):
      logits, _ = parts.model.apply(w_eff, state.model_state, standardise_mnist(images),
                                    train=False, key=None)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    gain = gain_of(state.opt_state)
    out = ngm_top_eigenvalues(loss, state.params, gain, key, mask,
                              num_iters=args.power_iters, tol=args.tol)
    return dict(out, gain=gain, loss=loss(effective_params(state.params, gain, mask)))

  key = jax.random.key(args.seed)
  # The run is make_train's run for this seed (same key into parts.init); the
  # measurements draw from keys of their own.
  eig_key, hvp_key = jax.random.split(jax.random.fold_in(key, _MEASURE_STREAM))
  state = parts.init(key, parts.data)
  gains = jnp.zeros((total,), jnp.float32)

  points = []
  print(f"training {args.tasks} tasks x {iters} iterations; measuring at"
        f" {len(measurement_iterations(args.offsets, iters, args.tasks))} points")
  print(f"{'iter':>5} {'bound':>5} {'off':>4} {'g':>7} {'g^2':>7} {'lam_W':>9}"
        f" {'lam_Weff':>9} {'ratio':>7} {'|r-g2|/g2':>9} {'loss':>7} {'its':>5}")
  for t, boundary, offset in measurement_iterations(args.offsets, iters, args.tasks):
    state, gains = advance(state, gains, parts.data, t)
    task = (t - 1) // iters  # the task of the last step taken (0-based)
    rows = sample_joint_indices(hvp_key, task, ends, args.hvp_batch)
    out = jax.device_get(measure(state, parts.data, rows, jax.random.fold_in(eig_key, t)))
    g = float(out["gain"])
    point = {"iteration": t, "boundary": boundary, "offset": offset, "task": task + 1,
             "gain": g, "gain_sq": g * g, "lambda_raw": float(out["raw"]),
             "lambda_eff": float(out["effective"]), "ratio": float(out["ratio"]),
             "g2_lambda_eff": g * g * float(out["effective"]),
             "ratio_rel_err": abs(float(out["ratio"]) - g * g) / (g * g),
             "lr_lambda_raw": cfg.learning_rate * float(out["raw"]),
             "power_iters_raw": int(out["raw_iterations"]),
             "power_iters_eff": int(out["effective_iterations"]),
             "batch_loss": float(out["loss"])}
    points.append(point)
    print(f"{t:5d} {boundary:5d} {offset:+4d} {g:7.4f} {g * g:7.4f} {point['lambda_raw']:9.4f}"
          f" {point['lambda_eff']:9.4f} {point['ratio']:7.4f} {point['ratio_rel_err']:9.2e}"
          f" {point['batch_loss']:7.4f} {point['power_iters_raw']:2d}/{point['power_iters_eff']:<2d}",
          flush=True)
  state, gains = advance(state, gains, parts.data, total)
  gains = np.asarray(jax.device_get(gains), np.float64)
  elapsed = time.perf_counter() - t_start

  png = Path(args.out)
  png.parent.mkdir(parents=True, exist_ok=True)
  title = (f"Split MNIST, NGM-SGD (lr {cfg.learning_rate:g}, γ {cfg.gamma:g}, g0 {cfg.g0:g},"
           f" η {cfg.eta:g}), seed {args.seed};"
           f" Hessian on {args.hvp_batch} joint-data examples, ≤ {args.power_iters} power iterations")
  plots_analysis.plot_curvature(points, gains, iters, learning_rate=cfg.learning_rate,
                                title=title, path=png)
  record = {
      "command": " ".join([sys.executable, "-m", "experiments.curvature"] + list(argv or sys.argv[1:])),
      "benchmark": "split_mnist",
      "optimizer": "ngm_sgd",
      "seed": args.seed,
      "num_tasks": args.tasks,
      "train": dataclasses.asdict(cfg),
      "hessian_batch": {
          "size": args.hvp_batch,
          "definition": "rows drawn uniformly with replacement, with one fixed key, from the"
                        " training examples of tasks 1..k, k the task of the last step taken;"
                        " the same rows for every measurement within a task",
      },
      "power_iteration": {"max_iters": args.power_iters, "tol": args.tol,
                          "eigenvalue": "largest magnitude, signed (Rayleigh quotient)"},
      "gain_definition": "the gain after `iteration` optimizer steps (the gain the next step uses)",
      "points": points,
      "gain": gains.tolist(),
      "max_ratio_rel_err": max(p["ratio_rel_err"] for p in points),
      "seconds": round(elapsed, 1),
      "device": f"{jax.default_backend()}: {jax.devices()[0].device_kind}",
      "jax_version": jax.__version__,
      "python": platform.python_version(),
  }
  json_path = png.with_suffix(".json")
  json_path.write_text(json.dumps(record, indent=1))
  print(f"wrote {png} and {json_path}  ({elapsed:.1f} s)")
  print(f"max |λ_W/λ_Weff − g²|/g² = {record['max_ratio_rel_err']:.2e};"
        f" max lr·λ_W = {max(p['lr_lambda_raw'] for p in points):.3f} (SGD on W is unstable"
        " along the top direction above 2)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
