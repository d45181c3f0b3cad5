"""The comma-separated option type, the one list reader of every command."""

import argparse

import pytest

from experiments import ablations, curvature, replay, sensitivity
from ngm_jax import cli
from ngm_jax.cli.args import comma_separated


def test_comma_separated_reads_sorts_and_names_the_flag():
  assert comma_separated(float, "--etas")("0.4, 0.1,0.4") == (0.4, 0.1, 0.4)
  assert comma_separated(int, "--offsets", sort_unique=True)("5,-5,1,5") == (-5, 1, 5)
  with pytest.raises(argparse.ArgumentTypeError, match="--offsets '1,x'"):
    comma_separated(int, "--offsets")("1,x")
  with pytest.raises(argparse.ArgumentTypeError, match="give comma-separated floats"):
    comma_separated(float, "--gammas")(" , ")
  names = comma_separated(str, "--variants", choices=("a", "b"), noun="variant")
  assert names(" b, a") == ("b", "a")
  with pytest.raises(argparse.ArgumentTypeError,
                     match=r"unknown variant\(s\) c, d; choose from a, b \(comma-separated\)"):
    names("a,c,d")


@pytest.mark.parametrize("module, argv, expected", [
    (sensitivity, ["--etas", "0.1,high"], "--etas '0.1,high'"),
    (curvature, ["--offsets", ""], "--offsets ''"),
    (ablations, ["--variants", "ngm_sgd,rmsprop"], "unknown variant(s) rmsprop; choose from"),
    (replay, ["--per-class", "5", "--optimizers", "adam,rmsprop"],
     "unknown optimizer(s) rmsprop; choose from"),
    (cli, ["run", "--benchmark", "split_mnist", "--optimizers", "ngm_sgd,,rmsprop"],
     "unknown optimizer(s) rmsprop; choose from"),
])
def test_commands_reject_bad_lists_with_the_flag_named(module, argv, expected, capsys):
  with pytest.raises(SystemExit) as exit_info:
    module.main(argv)
  assert exit_info.value.code == 2 and expected in capsys.readouterr().err


def test_help_of_every_override_flag_states_the_registry_values():
  """``--help`` of a flag that overrides a config value says what the value is."""
  from ngm_jax import benchmarks
  from ngm_jax.cli import parser
  from ngm_jax.cli.args import TRAIN_FLAGS, flag_of, option_flags
  run = parser()._subparsers._group_actions[0].choices["run"]  # pylint: disable=protected-access
  helps = {flag: action.help for action in run._actions for flag in action.option_strings}  # pylint: disable=protected-access
  split = benchmarks.get("split_mnist").config
  for field in TRAIN_FLAGS:
    value = getattr(split, field)
    text = ("none" if value is None else value if isinstance(value, str) else f"{value:g}")
    assert f"{text} split_mnist" in helps[flag_of(field)] or (
        f"{text}, every benchmark" in helps[flag_of(field)]), (field, helps[flag_of(field)])
  assert "200 split_mnist; 400 rotated_mnist" in helps["--iterations-per-task"]
  assert "0.4 split_mnist; 0.5 rotated_mnist" in helps["--eta"]
  for option, (flag, _) in option_flags().items():
    assert "registry's configs: " in helps[flag], flag
  assert "10 permuted_mnist, split_cifar100" in helps["--num-tasks"]


def test_augment_help_names_the_config_files_that_turn_it_on():
  from pathlib import Path
  from ngm_jax.cli import parser
  run = parser()._subparsers._group_actions[0].choices["run"]  # pylint: disable=protected-access
  text = next(a.help for a in run._actions if "--augment" in a.option_strings)  # pylint: disable=protected-access
  configs = Path(__file__).resolve().parents[1] / "experiments" / "configs"
  on = sorted(f.name for f in configs.glob("*.py") if "augment=True" in f.read_text())
  assert on and all(name in text for name in on), (on, text)


def test_compute_dtype_flag_reads_a_choice_and_names_the_allowed(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["run", "--benchmark", "split_mnist", "--compute-dtype", "float16"])
  assert exit_info.value.code == 2
  assert ("argument --compute-dtype: float16 is not allowed: must be one of 'float32',"
          " 'bfloat16'") in capsys.readouterr().err
  parser = argparse.ArgumentParser()
  cli.args.add_experiment_flags(parser)
  assert parser.parse_args(["--compute-dtype", "bfloat16"]).compute_dtype == "bfloat16"
