"""Metrics on hand-computed curves."""

import numpy as np
import pytest

from ngm_jax import metrics

# K = 3 task blocks of P = 4 points.
CURVE = np.array([0.5, 0.8, 0.9, 1.0,   0.6, 0.7, 0.9, 0.95,   0.8, 0.5, 0.9, 0.9])


def test_task1_metrics_by_hand():
  m = metrics.task1_metrics(CURVE, num_tasks=3)
  np.testing.assert_allclose(m["final"], [1.0, 0.95, 0.9])
  np.testing.assert_allclose(m["min"], [0.5, 0.6, 0.5])
  np.testing.assert_allclose(m["avg_acc"], 0.95)
  np.testing.assert_allclose(m["sg"], [0.4, 0.45 / 0.95])
  np.testing.assert_allclose(m["avg_sg"], (0.4 + 0.45 / 0.95) / 2)
  np.testing.assert_allclose(m["avg_min_acc"], 0.55)
  np.testing.assert_allclose(m["wc_acc"], 0.9 / 3 + (2 / 3) * 0.55)


def test_task1_metrics_keep_leading_seed_axis():
  curves = np.stack([CURVE, np.ones_like(CURVE)])
  m = metrics.task1_metrics(curves, 3)
  assert m["sg"].shape == (2, 2) and m["avg_sg"].shape == (2,)
  np.testing.assert_allclose(m["avg_sg"][1], 0.0)
  np.testing.assert_allclose(m["wc_acc"][1], 1.0)


def test_curve_must_cut_into_equal_blocks():
  with pytest.raises(ValueError, match="11 points.*3"):
    metrics.task1_metrics(CURVE[:11], 3)
  with pytest.raises(ValueError, match="at least 2"):
    metrics.task1_metrics(CURVE, 1)


# Per-task curves [P_all=6, K=3] at iterations 2..12, I = 4.
TASK_ACC = np.array([
    [0.60, 0.00, 0.00],
    [0.90, 0.10, 0.00],
    [0.70, 0.80, 0.10],
    [0.80, 0.90, 0.20],
    [0.85, 0.60, 0.70],
    [0.88, 0.85, 0.95],
])
ITERS = np.array([2, 4, 6, 8, 10, 12])


def test_de_lange_metrics_by_hand():
  m = metrics.de_lange_metrics(TASK_ACC, ITERS, iterations_per_task=4)
  # Task 1's minimum after iteration 4 is 0.70; task 2's after 8 is 0.60.
  np.testing.assert_allclose(m["min_per_task"], [0.70, 0.60])
  np.testing.assert_allclose(m["min_acc"], 0.65)
  np.testing.assert_allclose(m["wc_acc"], 0.95 / 3 + (2 / 3) * 0.65)
  np.testing.assert_allclose(m["final_per_task"], [0.88, 0.85, 0.95])
  np.testing.assert_allclose(m["final_acc_all"], (0.88 + 0.85 + 0.95) / 3)


def test_seen_tasks_accuracy_averages_tasks_one_to_k():
  task_acc = np.array([[[0.9, 0.1, 0.0], [0.8, 0.5, 0.2], [0.7, 0.6, 0.3], [0.6, 0.7, 0.9]]])
  # I = 2: iterations 1, 2 are task 1; 3 is task 2; 6 is task 3.
  seen = metrics.seen_tasks_accuracy(task_acc, [1, 2, 3, 6], 2)
  np.testing.assert_allclose(seen, [[0.9, 0.8, 0.65, (0.6 + 0.7 + 0.9) / 3]])
  with pytest.raises(ValueError, match="len\\(iterations\\)"):
    metrics.seen_tasks_accuracy(task_acc, [1, 2, 3], 2)
  with pytest.raises(ValueError, match="iterations start at 1"):
    metrics.seen_tasks_accuracy(task_acc, [0, 2, 3, 6], 2)


def test_summarize_separates_per_seed_from_mean_curve():
  # Two seeds dip to 0.5 at different iterations of block 2: each seed's
  # min is 0.5, but the seed-averaged curve only dips to 0.75.
  a = np.array([1.0, 1.0, 1.0, 1.0,   1.0, 0.5, 1.0, 1.0])
  b = np.array([1.0, 1.0, 1.0, 1.0,   1.0, 1.0, 0.5, 1.0])
  curves = {"task1_acc": np.stack([a, b]),
            "task_acc": np.ones((2, 4, 2))}
  s = metrics.summarize(curves, num_tasks=2, iterations_per_task=4,
                        task_iterations=np.array([2, 4, 6, 8]))
  assert s["avg_min_acc"]["per_seed"] == [0.5, 0.5]
  assert s["avg_min_acc"]["mean"] == 0.5
  assert s["avg_min_acc"]["stderr"] == 0.0
  assert s["avg_min_acc"]["of_mean_curve"] == 0.75
  assert s["avg_sg"]["mean"] == 0.5 and s["avg_sg"]["of_mean_curve"] == 0.25
  assert s["dl_min_acc"]["mean"] == 1.0


def test_summarize_single_seed_has_no_stderr():
  curves = {"task1_acc": CURVE[None], "task_acc": TASK_ACC[None]}
  s = metrics.summarize(curves, 3, 4, ITERS)
  assert s["avg_acc"]["stderr"] is None
  np.testing.assert_allclose(s["avg_acc"]["mean"], 0.95)


def test_avg_sg_averages_the_defined_transitions():
  # K = 3, P = 2. Seed 0: Task-1 accuracy 0 at the end of task 1, so SG_1 is
  # undefined; SG_2 = (0.8 − 0.4)/0.8 = 0.5. Seed 1: SG_1 = 0.5, SG_2 = 0.
  a = np.array([[0.5, 0.0, 0.6, 0.8, 0.4, 0.9],
                [1.0, 1.0, 0.5, 0.9, 0.9, 0.9]])
  m = metrics.task1_metrics(a, 3)
  assert np.isnan(m["sg"][0, 0])
  np.testing.assert_allclose(m["avg_sg"], [0.5, 0.25])
  np.testing.assert_array_equal(m["sg_defined"], [1, 2])
  # No transition defined: avg-SG is NaN, not 0.
  none = metrics.task1_metrics(np.array([0.5, 0.0, 0.5, 0.0, 0.2, 0.3]), 3)
  assert np.isnan(none["avg_sg"]) and none["sg_defined"] == 0
  iterations = np.arange(2, 7, 2)
  s = metrics.summarize({"task1_acc": a, "task_acc": a[:, 1::2, None].repeat(3, -1)}, 3, 2,
                        iterations)
  assert s["avg_sg"]["per_seed"] == [0.5, 0.25]
  assert s["avg_sg"]["mean"] == pytest.approx(0.375) and s["avg_sg"]["stderr"] > 0
  assert s["sg_defined"]["per_seed"] == [1, 2] and "seeds_defined" not in s["avg_sg"]
  # A seed with no defined SG_k is left out of avg-SG's mean, and counted.
  three = np.vstack([a, [0.5, 0.0, 0.5, 0.0, 0.2, 0.3]])
  s = metrics.summarize({"task1_acc": three, "task_acc": three[:, 1::2, None].repeat(3, -1)},
                        3, 2, iterations)
  assert s["avg_sg"]["per_seed"][2] is None and s["avg_sg"]["seeds_defined"] == 2
  assert s["avg_sg"]["mean"] == pytest.approx(0.375)
