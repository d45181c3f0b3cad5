"""ngm_jax.config: ExperimentConfig, seed keys, the recorded iterations and the
Task-1 evaluation size. (TrainConfig's checks: tests/test_checks.py.)"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from ngm_jax import benchmarks
from ngm_jax.checks import ParameterError, ParameterTypeError
from ngm_jax.config import (ExperimentConfig, TrainConfig, curve_iterations, seed_keys,
                            task1_eval_size)
from ngm_jax.optimizers import OPTIMIZERS


def test_experiment_config_of_a_benchmark_record():
  record = benchmarks.get("split_mnist")
  config = ExperimentConfig.of_benchmark(record)
  assert config.benchmark == "split_mnist" and config.train == record.config
  assert config.optimizers == OPTIMIZERS and config.seeds == 5
  assert config.options == dict(record.options) and config.options is not record.options
  assert config.augment is False and config.test_subset_per_task is None


@pytest.mark.parametrize("kwargs, error, message", [
    ({"seeds": 0}, ParameterError, "ExperimentConfig.seeds=0: must be an integer >= 1."),
    ({"seeds": 2.0}, ParameterTypeError,
     "ExperimentConfig.seeds=2.0: must be an integer >= 1, not a float."),
    ({"test_subset_per_task": 0}, ParameterError,
     "ExperimentConfig.test_subset_per_task=0: must be None or an integer >= 1."),
])
def test_experiment_config_names_a_bad_value(kwargs, error, message):
  with pytest.raises(error) as info:
    ExperimentConfig(benchmark="split_mnist", train=TrainConfig(), **kwargs)
  assert str(info.value) == message


def test_experiment_config_needs_a_train_config():
  with pytest.raises(TypeError, match=r"ExperimentConfig.train=\{'eta': 0.4\}: must be a"
                                      " TrainConfig"):
    ExperimentConfig(benchmark="split_mnist", train={"eta": 0.4})


def test_seed_s_always_gets_key_s():
  data = lambda keys: np.asarray(jax.random.key_data(keys))
  keys = seed_keys(3)
  assert keys.shape == (3,)
  np.testing.assert_array_equal(data(keys), data(jax.numpy.stack(
      [jax.random.key(s) for s in range(3)])))
  # A listed seed is the same key whether it comes alone or among others.
  np.testing.assert_array_equal(data(seed_keys([7, 2]))[1], data(keys)[2])
  np.testing.assert_array_equal(data(seed_keys([2]))[0], data(keys)[2])


def test_curve_iterations_count_from_one():
  config = TrainConfig(iterations_per_task=6, eval_every=2, task_eval_every=6)
  it = curve_iterations(config, 3)
  np.testing.assert_array_equal(it["step"], np.arange(1, 19))
  np.testing.assert_array_equal(it["task1"], [2, 4, 6, 8, 10, 12, 14, 16, 18])
  np.testing.assert_array_equal(it["tasks"], [6, 12, 18])  # after each task


def test_task1_eval_size_is_task_1s_test_set_or_the_limit():
  @dataclasses.dataclass
  class Stream:
    test_task_ends: tuple[int, ...] = (40, 90)

  assert task1_eval_size(Stream(), TrainConfig()) == 40
  assert task1_eval_size(Stream(), TrainConfig(eval_task1_limit=25)) == 25
  assert task1_eval_size(Stream(), TrainConfig(eval_task1_limit=100)) == 40
