"""``ngm-jax tune``: flags, a user's factory with its search space, the files."""

import json
import sys

import pytest

from ngm_jax.cli import main

FACTORY = '''
import optax


def make_tx(learning_rate, momentum):
  return optax.sgd(learning_rate, momentum=momentum)


make_tx.search_space = {"learning_rate": (1e-3, 1e-1, "log"), "momentum": (0.0, 0.9, "linear")}
'''

TINY = ["--benchmark", "split_mnist", "--seeds", "1", "--iterations-per-task", "4",
        "--batch-size", "8", "--task-eval-every", "2", "--no-progress",
        "--checkpoint-every-s", "0"]


@pytest.mark.slow
def test_tune_from_the_command_line_with_a_local_factory(mnist_dir, tmp_path, monkeypatch,
                                                         capsys):
  (tmp_path / "mylab").mkdir()
  (tmp_path / "mylab" / "__init__.py").write_text("")
  (tmp_path / "mylab" / "tuned_opt.py").write_text(FACTORY)
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
  out = tmp_path / "tuned"
  code = main(["tune", *TINY, "--data-dir", str(mnist_dir), "--optimizers",
               "sgd,mylab.tuned_opt:make_tx", "--budget", "2", "--search-seeds", "1",
               "--out", str(out)])
  assert code == 0, capsys.readouterr().err
  record = json.loads((out / "tuning.json").read_text())
  assert record["budget"] == 2 and record["objective"] == "wc_acc_all"
  mine = record["optimizers"]["mylab.tuned_opt:make_tx"]
  assert mine["space"] == {"learning_rate": {"low": 1e-3, "high": 1e-1, "scale": "log"},
                           "momentum": {"low": 0.0, "high": 0.9, "scale": "linear"}}
  assert len(mine["trials"]) == 2 and len(record["optimizers"]["sgd"]["trials"]) == 2
  for name in ("tuning.md", "tradeoff.png", "table.md", "curves.npz"):
    assert (out / name).exists(), name
  # A second command without --resume or --overwrite is refused, naming the way on.
  assert main(["tune", *TINY, "--data-dir", str(mnist_dir), "--optimizers", "sgd",
               "--budget", "2", "--out", str(out)]) == 2
  assert "already holds a tuning" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--optimizers", "lion", "--budget", "2"], "no search space for lion"),
    (["--optimizers", "sgd", "--budget", "0"], "0 is not allowed"),
    (["--optimizers", "sgd", "--budget", "2", "--validation-fraction", "1.5"],
     "must be a number in (0, 1)"),
])
def test_bad_flags_end_in_one_line(flags, message, capsys):
  with pytest.raises(SystemExit) as e:
    main(["tune", *TINY, *flags])
  assert e.value.code == 2
  assert message in capsys.readouterr().err


def test_a_factory_without_its_search_space_arguments_is_named(mnist_dir, tmp_path,
                                                               monkeypatch, capsys):
  (tmp_path / "badlab").mkdir()
  (tmp_path / "badlab" / "__init__.py").write_text("")
  (tmp_path / "badlab" / "opt.py").write_text(
      "import optax\n\ndef make_tx(lr):\n  return optax.sgd(lr)\n")
  monkeypatch.chdir(tmp_path)
  code = main(["tune", *TINY, "--data-dir", str(mnist_dir), "--optimizers",
               "badlab.opt:make_tx", "--budget", "2", "--out", str(tmp_path / "o")])
  assert code == 2
  assert "takes no argument(s) learning_rate" in capsys.readouterr().err
