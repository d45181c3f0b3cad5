"""Failed-seed detection (diverged, or at chance by accuracy) and its table note."""

import math

import numpy as np
import pytest

from ngm_jax import failures


def _task_acc(final_per_task, points=3):
  """``task_acc`` ``[S, P, K]`` whose last point is ``final_per_task`` ``[S, K]``."""
  final = np.asarray(final_per_task, np.float64)
  return np.repeat(final[:, None, :], points, axis=1)


def test_divergence_is_read_from_the_record_and_else_from_the_curves():
  assert failures.divergence({"diverged_at": np.array([-1, 8], np.int32)}).tolist() == [-1, 8]
  # A run saved before the record: the first non-finite loss or gain, 1-based.
  loss = np.array([[2.0, 1.0, 0.5, 0.4],
                   [2.0, 1.0, np.nan, np.nan],
                   [2.0, 1.0, 1.0, 1.0]])
  gain = np.ones_like(loss)
  gain[2, 1] = np.inf
  assert failures.divergence({"train_loss": loss, "gain": gain}).tolist() == [-1, 3, 2]
  assert failures.divergence({"train_loss": loss}).tolist() == [-1, 3, -1]
  with pytest.raises(ValueError, match=r"\[S, T\]"):
    failures.divergence({"train_loss": loss[0]})
  with pytest.raises(ValueError, match="neither diverged_at nor train_loss"):
    failures.divergence({"task_acc": np.zeros((1, 2, 3))})


def test_chance_threshold_is_a_few_standard_errors_above_one_over_c():
  # p = 0.1, five tasks of 2,000 images: s.e. = sqrt(0.09 · 5/2000) / 5 = 0.003.
  assert failures.chance_threshold(10, [2000] * 5) == pytest.approx(0.1 + 3 * 0.003)
  assert failures.chance_threshold(10, [2000] * 5, z=2) == pytest.approx(0.106)
  assert failures.chance_threshold(10, None) == pytest.approx(0.12)
  with pytest.raises(ValueError, match="num_classes=1"):
    failures.chance_threshold(1, [10])
  with pytest.raises(ValueError, match="one count >= 1 per task"):
    failures.chance_threshold(10, [0, 10])


def test_a_seed_that_learned_is_never_flagged_whatever_its_training_loss():
  # The case: a short run whose last training losses are >= 0.99·ln 10
  # although Task 1 is learned (seed 0). Seed 1 ends at chance; seed 2 diverged.
  sizes = [2000] * 5
  curves = {
      "train_loss": np.full((3, 20), 0.995 * math.log(10)),
      "diverged_at": np.array([-1, -1, 14]),
      "task_acc": _task_acc([[1.0, 0.6, 0.5, 0.5, 0.5],
                             [0.5, 0.0, 0.0, 0.01, 0.0],      # one class guessed: 10.2 %
                             [0.5, 0.0, 0.0, 0.0, 0.0]]),
  }
  np.testing.assert_array_equal(failures.failed_seeds(curves, 10, sizes), [False, True, True])
  np.testing.assert_array_equal(failures.failed_seeds(curves), [False, False, True])
  assert failures.failure_reasons(curves, 10, sizes) == [
      "", "at chance (final accuracy 10.2%)", "diverged at iteration 14"]
  # Just above the threshold is not chance.
  above = failures.chance_threshold(10, sizes) + 1e-3
  curves["task_acc"] = _task_acc([[above] * 5] * 3)
  np.testing.assert_array_equal(failures.failed_seeds(curves, 10, sizes), [False, False, True])


def test_run_record_supplies_classes_and_test_sizes():
  curves = {"diverged_at": np.array([-1]), "task_acc": _task_acc([[0.11] * 5])}
  # 0.11 is chance for 5 tasks of 100 images (threshold 0.1 + 3·0.0134), not for 20,000.
  assert failures.failed_seeds_of_run(curves, {"num_classes": 10, "test_sizes": [100] * 5})[0]
  assert not failures.failed_seeds_of_run(curves, {"num_classes": 10,
                                                   "test_sizes": [20000] * 5})[0]
  # Older records: Task 1's size for every task; without num_classes only divergence.
  assert failures.run_test_sizes({"task1_test_size": 100, "num_tasks": 5}) == [100] * 5
  assert not failures.failed_seeds_of_run(curves, {})[0]


def test_failed_seeds_note_states_the_rule_and_names_each_failed_seed():
  none = {"a": np.zeros(2, bool)}
  note = failures.failed_seeds_note(none, 10, [2000] * 5)
  assert note.startswith("Failed seeds: a seed *diverged* if its training loss or gain became"
                         " non-finite")
  assert "at most 10.9%" in note and "not training loss" in note and "No seed failed." in note
  assert "not checked" in failures.failed_seeds_note(none, None)
  some = {"a": np.array([False, True]), "b": np.array([True, False])}
  note = failures.failed_seeds_note(
      some, 10, [2000] * 5,
      reasons={"a": ["", "diverged at iteration 7"], "b": ["at chance (final accuracy 9.8%)", ""]})
  assert ("Here: a seed index 1 diverged at iteration 7; b seed index 0 at chance (final"
          " accuracy 9.8%).") in note
  # The note no longer claims that a failed seed's SG is ~0 (a seed that
  # learned Task 1 and then collapsed has a large SG).
  assert "SG is ~0" not in note and "large SG" in note
