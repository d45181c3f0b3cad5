"""Errors about named parameters carry the name, so callers re-word them by structure."""

from __future__ import annotations

import pickle

import pytest

from ngm_jax import checks, gain_modulation
from ngm_jax.config import TrainConfig


@pytest.mark.parametrize("kwargs, cls, parameter, message", [
    ({"eta": -1.0}, checks.ParameterError, "eta",
     "TrainConfig.eta=-1.0: must be a finite number >= 0."),
    ({"gamma": "0.5"}, checks.ParameterTypeError, "gamma",
     "TrainConfig.gamma='0.5': must be a finite number in [0, 1), not a str."),
    ({"eval_every": 3}, checks.ParameterError, "eval_every",
     "TrainConfig: eval_every=3 must divide task_eval_every=10."),
    ({"task_eval_every": 7}, checks.ParameterError, "task_eval_every",
     "TrainConfig: task_eval_every=7 must divide iterations_per_task=200."),
])
def test_train_config_errors_name_their_parameter(kwargs, cls, parameter, message):
  with pytest.raises(cls) as info:
    TrainConfig(**kwargs)
  error = info.value
  assert str(error) == message and error.parameter == parameter
  assert error.value == kwargs[parameter]
  assert isinstance(error, ValueError if cls is checks.ParameterError else TypeError)
  again = pickle.loads(pickle.dumps(error))  # crosses process boundaries intact
  assert type(again) is cls and str(again) == message and again.parameter == parameter


def test_told_rewords_every_named_parameter_without_the_owner():
  with pytest.raises(checks.ParameterError) as info:
    TrainConfig(eval_every=2, task_eval_every=9, iterations_per_task=18)
  flag = lambda name, value: f"--{name.replace('_', '-')} {value}"
  assert info.value.told(flag) == "--eval-every 2 must divide --task-eval-every 9."
  assert info.value.values == {"eval_every": 2, "task_eval_every": 9}


def test_optimizer_factories_raise_the_same_structure():
  with pytest.raises(checks.ParameterError) as info:
    gain_modulation(g0=0.0)
  assert info.value.parameter == "g0" and str(info.value).startswith("gain_modulation: g0=0.0")


def test_a_what_that_is_no_name_gives_a_plain_error():
  with pytest.raises(ValueError) as info:
    checks.check_integer("--seeds", 0, 1)
  assert not isinstance(info.value, checks.ParameterError)
  assert str(info.value) == "--seeds=0: must be an integer >= 1."
