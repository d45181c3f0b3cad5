"""ngm_jax.tuning: the equal-budget search on validation data, and its records."""

import dataclasses
import json

import numpy as np
import pytest

from ngm_jax.search import Dimension, Tunable
from ngm_jax.streams import split_mnist
from ngm_jax.train import TrainConfig
from ngm_jax.tuning import OBJECTIVES, select, trial_metrics, tune
from tests.conftest import fake_mnist

CONFIG = TrainConfig(iterations_per_task=4, batch_size=8, eval_every=1, task_eval_every=2)


@pytest.fixture(scope="module")
def stream():
  return split_mnist(fake_mnist(n_train_per_class=10, n_test_per_class=4))


def _quiet(**kwargs):
  return dict(show_progress=False, checkpoint_every_s=None, **kwargs)


@pytest.mark.slow
def test_permuting_the_test_labels_changes_no_trial_nor_the_selection(stream):
  """Selection never reads the test set: scrambled test labels change the
  final runs' test metrics, but no validation metric and no selection."""
  rng = np.random.default_rng(0)
  scrambled = dataclasses.replace(stream, test_labels=rng.permutation(stream.test_labels))
  runs = [tune(s, ["sgd", "ngm_sgd"], CONFIG, budget=3, search_seeds=1, num_seeds=1,
               **_quiet()) for s in (stream, scrambled)]
  (plain, plain_result), (perm, perm_result) = runs
  for label in ("sgd", "ngm_sgd"):
    assert plain["optimizers"][label]["trials"] == perm["optimizers"][label]["trials"]
    assert plain["optimizers"][label]["selected"] == perm["optimizers"][label]["selected"]
  # The test set did change what the final runs measured.
  assert not np.array_equal(plain_result.curves["sgd"]["task_acc"],
                            perm_result.curves["sgd"]["task_acc"])


@pytest.mark.slow
def test_every_method_gets_exactly_budget_trials_and_the_files(stream, tmp_path):
  def make_tx(learning_rate):
    import optax  # pylint: disable=import-outside-toplevel
    return optax.sgd(learning_rate)

  mine = Tunable(make_tx, {"learning_rate": Dimension(1e-3, 1e-1)})
  out = tmp_path / "tuned"
  record, result = tune(stream, {"sgd": "sgd", "msgd": "msgd", "mine": mine}, CONFIG,
                        budget=2, search_seeds=2, num_seeds=2, out=out, **_quiet())
  saved = json.loads((out / "tuning.json").read_text())
  assert saved["budget"] == 2 and saved["objective"] == "wc_acc_all"
  assert saved["validation"]["fraction"] == 0.1 and saved["validation"]["seed"] == 0
  sizes = stream.task_sizes("train")
  assert [a + b for a, b in zip(saved["validation"]["train_sizes"],
                                saved["validation"]["validation_sizes"])] == sizes.tolist()
  for label in ("sgd", "msgd", "mine"):
    entry = saved["optimizers"][label]
    assert len(entry["trials"]) == 2
    assert entry["selected"] in [t["hyperparameters"] for t in entry["trials"]]
    assert set(entry["trials"][0]["validation"]) == set(OBJECTIVES)
  assert set(saved["optimizers"]["msgd"]["space"]) == {"learning_rate", "momentum"}
  # The final runs: fresh seeds, the usual files.
  assert result.meta["seeds"] == [1000, 1001]
  for name in ("run.json", "curves.npz", "metrics.json", "table.md", "figure.png",
               "tuning.md", "tradeoff.png"):
    assert (out / name).exists(), name
  assert (out / "search" / "sgd" / "run.json").exists()
  # The search trained each configuration with its own learning rate: the
  # two sgd trials' validation curves differ.
  search = json.loads((out / "search" / "sgd" / "run.json").read_text())
  assert search["seeds"] == [0, 1, 0, 1]


def test_a_tuning_is_not_overwritten_by_accident(stream, tmp_path):
  (tmp_path / "tuning.json").write_text("{}")
  with pytest.raises(ValueError, match="already holds a tuning"):
    tune(stream, ["sgd"], CONFIG, budget=1, out=tmp_path, **_quiet())


@pytest.mark.parametrize("kwargs, match", [
    (dict(budget=0), "budget=0"),
    (dict(budget=2, objective="loss"), "objective='loss'; choose from wc_acc_all, wc_acc"),
    (dict(budget=2, search_seeds=0), "search_seeds=0"),
])
def test_bad_arguments_are_named(stream, kwargs, match):
  with pytest.raises(ValueError, match=match):
    tune(stream, ["sgd"], CONFIG, **_quiet(**kwargs))


def test_trial_metrics_and_selection():
  # Two configurations x two seeds; Task-1 accuracy constant per run.
  acc = np.array([0.5, 0.6, 0.9, 0.8])[:, None] * np.ones((4, 8))
  task_acc = np.ones((4, 2, 2)) * np.array([0.3, 0.3, 0.7, 0.7])[:, None, None]
  curves = {"task1_acc": acc, "task_acc": task_acc, "diverged_at": np.array([-1, -1, -1, -1])}
  per_trial = trial_metrics(curves, num_tasks=2, budget=2, search_seeds=2,
                            iterations_per_task=4)
  assert per_trial["final_acc"].shape == (2, 2)
  np.testing.assert_allclose(per_trial["final_acc"], [[0.3, 0.3], [0.7, 0.7]])
  assert select(per_trial, "wc_acc") == 1
  # A diverged seed ranks its configuration last.
  curves["diverged_at"] = np.array([-1, -1, 5, -1])
  per_trial = trial_metrics(curves, num_tasks=2, budget=2, search_seeds=2,
                            iterations_per_task=4)
  assert np.isnan(per_trial["wc_acc"][1, 0])
  assert select(per_trial, "wc_acc") == 0
  # avg-SG is minimised.
  assert OBJECTIVES["avg_sg"] is False


def test_the_default_objective_penalises_not_learning_the_later_tasks():
  """Configuration 0 keeps Task 1 perfectly by never learning Task 2; 1 dips
  on Task 1 but learns both. Task-1 WC-ACC picks 0, WC-ACC over all tasks 1."""
  task1 = np.stack([np.ones(8), np.r_[np.ones(4), 0.7, 0.8, 0.9, 0.9]])
  task_acc = np.stack([
      [[1.0, 0.1], [1.0, 0.1], [1.0, 0.1], [1.0, 0.1]],   # never learns task 2
      [[1.0, 0.1], [1.0, 0.2], [0.8, 0.9], [0.9, 0.95]],  # learns it, Task 1 dips
  ])
  curves = {"task1_acc": task1, "task_acc": task_acc, "diverged_at": np.array([-1, -1])}
  per_trial = trial_metrics(curves, num_tasks=2, budget=2, search_seeds=1,
                            iterations_per_task=4)
  assert select(per_trial, "wc_acc") == 0
  assert select(per_trial, "wc_acc_all") == 1
  # wc_acc_all = last task's final / K + (1 - 1/K) * Task 1's minimum after task 1.
  np.testing.assert_allclose(per_trial["wc_acc_all"][:, 0], [0.1 / 2 + 1.0 / 2,
                                                             0.95 / 2 + 0.8 / 2])


def test_tuning_table_reports_stability_beside_plasticity():
  from ngm_jax.tuning import tuning_table  # pylint: disable=import-outside-toplevel
  entry = lambda m, s: {"mean": m, "stderr": s}
  record = {
      "benchmark": "split_mnist", "budget": 2, "objective": "wc_acc",
      "objective_larger_is_better": True, "search_seeds": [0], "final_seeds": [1000, 1001],
      "validation": {"fraction": 0.1, "seed": 0},
      "optimizers": {"sgd": {
          "selected": {"learning_rate": 0.01}, "selected_index": 1,
          "trials": [{"validation": {"wc_acc": {"mean": 0.5}}},
                     {"validation": {"wc_acc": {"mean": 0.9}}}]}},
      "final_metrics": {"sgd": {"avg_sg": entry(0.02, 0.005), "wc_acc": entry(0.95, 0.01),
                                "dl_wc_acc": entry(0.9, 0.03),
                                "dl_final_acc_all": entry(0.88, 0.002)}},
  }
  row = tuning_table(record).splitlines()[-1]
  assert row == ("| sgd | learning_rate=0.01 | 90.00 | 2.00 ± 0.50 | 95.00 ± 1.00 |"
                 " 90.00 ± 3.00 | 88.00 ± 0.20 |")
