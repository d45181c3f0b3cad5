"""The proof of principle (the paper's Figure 2): a scalar model whose target
switches halfway, learnt with gain-modulated SGD, as fast + slow weights, and
with the gain fixed at g0.

    python -m experiments.proof_of_principle            # results/figures/proof_of_principle.png

Takes a few seconds on a CPU. Prints the peak gain and, for each learner, the
steps from the switch until ``y`` first comes, and then stays, within
``--rtol`` (default 5%) of T2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from ngm_jax import plots_analysis
from ngm_jax import two_timescale as tt


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m experiments.proof_of_principle", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", default="results/figures/proof_of_principle.png",
                      help="output PNG (default: %(default)s)")
  parser.add_argument("--steps", type=int, default=200, help="steps; the target switches halfway (default: %(default)s)")
  parser.add_argument("--x", type=float, default=1.0, help="the constant input (default: %(default)s)")
  parser.add_argument("--t1", type=float, default=1.0, help="target before the switch (default: %(default)s)")
  parser.add_argument("--t2", type=float, default=2.0, help="target after the switch (default: %(default)s)")
  parser.add_argument("--w0", type=float, default=None,
                      help="initial raw weight (default: T1/(g0·x), the resting solution of T1)")
  parser.add_argument("--learning-rate", type=float, default=0.05, help="lr on the raw weight (default: %(default)s)")
  parser.add_argument("--gamma", type=float, default=0.98, help="γ (default: %(default)s)")
  parser.add_argument("--g0", type=float, default=1.0, help="g0 (default: %(default)s)")
  parser.add_argument("--eta", type=float, default=0.4, help="η (default: %(default)s)")
  parser.add_argument("--signal", choices=sorted(tt.SIGNALS), default="squared_error",
                      help="uncertainty signal U (default: %(default)s)")
  parser.add_argument("--rtol", type=float, default=0.05, help="'reached T2' tolerance, relative (default: %(default)s)")
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  start = time.perf_counter()
  try:
    result = tt.simulate(
        args.steps, x=args.x, t1=args.t1, t2=args.t2, w0=args.w0,
        learning_rate=args.learning_rate, gamma=args.gamma, g0=args.g0,
        eta=args.eta, signal=args.signal)
  except ValueError as err:
    print(f"error: {err}", file=sys.stderr)
    return 2
  out = Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  plots_analysis.plot_proof_of_principle(result, path=out)

  switch, peak = result["switch_step"], result["peak_gain_step"]
  gain = result["gain_modulated"]["gain"]
  print(f"wrote {out}  ({time.perf_counter() - start:.1f} s)")
  print(f"target {args.t1:g} -> {args.t2:g} at step {switch} of {args.steps}")
  print(f"peak gain g = {float(gain[peak]):.4f} at step {peak}"
        f" ({peak - switch} steps after the switch); g² = {float(gain[peak]) ** 2:.4f},"
        f" curvature ratio d²L/dW_eff² / d²L/dW² = 1/g² = {1 / float(gain[peak]) ** 2:.4f}")
  print(f"steps after the switch until y is within {100 * args.rtol:g}% of T2"
        " (first reached / stays from; -1 = never):")
  for name in ("gain_modulated", "fast_slow", "slow_only"):
    y = result[name]["y"]
    first = tt.steps_to_target(y, args.t2, switch, args.rtol, stay=False)
    stays = tt.steps_to_target(y, args.t2, switch, args.rtol, stay=True)
    print(f"  {name:15s} {first:4d} / {stays:4d}   final |T2 − y| = {abs(args.t2 - float(y[-1])):.4f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
