"""A profile of a run (``jax.profiler``) and its top costs, read without TensorBoard.

:func:`trace` records everything run inside it into ``folder``: JAX 0.10
writes ``folder/plugins/profile/<date_time>/`` with ``<host>.xplane.pb`` (the
profile TensorBoard and XProf read), ``<host>.trace.json.gz`` and, asked for
here, ``perfetto_trace.json.gz`` (Chrome trace-event JSON)::

    with ngm_jax.profiling.trace("/tmp/prof"):
      run_benchmark(...)
    print(ngm_jax.profiling.format_top_costs(ngm_jax.profiling.top_costs("/tmp/prof")))

To look at it: drag ``perfetto_trace.json.gz`` onto https://ui.perfetto.dev
(a timeline of every thread and device stream), or ``pip install xprof``
(the profiler formerly called tensorboard-plugin-profile), ``xprof --port
8791 folder`` and http://localhost:8791 (trace viewer, per-operation
statistics; TensorBoard with that plugin reads the same folder).

:func:`top_costs` sums the self time of the trace's complete events by
name: on a GPU the kernels on the device's streams; on a CPU the XLA
operations on the runtime's threads.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import json
import os
from pathlib import Path
from typing import Any, Iterator

import jax

__all__ = ["trace", "latest_trace", "top_costs", "format_top_costs"]


@contextlib.contextmanager
def trace(folder: str | os.PathLike, python: bool = False) -> Iterator[Path]:
  """``jax.profiler.trace`` into ``folder`` with a Perfetto trace as well;
  yields the folder. Block on the results inside (``block_until_ready``) so
  that the device's work falls in the trace.

  ``python=False`` leaves out the Python function tracer: its events (every
  Python call while tracing a program) fill the Perfetto trace, which keeps
  the first million events only, before the device's work is reached."""
  folder = Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  options = jax.profiler.ProfileOptions()
  options.python_tracer_level = 1 if python else 0
  with jax.profiler.trace(str(folder), create_perfetto_trace=True, profiler_options=options):
    yield folder


def latest_trace(folder: str | os.PathLike) -> Path:
  """The newest ``perfetto_trace.json.gz`` under ``folder``.

  Raises:
    FileNotFoundError: none there (naming the folder).
  """
  found = sorted(Path(folder).glob("plugins/profile/*/perfetto_trace.json.gz"))
  if not found:
    raise FileNotFoundError(f"{folder}: no plugins/profile/*/perfetto_trace.json.gz; profile a"
                            " run into it first (ngm_jax.profiling.trace).")
  return found[-1]


def _left_out(process: str, thread: str, compiling: bool, device_only: bool) -> bool:
  """The host's threads where a device has its own (the kernels are the
  costs), else the Python thread (dispatch, tracing) and, unless
  ``compiling``, XLA's compiler threads."""
  if device_only:
    return not process.startswith("/device")
  if thread == "python" or process.startswith("/host:python"):
    return True
  return not compiling and ("Compil" in thread or "codegen" in thread)


def _self_times(events: list[dict]) -> list[tuple[dict, float]]:
  """Each complete event of one thread with its self time (its duration less
  that of the events nested in it), in microseconds."""
  events = sorted(events, key=lambda e: (e["ts"], -e["dur"]))
  out, stack = [], []  # stack: [event, self time] of the open events
  for e in events:
    while stack and stack[-1][0]["ts"] + stack[-1][0]["dur"] <= e["ts"]:
      out.append(tuple(stack.pop()))
    if stack:
      stack[-1][1] -= e["dur"]
    stack.append([e, float(e["dur"])])
  return out + [tuple(item) for item in stack]


def top_costs(folder: str | os.PathLike, n: int = 10,
              compiling: bool = False) -> list[dict[str, Any]]:
  """The ``n`` operations that took the most time in the newest trace under
  ``folder``: on a GPU (a ``/device:...`` process in the trace) its kernels;
  on a CPU the XLA runtime's threads, without the Python thread's events
  (dispatch, tracing) and, unless ``compiling``, the compiler's.

  Returns:
    ``[{"name", "where", "self_ms", "count", "share"}]``, most costly first:
    ``name`` is the HLO operation, after its program's name where the trace
    gives it (``jit_train/fusion.3``: ``compiled.as_text()`` of that program
    shows what the operation is); ``where`` is the process and thread (a
    GPU stream, an XLA CPU thread);
    ``self_ms`` the time in the operation itself, not in operations nested in
    it; ``share`` its fraction of the self time of every event kept.
  """
  with gzip.open(latest_trace(folder), "rt") as f:
    events = json.load(f)["traceEvents"]
  processes = {e["pid"]: e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "process_name"}
  threads = {(e["pid"], e.get("tid")): e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
  device_only = any(p.startswith("/device") for p in processes.values())
  by_thread: dict[tuple, list[dict]] = collections.defaultdict(list)
  for e in events:
    if (e.get("ph") == "X" and "dur" in e and not e["name"].startswith(("$", "end: "))
        and "(wait for completion)" not in e["name"]):  # a thread waiting, no work
      by_thread[(e["pid"], e.get("tid"))].append(e)
  totals: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0.0, 0])
  for (pid, tid), thread_events in by_thread.items():
    process = processes.get(pid, str(pid))
    thread = threads.get((pid, tid), str(tid))
    if _left_out(process, thread, compiling, device_only):
      continue
    where = (f"{process} {thread}" if process.startswith("/device")
             else f"{process} {thread.split('/')[0]}")
    for e, self_us in _self_times(thread_events):
      program = (e.get("args") or {}).get("hlo_module")  # XLA's name of the compiled program
      total = totals[(f"{program}/{e['name']}" if program else e["name"], where)]
      total[0] += self_us
      total[1] += 1
  whole = sum(t for t, _ in totals.values()) or 1.0
  ranked = sorted(totals.items(), key=lambda item: -item[1][0])[:n]
  return [{"name": name, "where": where, "self_ms": round(t / 1e3, 3), "count": count,
           "share": round(t / whole, 4)} for (name, where), (t, count) in ranked]


def format_top_costs(rows: list[dict[str, Any]]) -> str:
  """``rows`` of :func:`top_costs` as a Markdown table."""
  lines = ["| operation | where | self time (ms) | calls | share |", "|---|---|---:|---:|---:|"]
  lines += [f"| `{r['name'][:70]}` | {r['where']} | {r['self_ms']:.1f} | {r['count']} |"
            f" {100 * r['share']:.1f} % |" for r in rows]
  return "\n".join(lines)
