"""ngm_jax.results on saved runs made here: curves and JSON files, metrics of
the kept seeds, the Result record. (Damaged folders through the command line:
tests/test_run.py; run folders, swaps and the log: tests/test_checkpoint.py.)"""

from __future__ import annotations

import os

import numpy as np
import pytest

from ngm_jax import results
from ngm_jax.metrics import summarize
from ngm_jax.train import TrainConfig
from tests.fake_runs import FAST_CONFIG, PROTOCOL, fake_curves, old_meta


def test_curves_round_trip_keeps_the_order_values_and_dtypes(tmp_path):
  one, iterations = fake_curves()
  one["diverged_at"] = np.array([-1, 7], np.int32)
  one["gain"] = one["gain"].astype(np.float32)
  curves = {"zeta": one, "alpha": dict(one), "mid": dict(one)}  # not alphabetical
  results.save_curves(tmp_path / "c.npz", curves, iterations)
  loaded, its = results.load_curves(tmp_path / "c.npz")
  assert list(loaded) == ["zeta", "alpha", "mid"]
  for label in curves:
    assert set(loaded[label]) == set(one)
    for name, value in one.items():
      assert loaded[label][name].dtype == value.dtype, name
      np.testing.assert_array_equal(loaded[label][name], value)
  assert set(its) == {"step", "task1", "tasks"}
  np.testing.assert_array_equal(its["tasks"], iterations["tasks"])
  assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left


def test_load_curves_names_what_is_wrong(tmp_path):
  np.savez(tmp_path / "loose.npz", **{"loose": np.zeros(2)})
  with pytest.raises(ValueError, match="holds an entry 'loose', not named <label>/<curve>"):
    results.load_curves(tmp_path / "loose.npz")
  with pytest.raises(ValueError, match="missing .*the run's curves are not there"):
    results.load_curves(tmp_path / "absent.npz")


def test_load_curves_of_a_single_array_names_the_fault(tmp_path):
  np.save(tmp_path / "one.npy", np.zeros(2))
  with pytest.raises(ValueError, match="single .npy array, not an .npz archive"):
    results.load_curves(tmp_path / "one.npy")


def test_write_json_refuses_nan_and_keeps_the_old_file(tmp_path):
  path = tmp_path / "run.json"
  results.write_json(path, {"a": 1.5, "b": [1, None]})
  assert results.read_json(path) == {"a": 1.5, "b": [1, None]}
  assert path.read_text().endswith("\n")
  with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
    results.write_json(path, {"a": float("nan")})
  assert results.read_json(path) == {"a": 1.5, "b": [1, None]}  # written whole or not at all
  assert sorted(os.listdir(tmp_path)) == ["run.json"]


def test_compute_metrics_is_summarize_per_label():
  one, its = fake_curves(seed=1)
  other, _ = fake_curves(seed=2)
  metrics = results.compute_metrics({"a": one, "b": other}, its, 5, 4)
  assert list(metrics) == ["a", "b"]
  assert metrics["b"] == summarize(other, 5, 4, its["tasks"])
  assert metrics["a"]["avg_acc"] != metrics["b"]["avg_acc"]


def test_metrics_of_kept_seeds_only_where_some_but_not_all_failed():
  curves = {label: fake_curves(num_seeds=3, seed=i)[0] for i, label in enumerate("abc")}
  _, its = fake_curves(num_seeds=3)
  failed = {"a": [False, True, False], "b": [False, False, False], "c": [True, True, True]}
  kept = results.metrics_of_kept_seeds(curves, failed, its, 5, 4)
  assert list(kept) == ["a"]
  seeds_0_and_2 = {name: value[[0, 2]] for name, value in curves["a"].items()}
  assert kept["a"] == summarize(seeds_0_and_2, 5, 4, its["tasks"])
  assert kept["a"]["avg_acc"]["per_seed"] == [
      results.compute_metrics(curves, its, 5, 4)["a"]["avg_acc"]["per_seed"][i] for i in (0, 2)]


def test_result_record_and_its_config(tmp_path):
  one, its = fake_curves()
  meta = {**old_meta(), **PROTOCOL, "task1_test_size": 12}
  meta["train"] = {**meta["train"], "a_field_of_a_later_version": 3}
  result = results.Result({"ngm_sgd": one, "g0_sgd": one}, its, meta)
  assert result.labels == ["ngm_sgd", "g0_sgd"] and result.num_seeds == 2
  # The config from run.json's "train": unknown fields skipped, missing ones defaulted.
  assert result.config == FAST_CONFIG
  assert isinstance(result.config, TrainConfig)
  assert result.metrics["ngm_sgd"] == summarize(one, 5, 4, its["tasks"])
  again = results.load_result(results.save_result(result, tmp_path / "run"))
  assert again.meta == meta and again.labels == result.labels
  for name, value in one.items():
    np.testing.assert_array_equal(again.curves["g0_sgd"][name], value)


def test_read_json_record_names_what_the_record_lacks(tmp_path):
  meta = {**old_meta(), **PROTOCOL, "task1_test_size": 12}
  results.write_json(tmp_path / "run.json", meta)
  assert results.read_json_record(tmp_path / "run.json") == meta
  del meta["train"]["eval_every"], meta["num_tasks"]
  results.write_json(tmp_path / "run.json", meta)
  with pytest.raises(ValueError, match="run.json lacks num_tasks: it is not a complete run"):
    results.read_json_record(tmp_path / "run.json")
  meta["num_tasks"] = 5
  results.write_json(tmp_path / "run.json", meta)
  with pytest.raises(ValueError, match="its 'train' record lacks eval_every"):
    results.read_json_record(tmp_path / "run.json")
