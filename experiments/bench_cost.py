"""What bench.py's rows cost and achieved: FLOP/s, the fraction of the matmul peak, a profile.

Helpers of ``experiments/bench.py`` (its module docstring says what the rows
are); ``rows`` is its ``Rows``: ``header`` (with ``peaks``, from
:func:`ngm_jax.cost.device_peaks`) and ``rows``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ngm_jax.cost import device_peaks, peak_for
from ngm_jax.profiling import trace as profile_trace


def first_row_profiled(args):
  """A ``jax.profiler`` trace into ``args.profile`` around the first call
  (the first row measured), nothing around the later ones."""
  if not args.profile or getattr(args, "_profiled", False):
    return contextlib.nullcontext()
  args._profiled = True  # pylint: disable=protected-access
  return profile_trace(args.profile)


def cost_fields(per_iteration: float | None, seed_iterations_per_s: float | None,
                header: dict[str, Any], compute_dtype: str = "float32") -> dict[str, Any]:
  """What a row achieved: one seed's FLOPs per iteration
  (:func:`ngm_jax.cost.flops_per_iteration`) × seed-iterations per second, in
  GFLOP/s, and its fraction of the device's measured peak at the precision
  the run computed at (``header["peaks"]``, :func:`ngm_jax.cost.peak_for`)."""
  if per_iteration is None or not seed_iterations_per_s:
    return {}
  achieved = per_iteration * seed_iterations_per_s
  out = {"mflop_per_iteration": round(per_iteration / 1e6, 2),
         "achieved_gflop_per_s": round(achieved / 1e9, 3), "compute_dtype": compute_dtype}
  peak = peak_for(header.get("peaks", {}), compute_dtype)
  if peak is not None:
    out.update(peak=peak[0], fraction_of_peak=round(achieved / peak[1], 5))
  return out


def measure_peaks_again(rows) -> None:
  """Measures the peaks once more (a shared machine's load moves them) and
  keeps the higher of each; every row's fraction of peak follows."""
  again = device_peaks(list(rows.header["peaks"]))
  for kind, value in again.items():
    old = rows.header["peaks"][kind]
    old["measured"] = max(old["measured"], value["measured"])
  print("matmul peaks (best of the start and the end): " + ", ".join(
      f"{k} {v['measured'] / 1e9:.1f} GFLOP/s" for k, v in rows.header["peaks"].items()),
        flush=True)
  for r in rows.rows:
    peak = peak_for(rows.header["peaks"], r.get("compute_dtype", "float32"))
    if "achieved_gflop_per_s" in r and peak is not None:
      r["fraction_of_peak"] = round(r["achieved_gflop_per_s"] * 1e9 / peak[1], 5)


def fraction_text(r: dict) -> str:
  """A row's fraction of peak in percent, or a dash."""
  return f"{100 * r['fraction_of_peak']:.2f} %" if "fraction_of_peak" in r else "—"
