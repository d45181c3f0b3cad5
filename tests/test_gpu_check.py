"""experiments/gpu_check.py --tiny: every item rehearsed on the CPU (2 fake devices, so
that the scaling item runs too), its sections appended to a copy of docs/results.md."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.gpu_check_report import TITLES

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a subprocess that trains ~10 tiny runs (~3 min here under load)
def test_tiny_rehearsal_appends_every_section_to_the_results(tmp_path):
  results = tmp_path / "results.md"
  shutil.copy(ROOT / "docs" / "results.md", results)
  before = results.read_text()
  out = tmp_path / "check"
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT),
         "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "gpu_check.py"), "--tiny",
                         "--out", str(out), "--results", str(results)],
                        env=env, cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, check=False, timeout=1200)
  assert proc.returncode == 0, proc.stdout[-3000:]
  text = results.read_text()
  assert text.startswith(before)  # appended, nothing before it touched
  added = text[len(before):]
  assert added == (out / "gpu_check.md").read_text()
  assert added.startswith("## GPU check (issue 18): cpu: cpu x2")
  assert "--tiny CPU rehearsal" in added
  headings = [line[4:] for line in added.splitlines() if line.startswith("### ")]
  assert headings == [TITLES["peaks"], TITLES["mnist"], TITLES["precision"] + ": Split MNIST"
                      " metrics", TITLES["profile"], TITLES["flops"],
                      TITLES["precision"] + ": the ResNet's speed", TITLES["cifar"],
                      TITLES["scaling"]]  # in the order they were measured
  record = json.loads((out / "gpu_check.json").read_text())
  assert record["peaks"]["fp32"]["measured"] > 0
  assert set(record["mnist"]) == {"cold", "warm", "bf16"}
  assert record["mnist"]["cold"]["metrics"] == record["mnist"]["warm"]["metrics"]
  # a warm cache: far less compiling (measured 18.0 s cold against 2.5 s warm here)
  assert record["mnist"]["warm"]["compile_s"] < 0.6 * record["mnist"]["cold"]["compile_s"]
  assert all(v > 0 for c in record["flops"].values() for v in c.values())
  assert record["profile"]["top_costs"]
  assert set(record["resnet_precision"]) == {"float32", "bfloat16"}
  assert set(record["cifar"]) == {"ngm_sgd", "adam"}
  assert set(record["scaling"]) == {"1", "2"} and record["scaling"]["2"]["seed_axis"] == "shard"
  assert "| 2 | shard |" in added and "GFLOP/s" in added and "Failed" not in added


def test_an_item_without_time_left_or_that_fails_says_so_and_the_check_goes_on(
    tmp_path, monkeypatch):
  from experiments import gpu_check  # pylint: disable=import-outside-toplevel
  results = tmp_path / "results.md"
  results.write_text("# Results\n")

  def broken(check):
    raise RuntimeError("no CUPTI")

  monkeypatch.setitem(gpu_check.RUNNERS, "profile", broken)
  monkeypatch.setitem(gpu_check.RUNNERS, "peaks", lambda check: check.log("peaks", {"ran": 1}))
  assert gpu_check.main(["--items", "peaks,profile,cifar", "--out", str(tmp_path / "out"),
                         "--results", str(results), "--budget-s", "70"]) == 0
  text = results.read_text()
  assert text.startswith("# Results\n## GPU check (issue 18): cpu")
  assert "### Profile of a short Split CIFAR-10 run\n\nFailed after" in text
  assert "`RuntimeError: no CUPTI`" in text
  # the CIFAR item needs 90 s: not started with at most 70 left
  assert "### Split CIFAR-10 end to end\n\nNot measured:" in text and "90 s needed" in text
  record = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
  assert record["peaks"] == {"ran": 1} and record["profile_failed"] == "RuntimeError: no CUPTI"
