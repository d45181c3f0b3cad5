"""The run record (ngm_jax.run_record): one builder for run.json, the
differences a resume is refused on, and the flag a refusal names."""

import json

import pytest

from ngm_jax import cli
from ngm_jax.cli.args import flag_of_record
from ngm_jax.run_record import (Difference, ResumeMismatch, SAME_RUN, protocol_record,
                                resume_differences, run_record, variant_record)
from ngm_jax.streams import split_mnist
from ngm_jax.train import TrainConfig
from tests.conftest import fake_mnist, write_mnist_idx

CONFIG = TrainConfig(iterations_per_task=4, batch_size=8, task_eval_every=2, eta=0.4)


@pytest.fixture(scope="module")
def stream():
  return split_mnist(fake_mnist())


def _record(stream, config=CONFIG, **extra):
  protocol = protocol_record(stream, config, seeds=[0, 1], model="MLP", augment=False,
                             kind="mnist", model_kind="linen", gain_placement="kernels")
  variants = {"ngm_sgd": variant_record("ngm_sgd", config, has_gain=True),
              "sgd": variant_record("sgd", config, has_gain=False)}
  return run_record(protocol, variants, execution={"loop": "scan", "seed_axis": "vmap"},
                    extra=extra)


def test_run_record_holds_the_protocol_the_variants_and_the_environment(stream):
  record = _record(stream, benchmark_options={"num_tasks": 5})
  assert record["benchmark"] == "split_mnist" and record["num_tasks"] == 5
  assert record["optimizers"] == ["ngm_sgd", "sgd"] and record["seeds"] == [0, 1]
  assert record["train"]["eta"] == 0.4 and record["variants"]["sgd"]["has_gain"] is False
  assert record["task1_test_size"] == int(stream.test_task_ends[0])
  assert record["test_sizes"] == stream.task_sizes("test").tolist()
  assert record["loop"] == "scan" and record["benchmark_options"] == {"num_tasks": 5}
  for key in ("device", "jax_version", "python", "command"):
    assert isinstance(record[key], str) and record[key], key
  assert record["timings"] == {}
  json.dumps(record)  # all of it JSON


def test_extra_keys_may_not_replace_the_records_own(stream):
  with pytest.raises(ValueError, match=r"\['seeds'\] would replace"):
    _record(stream, seeds=[5])


def test_resume_differences_are_the_leaves_that_differ_once_each(stream):
  saved = _record(stream)
  now = _record(stream, TrainConfig(iterations_per_task=4, batch_size=8, task_eval_every=2,
                                    eta=0.9))
  differences = resume_differences(saved, now)
  # train.eta once: not again under each variant's train, which repeats it.
  assert differences == [Difference(("train", "eta"), 0.4, 0.9)]
  assert str(differences[0]) == "train.eta: saved 0.4, now 0.9"
  assert resume_differences(saved, saved) == []
  # A variant's own setting is its own difference; tuples compare as JSON's lists.
  now = json.loads(json.dumps(saved))
  now["variants"]["sgd"]["train"]["learning_rate"] = 0.5
  now["task_names"] = tuple(now["task_names"])
  assert resume_differences(saved, now) == [
      Difference(("variants", "sgd", "train", "learning_rate"), 0.01, 0.5)]
  assert set(SAME_RUN) >= {"train", "variants", "seeds", "loop", "seed_axis"}


def test_a_refusal_is_told_with_the_flags(stream):
  saved = _record(stream)
  now = json.loads(json.dumps(saved))
  now["train"]["eta"], now["seeds"] = 0.9, [0, 1, 2]
  now["benchmark_options"] = {"num_tasks": 3}
  error = ResumeMismatch("OUT", resume_differences(saved, now))
  assert "train.eta: saved 0.4, now 0.9" in str(error)
  told = str(error.told(flag_of_record))
  assert "--eta: saved 0.4, now 0.9" in told and "--seeds: saved [0, 1], now [0, 1, 2]" in told
  assert "--num-tasks: saved None, now 3" in told and "train.eta" not in told
  assert isinstance(error.told(flag_of_record), ValueError)


def test_flag_of_record_paths():
  assert flag_of_record(("train", "eta")) == "--eta"
  assert flag_of_record(("variants", "adam", "train", "learning_rate")) == "--learning-rate (adam)"
  assert flag_of_record(("variants", "adam", "optimizer")) == "--optimizers (adam)"
  assert flag_of_record(("seed_axis",)) == "--seed-axis"
  assert flag_of_record(("benchmark_options", "classes_per_task")) == "--classes-per-task"
  assert flag_of_record(("python",)) is None


def test_cli_resume_with_another_eta_names_the_flag(tmp_path, capsys):
  data_dir = write_mnist_idx(tmp_path / "data", fake_mnist())
  out = tmp_path / "out"
  common = ["run", "--benchmark", "split_mnist", "--optimizers", "ngm_sgd", "--seeds", "1",
            "--data-dir", str(data_dir), "--out", str(out), "--iterations-per-task", "4",
            "--batch-size", "8", "--task-eval-every", "2", "--no-progress"]
  assert cli.main(common + ["--eta", "0.4"]) == 0
  summary = capsys.readouterr().out
  assert "Split MNIST: 1 seeds, 5 tasks x 4 iterations" in summary  # the display name
  assert cli.main(common + ["--eta", "0.9", "--resume"]) == 2
  err = capsys.readouterr().err
  assert "--eta: saved 0.4, now 0.9" in err, err
  assert "{" not in err  # no whole config dictionaries
  assert err.count("\n") == 1  # one line
