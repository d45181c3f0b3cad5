"""The same command twice gives bit-identical curves (two fresh processes)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from ngm_jax import results
from tests.conftest import fake_mnist, write_mnist_idx

pytestmark = pytest.mark.slow  # two fresh processes: run by pytest -m slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_same_command_twice_gives_bit_identical_curves(tmp_path):
  data_dir = write_mnist_idx(tmp_path / "data", fake_mnist())
  outs = [tmp_path / "first", tmp_path / "second"]
  command = [sys.executable, "-m", "experiments.run", "run", "--benchmark", "split_mnist",
             "--optimizers", "ngm_sgd,adam", "--seeds", "2", "--data-dir", str(data_dir),
             "--iterations-per-task", "4", "--batch-size", "8", "--task-eval-every", "2",
             "--no-progress"]
  # Two processes, each compiling its own program: nothing is shared but the command.
  procs = [subprocess.Popen(command + ["--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for out in outs]
  for proc in procs:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
  (first, first_its), (second, second_its) = (results.load_curves(o / "curves.npz")
                                              for o in outs)
  assert list(first) == list(second) == ["ngm_sgd", "adam"]
  for label, curves in first.items():
    assert set(curves) == set(second[label])
    assert {"task1_acc", "task_acc", "gain", "train_loss", "diverged_at"} <= set(curves)
    for name, value in curves.items():
      np.testing.assert_array_equal(value, second[label][name], err_msg=f"{label}/{name}")
  for kind, value in first_its.items():
    np.testing.assert_array_equal(value, second_its[kind])
  # The seeds differ from each other (the comparison is not of constants).
  assert not np.array_equal(first["adam"]["train_loss"][0], first["adam"]["train_loss"][1])
  assert (outs[0] / "metrics.json").read_text() == (outs[1] / "metrics.json").read_text()
