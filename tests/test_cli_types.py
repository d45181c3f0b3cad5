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


def test_compute_dtype_flag_reads_a_choice_and_names_the_allowed(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["run", "--benchmark", "split_mnist", "--compute-dtype", "float16"])
  assert exit_info.value.code == 2
  assert ("argument --compute-dtype: float16 is not allowed: must be one of 'float32',"
          " 'bfloat16'") in capsys.readouterr().err
  parser = argparse.ArgumentParser()
  cli.args.add_experiment_flags(parser)
  assert parser.parse_args(["--compute-dtype", "bfloat16"]).compute_dtype == "bfloat16"
