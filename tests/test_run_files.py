"""``report`` checks a run's files against their schema (ngm_jax.run_files):
a damaged run.json or curves.npz is named, with the key and what was
expected, in one line and exit code 2, before anything is computed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ngm_jax import cli, results
from tests.fake_runs import PROTOCOL, fake_curves, old_meta, write_run


def _meta():
  return {**old_meta(), **PROTOCOL, "task1_test_size": 12, "num_classes": 10,
          "test_sizes": [12] * 5}


@pytest.fixture
def saved(tmp_path):
  """A run folder of two variants, 2 seeds, 5 tasks x 4 iterations."""
  curves, its = fake_curves()
  other, _ = fake_curves(seed=1)
  write_run(tmp_path / "run", _meta(), {"ngm_sgd": curves, "g0_sgd": other}, its)
  return tmp_path / "run"


def _edit_meta(folder, **changes):
  meta = json.loads((folder / "run.json").read_text())
  for key, value in changes.items():
    if "." in key:
      outer, inner = key.split(".")
      meta[outer][inner] = value
    else:
      meta[key] = value
  (folder / "run.json").write_text(json.dumps(meta))


def _edit_curve(folder, label, name, change):
  curves, its = results.load_curves(folder / "curves.npz")
  curves[label][name] = change(curves[label][name])
  results.save_curves(folder / "curves.npz", curves, its)


def _report_error(folder, capsys) -> str:
  assert cli.main(["report", str(folder)]) == 2
  err = capsys.readouterr().err
  assert "Traceback" not in err and err.count("\n") == 1, err  # one line
  return err


def test_an_intact_run_is_reported(saved, capsys):
  assert cli.main(["report", str(saved)]) == 0
  assert (saved / "table.md").exists() and (saved / "figure.png").exists()


@pytest.mark.parametrize("change, expected", [
    # Was "object of type 'int' has no len()", naming neither the file nor the key.
    ({"seeds": 3}, "run.json: 'seeds' is 3 (a JSON integer); expected the seeds, a list of"
                   " integers >= 0."),
    ({"seeds": [0, "1"]}, "'seeds' is [0, \"1\"] (a JSON list); expected the seeds"),
    ({"num_tasks": "5"}, "'num_tasks' is \"5\" (a JSON string); expected the number of tasks,"
                         " an integer >= 1."),
    ({"optimizers": ["ngm_sgd", "ngm_sgd"]}, "'optimizers' is [\"ngm_sgd\", \"ngm_sgd\"]"
                                              " (a JSON list); expected the variants' labels, a"
                                              " list of distinct strings."),
    ({"train.eval_every": 0}, "'train.eval_every' is 0 (a JSON integer); expected an integer"
                              " >= 1."),
    ({"timings": []}, "'timings' is [] (a JSON list); expected a JSON object of one object"
                      " per variant."),
    ({"test_sizes": [12, 12]}, "'test_sizes' has 2 entries; expected one per task, 5"),
    # The task count of run.json against the curves' iteration axis.
    ({"num_tasks": 4, "test_sizes": [12] * 4},
     "curves.npz: iterations/step has 20 points; expected 16 (num_tasks 4 x"
     " train.iterations_per_task 4, from run.json)."),
    ({"train.iterations_per_task": 8}, "iterations/step has 20 points; expected 40"),
    ({"optimizers": ["ngm_sgd"]}, "curves.npz holds g0_sgd, which"),
])
def test_a_run_json_of_the_wrong_types_or_counts_is_named(saved, capsys, change, expected):
  _edit_meta(saved, **change)
  err = _report_error(saved, capsys)
  assert expected in err and str(saved) in err


@pytest.mark.parametrize("name, change, expected", [
    # Was an IndexError traceback.
    ("task_acc", lambda v: v[:, :-2], "g0_sgd/task_acc has shape (2, 8, 5); expected"
                                      " (2, 10, 5): 2 seeds (run.json's seeds) x 10 points"
                                      " (iterations/tasks) x 5 tasks (run.json's num_tasks)."),
    # Was re-reported silently, with the metrics of 4 tasks.
    ("task_acc", lambda v: v[:, :, :4], "g0_sgd/task_acc has shape (2, 10, 4); expected"
                                        " (2, 10, 5)"),
    ("task_loss", lambda v: v[:, :, :4], "g0_sgd/task_loss has shape (2, 10, 4)"),
    # Was a failure inside matplotlib.
    ("gain", lambda v: v[:, :-3], "g0_sgd/gain has shape (2, 17); expected (2, 20): 2 seeds"
                                  " (run.json's seeds) x 20 iterations (iterations/step)."),
    ("task1_loss", lambda v: v[:, ::2], "g0_sgd/task1_loss has shape (2, 10); expected"
                                        " (2, 20)"),
    ("train_loss", lambda v: v[..., None], "g0_sgd/train_loss has shape (2, 20, 1)"),
    ("task1_acc", lambda v: v[:1], "g0_sgd/task1_acc has shape (1, 20); its first axis must"
                                   " be the 2 seeds"),
    ("task1_acc", lambda v: v.astype(str), "g0_sgd/task1_acc holds <U"),
])
def test_curves_of_the_wrong_shape_are_named_with_what_was_expected(saved, capsys, name,
                                                                    change, expected):
  _edit_curve(saved, "g0_sgd", name, change)
  err = _report_error(saved, capsys)
  assert expected in err and str(saved / "curves.npz") in err
  assert not (saved / "table.md").exists()  # refused before anything was written


def test_a_curve_the_report_needs_or_an_iteration_axis_missing(saved, capsys):
  curves, its = results.load_curves(saved / "curves.npz")
  del curves["ngm_sgd"]["gain"]
  results.save_curves(saved / "curves.npz", curves, its)
  assert "variant 'ngm_sgd' lacks the curve(s) gain" in _report_error(saved, capsys)
  curves["ngm_sgd"]["gain"] = curves["g0_sgd"]["gain"]
  its["tasks"] = its["tasks"].astype(np.float64)
  results.save_curves(saved / "curves.npz", curves, its)
  assert ("iterations/tasks is float64 of shape (10,); expected a 1-D array of iteration"
          " numbers" in _report_error(saved, capsys))
