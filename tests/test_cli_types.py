"""The comma-separated option types of the experiment commands."""

import argparse

import pytest

from experiments import curvature, sensitivity
from experiments.cli_types import comma_separated


def test_comma_separated_reads_sorts_and_names_the_flag():
  assert comma_separated(float, "--etas")("0.4, 0.1,0.4") == (0.4, 0.1, 0.4)
  assert comma_separated(int, "--offsets", sort_unique=True)("5,-5,1,5") == (-5, 1, 5)
  with pytest.raises(argparse.ArgumentTypeError, match="--offsets '1,x'"):
    comma_separated(int, "--offsets")("1,x")
  with pytest.raises(argparse.ArgumentTypeError, match="give comma-separated floats"):
    comma_separated(float, "--gammas")(" , ")


@pytest.mark.parametrize("module, argv, expected", [
    (sensitivity, ["--etas", "0.1,high"], "--etas '0.1,high'"),
    (curvature, ["--offsets", ""], "--offsets ''"),
])
def test_commands_reject_bad_lists_with_the_flag_named(module, argv, expected, capsys):
  with pytest.raises(SystemExit) as exit_info:
    module.main(argv)
  assert exit_info.value.code == 2 and expected in capsys.readouterr().err
