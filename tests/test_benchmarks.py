"""The registry is the only list: every record is complete (config, config
module, provenance, README row, bench.py); Permuted MNIST and Split CIFAR-100
from their files; a user's own record, as the README shows it."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import numpy as np
import pytest

from experiments import bench, configs
from ngm_jax import benchmarks, provenance, streams
from ngm_jax.data import read_cifar100_pickles, read_mnist_idx
from ngm_jax.train import TrainConfig
from tests.conftest import fake_mnist, write_cifar100_pickles, write_mnist_idx

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
#: The library's records (read before any test registers one of its own).
NAMES = benchmarks.names()


def _readme_section(heading: str) -> str:
  text = README.read_text()
  assert heading in text, f"README has no {heading.strip()!r}"
  return text.split(heading, 1)[1].split("\n#", 1)[0]


def _readme_benchmark_rows() -> dict[str, list[str]]:
  """The README's benchmark table: ``--benchmark`` name → the row's cells."""
  rows = {}
  for line in _readme_section("### The benchmarks\n").splitlines():
    if not line.startswith("|"):
      continue
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    match = re.fullmatch(r"`([a-z0-9_]+)`", cells[1]) if len(cells) > 1 else None
    if match:
      rows[match.group(1)] = cells
  return rows


# ----------------------------------------------------------------------------
# Every record is complete


def test_the_new_benchmarks_are_registered():
  assert {"permuted_mnist", "split_cifar100"} <= set(NAMES)
  assert benchmarks.get("permuted_mnist").kind == "domain-incremental"
  assert benchmarks.get("split_cifar100").kind == "class-incremental"
  assert benchmarks.get("permuted_mnist").options == {
      "num_tasks": 10, "permutation_seed": 0, "train_per_task": None}
  assert benchmarks.get("split_cifar100").options == {"num_tasks": 10, "classes_per_task": 10}
  assert not benchmarks.get("permuted_mnist").convolutional
  assert benchmarks.get("split_cifar100").convolutional


@pytest.mark.parametrize("name", NAMES)
def test_record_has_a_config_and_a_config_module(name):
  record = benchmarks.get(name)
  assert record.kind in benchmarks.KINDS
  assert isinstance(record.config, TrainConfig)
  assert record.check_options({}) == dict(record.options)
  assert callable(record.load) and callable(record.build) and callable(record.model)
  assert (REPO / "experiments" / "configs" / f"{name}.py").is_file()
  assert name in configs.available()
  experiment = configs.get_config(name)
  assert experiment.benchmark == name
  assert isinstance(experiment.train, TrainConfig)
  # The module runs the record's config; the one change allowed is a smaller
  # Task-1 evaluation (a CPU budget: it does not change the training).
  assert experiment.train == dataclasses.replace(
      record.config, eval_task1_limit=experiment.train.eval_task1_limit)
  assert set(experiment.options) <= set(record.options)
  record.check_options(experiment.options)
  assert not experiment.augment or record.augment is not None
  # Its docstring opens with the command that runs it.
  doc = importlib.import_module(f"experiments.configs.{name}").__doc__
  command = doc.split("\n\n")[1].strip()  # after the opening paragraph
  assert (f"run --config experiments/configs/{name}.py" in command
          or f"run --benchmark {name}" in command), command
  assert ("not measured" in doc.lower()) or re.search(r"\d+ s\b|hours?|GPU job|docs/results",
                                                       doc)


@pytest.mark.parametrize("name", NAMES)
def test_record_describes_its_data_for_provenance(name, tmp_path):
  record = benchmarks.get(name)
  assert isinstance(record.dataset, str) and record.dataset
  assert callable(record.data_files)
  assert record.data_files(tmp_path) == []  # nothing there
  found = provenance.data_provenance(name, tmp_path)
  assert found["source"] == "files" and found["dataset"] == record.dataset
  assert found["files"] == {}
  assert record.display_name and record.title


def test_provenance_has_no_list_of_its_own():
  assert not hasattr(provenance, "DATASET_OF_BENCHMARK")


@pytest.mark.parametrize("name", NAMES)
def test_record_has_a_readme_row(name):
  rows = _readme_benchmark_rows()
  assert name in rows, f"README's benchmark table has no row for `{name}`"
  cells = rows[name]
  record = benchmarks.get(name)
  assert cells[0] == record.display_name
  assert record.kind in cells


def test_readme_table_lists_only_registered_benchmarks():
  assert set(_readme_benchmark_rows()) == set(NAMES)


def test_bench_reads_the_registry(capsys):
  with pytest.raises(SystemExit):
    bench.main(["--benchmark", "not_a_benchmark"])
  err = capsys.readouterr().err
  for name in NAMES:
    assert name in err  # argparse lists the choices: the registry's names
  for name in NAMES:
    kind = bench.sizes_key(name)
    assert kind == ("convolutional" if benchmarks.get(name).convolutional else "mlp")


@pytest.mark.parametrize("name", NAMES)
def test_bench_synthetic_stream_of_every_record(name):
  args = type("Args", (), dict(benchmark=name, synthetic=True, synthetic_size="200,100",
                               test_subset=None, data_dir=None))()
  stream, note = bench.bench_stream(args)
  record = benchmarks.get(name)
  assert stream.name == name and record.dataset in note
  assert stream.num_tasks == record.check_options(configs.get_config(name).options).get(
      "num_tasks", stream.num_tasks)
  assert stream.train_images.dtype == np.uint8


# ----------------------------------------------------------------------------
# Permuted MNIST and Split CIFAR-100 from their files


@pytest.fixture
def tiny_mnist_dir(tmp_path):
  return write_mnist_idx(tmp_path / "mnist", fake_mnist(n_train_per_class=4,
                                                        n_test_per_class=2))


def test_permuted_mnist_from_idx_files(tiny_mnist_dir):
  data = read_mnist_idx(tiny_mnist_dir)
  n = len(data.train_labels)
  stream = benchmarks.load_benchmark("permuted_mnist", tiny_mnist_dir, num_tasks=3)
  assert stream.num_tasks == 3 and stream.num_classes == 10
  np.testing.assert_array_equal(stream.train_task_ends, [n, 2 * n, 3 * n])
  # Reproducible from the recorded seed (the record's default, 0).
  perms = streams.pixel_permutations(3, seed=0)
  for k in range(3):
    task = stream.train_images[k * n:(k + 1) * n].reshape(n, 784)
    np.testing.assert_array_equal(task, data.train_images.reshape(n, 784)[:, perms[k]])
    np.testing.assert_array_equal(stream.train_labels[k * n:(k + 1) * n], data.train_labels)
  other = benchmarks.load_benchmark("permuted_mnist", tiny_mnist_dir, num_tasks=3,
                                    permutation_seed=1)
  assert not np.array_equal(other.train_images[n:], stream.train_images[n:])
  subset = benchmarks.load_benchmark("permuted_mnist", tiny_mnist_dir, num_tasks=2,
                                     train_per_task=7)
  np.testing.assert_array_equal(subset.train_task_ends, [7, 14])
  found = provenance.data_provenance("permuted_mnist", tiny_mnist_dir)
  assert found["dataset"] == "mnist" and len(found["files"]) == 4


@pytest.mark.parametrize("options, message", [
    ({"permutation_seed": -1}, "permuted_mnist: permutation_seed=-1; must be an integer >= 0"),
    ({"num_tasks": 0}, "permuted_mnist: num_tasks=0; must be an integer >= 1"),
    ({"train_per_task": 0}, "permuted_mnist: train_per_task=0; must be an integer >= 1"),
])
def test_permuted_mnist_options_are_checked_before_reading(tmp_path, options, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    benchmarks.load_benchmark("permuted_mnist", tmp_path / "no_data_here", **options)


def test_split_cifar100_from_pickles(tmp_path):
  write_cifar100_pickles(tmp_path / "cifar-100-python")
  stream = benchmarks.load_benchmark("split_cifar100", tmp_path)
  assert stream.num_tasks == 10 and stream.num_classes == 100
  classes = []
  for ends, labels in ((stream.train_task_ends, stream.train_labels),
                       (stream.test_task_ends, stream.test_labels)):
    per_task = [set(labels[lo:hi].tolist()) for lo, hi in zip(np.r_[0, ends[:-1]], ends)]
    assert per_task == [set(range(10 * t, 10 * t + 10)) for t in range(10)]
    classes.append(per_task)
  flat = [c for task in classes[0] for c in task]
  assert len(flat) == len(set(flat)) == 100  # disjoint
  found = provenance.data_provenance("split_cifar100", tmp_path)
  assert found["dataset"] == "cifar100" and set(found["files"]) == {"train", "test"}
  assert read_cifar100_pickles(tmp_path).train_images.shape[1:] == (32, 32, 3)


@pytest.mark.parametrize("options, message", [
    ({"num_tasks": 11}, "split_cifar100: classes_per_task=10; must be an integer in [1, 9]"),
    ({"num_tasks": 0}, "split_cifar100: num_tasks=0; must be an integer in [1, 100]"),
    ({"classes_per_task": 0}, "split_cifar100: classes_per_task=0"),
])
def test_split_cifar100_options_are_checked_before_reading(tmp_path, options, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    benchmarks.load_benchmark("split_cifar100", tmp_path / "no_data_here", **options)


# ----------------------------------------------------------------------------
# A user's own record: the README's code, run as written (on tiny data)


@pytest.fixture
def unregister():
  before = set(benchmarks.BENCHMARKS)
  yield
  for name in set(benchmarks.BENCHMARKS) - before:
    del benchmarks.BENCHMARKS[name]


def test_readme_own_benchmark_runs(tiny_mnist_dir, unregister, capsys):
  blocks = re.findall(r"```python\n(.*?)```", _readme_section("## Your own benchmark\n"),
                      flags=re.S)
  assert len(blocks) == 2 and "benchmarks.register(" in blocks[0]
  exec(compile(blocks[0], str(README), "exec"), {})  # pylint: disable=exec-used
  record = benchmarks.get("my_split_mnist")
  assert record.kind == "class-incremental" and record.dataset == "mnist"
  assert record.config.iterations_per_task == 200
  # A few iterations instead of the record's 200 per task.
  benchmarks.BENCHMARKS["my_split_mnist"] = dataclasses.replace(
      record, config=TrainConfig(iterations_per_task=2, batch_size=4, task_eval_every=2))
  assert '"DIR"' in blocks[1]
  code = blocks[1].replace('"DIR"', repr(str(tiny_mnist_dir)))
  namespace = {}
  exec(compile(code, str(README), "exec"), namespace)  # pylint: disable=exec-used
  assert "('0/1/2/3/4', '5/6/7/8/9')" in capsys.readouterr().out
  result = namespace["result"]
  assert result.curves["ngm_sgd"]["task1_acc"].shape == (2, 4)  # 2 seeds, 2 tasks x 2
  assert set(result.curves) == {"ngm_sgd", "adam"}
  assert provenance.data_provenance("my_split_mnist", tiny_mnist_dir)["dataset"] == "mnist"
  with pytest.raises(ValueError, match="already registered"):
    benchmarks.register(record)
