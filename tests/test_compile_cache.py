"""ngm_jax.compile_cache: the second process loads what the first compiled."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ngm_jax import compile_cache
from tests.conftest import write_mnist_idx, fake_mnist

ROOT = Path(__file__).resolve().parents[1]


def test_the_folder_comes_from_the_environment(monkeypatch, tmp_path):
  monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "cc"))
  assert compile_cache.default_folder() == tmp_path / "cc"
  for off in ("off", "0", "OFF"):
    monkeypatch.setenv(compile_cache.ENV, off)
    assert compile_cache.default_folder() is None
  monkeypatch.delenv(compile_cache.ENV)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert compile_cache.default_folder() == tmp_path / "xdg" / "ngm-jax" / "jax"


@pytest.mark.slow
def test_a_second_run_compiles_from_the_cache(tmp_path):
  data = write_mnist_idx(tmp_path / "mnist", fake_mnist())
  env = {**os.environ, compile_cache.ENV: str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
  compile_s = []
  for n, extra in enumerate((["--no-compile-cache"], [], [])):
    out = tmp_path / f"run{n}"
    subprocess.run(
        [sys.executable, "-m", "ngm_jax.cli", "run", "--benchmark", "split_mnist",
         "--data-dir", str(data), "--optimizers", "ngm_sgd", "--seeds", "2",
         "--iterations-per-task", "10", "--task-eval-every", "5", "--no-progress",
         "--checkpoint-every-s", "0", "--out", str(out), *extra],
        check=True, env=env, cwd=tmp_path, capture_output=True, timeout=600)
    compile_s.append(json.loads((out / "run.json").read_text())["timings"]["ngm_sgd"]["compile_s"])
    if n == 0:
      assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
  assert any((tmp_path / "cache").iterdir())
  # The third run read what the second wrote: its compile is a fraction of a compile.
  assert compile_s[2] < 0.5 * compile_s[1], compile_s
  curves = [dict(__import__("numpy").load(tmp_path / f"run{n}" / "curves.npz"))
            for n in range(3)]
  for key in curves[0]:
    assert (curves[0][key] == curves[2][key]).all(), key
