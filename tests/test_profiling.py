"""ngm_jax.profiling: a jax.profiler trace of a run and its top costs by self time."""

import gzip
import json

import jax
import jax.numpy as jnp
import pytest

from ngm_jax.profiling import format_top_costs, latest_trace, top_costs, trace


def _write_trace(folder, events):
  run = folder / "plugins" / "profile" / "2026_01_01_00_00_00"
  run.mkdir(parents=True)
  with gzip.open(run / "perfetto_trace.json.gz", "wt") as f:
    json.dump({"displayTimeUnit": "ns", "traceEvents": events}, f)


def _meta(pid, name, tid=None, thread=None):
  if thread is None:
    return {"ph": "M", "pid": pid, "name": "process_name", "args": {"name": name}}
  return {"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": thread}}


def _x(pid, tid, ts, dur, name, module=None):
  event = {"ph": "X", "pid": pid, "tid": tid, "ts": ts, "dur": dur, "name": name}
  if module:
    event["args"] = {"hlo_module": module}
  return event


def test_self_times_by_operation_without_python_compiler_or_waiting(tmp_path):
  _write_trace(tmp_path, [
      _meta(1, "/host:CPU"), _meta(1, None, 10, "python"), _meta(1, None, 11, "tf_XLAEigen/7"),
      _meta(1, None, 12, "tf_PjRtCompilerThreadPool/3"),
      _x(1, 10, 0, 5000, "PjitFunction(train)"),  # Python thread: left out
      _x(1, 12, 0, 9000, "CpuCompiler::RunBackend"),  # compiling: left out
      _x(1, 11, 0, 1000, "ThunkExecutor::Execute"),  # holds the two below: 1000-600-300
      _x(1, 11, 0, 600, "dot.1", "jit_train"),
      _x(1, 11, 600, 300, "fusion.2", "jit_train"),
      _x(1, 11, 2000, 600, "dot.1", "jit_train"),
      _x(1, 11, 3000, 50, "ThunkExecutor::Execute (wait for completion)"),
  ])
  costs = top_costs(tmp_path)
  assert [(c["name"], c["self_ms"], c["count"]) for c in costs] == [
      ("jit_train/dot.1", 1.2, 2), ("jit_train/fusion.2", 0.3, 1),
      ("ThunkExecutor::Execute", 0.1, 1)]
  assert costs[0]["where"] == "/host:CPU tf_XLAEigen"
  assert costs[0]["share"] == pytest.approx(1.2 / 1.6, abs=1e-4)
  compiling = top_costs(tmp_path, compiling=True)
  assert compiling[0]["name"] == "CpuCompiler::RunBackend"
  assert "| `jit_train/dot.1` | /host:CPU tf_XLAEigen | 1.2 | 2 | 75.0 % |" in format_top_costs(
      costs)


def test_on_a_gpu_the_kernels_are_the_costs(tmp_path):
  _write_trace(tmp_path, [
      _meta(1, "/host:CPU"), _meta(1, None, 11, "tf_XLAEigen/7"),
      _meta(2, "/device:GPU:0"), _meta(2, None, 5, "Stream #13(Compute)"),
      _x(1, 11, 0, 5000, "ThunkExecutor::Execute"),
      _x(2, 5, 0, 40, "loop_convolution_fusion", "jit_segment"),
      _x(2, 5, 100, 10, "gemm_fusion", "jit_segment")])
  costs = top_costs(tmp_path)
  assert [c["name"] for c in costs] == ["jit_segment/loop_convolution_fusion",
                                        "jit_segment/gemm_fusion"]
  assert costs[0]["where"] == "/device:GPU:0 Stream #13(Compute)"


def test_a_trace_of_a_program_names_its_operations(tmp_path):
  f = jax.jit(lambda x: jnp.tanh(x @ x).sum())
  x = jnp.ones((256, 256))
  f(x).block_until_ready()
  with trace(tmp_path / "prof") as folder:
    for _ in range(3):
      f(x).block_until_ready()
  assert latest_trace(folder).name == "perfetto_trace.json.gz"
  costs = top_costs(folder)
  assert costs and all(c["self_ms"] >= 0 for c in costs)
  assert any(c["name"].startswith("jit_") for c in costs)  # the program's own operations
  with pytest.raises(FileNotFoundError, match="no plugins/profile"):
    latest_trace(tmp_path / "empty")
