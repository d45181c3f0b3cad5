"""Provenance in run.json: versions, git revision, data digests, official MNIST, --name."""

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from experiments import common
from experiments import run as cli
from ngm_jax import provenance
from tests.conftest import fake_mnist, write_mnist_idx

REPO = Path(__file__).resolve().parent.parent
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")


def _sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------
# versions and git


def test_versions_names_the_stack():
  found = provenance.versions()
  assert set(provenance.PACKAGES) <= set(found)
  assert found["jax"] == jax.__version__ and found["optax"] == optax.__version__
  assert found["numpy"] == np.__version__
  assert all(isinstance(v, str) for k, v in found.items())
  assert set(found) - set(provenance.PACKAGES) <= set(provenance.OPTIONAL_PACKAGES)
  missing = provenance.versions(("surely-not-installed-pkg",), ("also-not-installed-pkg",))
  assert missing == {"surely-not-installed-pkg": None}  # optional ones only when there


def _git(*args, cwd):
  return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                        check=True, capture_output=True, text=True).stdout.strip()


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@needs_git
def test_git_revision_of_this_checkout():
  if not (REPO / ".git").exists():
    pytest.skip("not run from a git checkout")
  found = provenance.git_revision()
  assert found is not None
  assert found["commit"] == _git("rev-parse", "HEAD", cwd=REPO)
  assert isinstance(found["dirty"], bool)


@needs_git
def test_git_revision_commit_dirty_and_not_a_checkout(tmp_path):
  assert provenance.git_revision(tmp_path) is None  # no checkout
  assert provenance.git_revision(tmp_path / "missing") is None
  repo = tmp_path / "repo"
  repo.mkdir()
  _git("init", "-q", cwd=repo)
  (repo / "a.txt").write_text("1")
  _git("add", "a.txt", cwd=repo)
  _git("commit", "-q", "-m", "first", cwd=repo)
  head = _git("rev-parse", "HEAD", cwd=repo)
  assert provenance.git_revision(repo) == {"commit": head, "dirty": False}
  (repo / "untracked.txt").write_text("x")  # untracked files do not count
  assert provenance.git_revision(repo)["dirty"] is False
  (repo / "a.txt").write_text("2")
  assert provenance.git_revision(repo) == {"commit": head, "dirty": True}
  # A folder inside a checkout (site-packages in a repo's venv) is not the checkout.
  (repo / "sub").mkdir()
  assert provenance.git_revision(repo / "sub") is None


# ----------------------------------------------------------------------------
# data


def test_sha256_of_known_content(tmp_path):
  # The FIPS 180-2 test vectors, independent of hashlib.
  (tmp_path / "abc").write_bytes(b"abc")
  (tmp_path / "empty").write_bytes(b"")
  assert provenance.sha256_file(tmp_path / "abc") == (
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  assert provenance.sha256_file(tmp_path / "empty") == (
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  with gzip.open(tmp_path / "abc.gz", "wb") as f:
    f.write(b"abc")
  assert provenance.sha256_file(tmp_path / "abc.gz", gunzip=True) == (
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_sha256_of_files_the_test_wrote(tmp_path):
  payload = np.random.default_rng(0).bytes(3_000_000)  # more than one 1 MiB block
  (tmp_path / "raw").write_bytes(payload)
  with gzip.open(tmp_path / "raw.gz", "wb") as f:
    f.write(payload)
  assert provenance.sha256_file(tmp_path / "raw") == _sha256(payload)
  assert provenance.sha256_file(tmp_path / "raw.gz") == _sha256((tmp_path / "raw.gz").read_bytes())
  assert provenance.sha256_file(tmp_path / "raw.gz", gunzip=True) == _sha256(payload)


@pytest.mark.parametrize("gz", [True, False])
def test_data_provenance_records_each_mnist_file(tmp_path, gz):
  folder = write_mnist_idx(tmp_path / "idx", fake_mnist(), gz=gz)
  found = provenance.data_provenance("split_mnist", folder)
  ext = ".gz" if gz else ""
  assert found["source"] == "files" and found["dataset"] == "mnist"
  assert found["data_dir"] == str(folder)
  assert set(found["files"]) == {stem + ext for stem in STEMS}
  for name, record in found["files"].items():
    raw = (folder / name).read_bytes()
    assert record["sha256"] == _sha256(raw) and record["bytes"] == len(raw)
    if gz:
      assert record["content_sha256"] == _sha256(gzip.decompress(raw))
    else:
      assert "content_sha256" not in record
  assert found["official_mnist"] is False and found["official_mnist_gz"] is False


def test_official_mnist_only_when_every_digest_matches(tmp_path, monkeypatch):
  folder = write_mnist_idx(tmp_path / "idx", fake_mnist())
  files = provenance.data_provenance("split_mnist", folder)["files"]
  content = {name[:-3]: r["content_sha256"] for name, r in files.items()}
  archive = {name: r["sha256"] for name, r in files.items()}
  # The decompressed data match: the official data, re-compressed.
  monkeypatch.setattr(provenance, "MNIST_OFFICIAL_SHA256", content)
  assert provenance.mnist_official(files) == {"official": True, "identical_gz": False}
  found = provenance.data_provenance("rotated_mnist", folder)
  assert found["official_mnist"] is True and found["official_mnist_gz"] is False
  # The .gz files match byte for byte as well.
  monkeypatch.setattr(provenance, "MNIST_OFFICIAL_GZ_SHA256", archive)
  assert provenance.mnist_official(files) == {"official": True, "identical_gz": True}
  # One file differs: not official.
  monkeypatch.setattr(provenance, "MNIST_OFFICIAL_SHA256",
                      {**content, "t10k-labels-idx1-ubyte": "0" * 64})
  assert provenance.mnist_official(files)["official"] is False
  # Not the four MNIST files: no verdict.
  assert provenance.mnist_official({"train-images-idx3-ubyte.gz": {}}) is None


def test_official_digests_are_the_four_files():
  assert set(provenance.MNIST_OFFICIAL_SHA256) == set(STEMS)
  assert set(provenance.MNIST_OFFICIAL_GZ_SHA256) == {s + ".gz" for s in STEMS}
  digests = [*provenance.MNIST_OFFICIAL_SHA256.values(),
             *provenance.MNIST_OFFICIAL_GZ_SHA256.values()]
  assert all(re.fullmatch("[0-9a-f]{64}", d) for d in digests), digests  # hex as hexdigest()
  assert len(set(digests)) == 8  # no digest pasted twice


def _real_mnist_folder():
  """A folder holding the four real MNIST files: $NGM_JAX_DATA_DIR, else the
  copy beside the checkout (../shared/data/mnist, where the README's commands
  read it); None when neither has them."""
  for folder in (os.environ.get("NGM_JAX_DATA_DIR"), REPO.parent / "shared" / "data" / "mnist"):
    if folder and all((Path(folder) / (s + ".gz")).is_file() or (Path(folder) / s).is_file()
                      for s in STEMS):
      return Path(folder)
  return None


def test_official_content_digests_are_those_of_a_real_mnist_copy():
  # The pinned digests of the decompressed files, checked against real data
  # (skipped where no copy is at hand: the tests never download).
  folder = _real_mnist_folder()
  if folder is None:
    pytest.skip("no MNIST copy ($NGM_JAX_DATA_DIR or ../shared/data/mnist)")
  found = provenance.data_provenance("split_mnist", folder)
  assert len(found["files"]) == 4 and found["official_mnist"] is True
  for name, record in found["files"].items():
    stem = name[:-3] if name.endswith(".gz") else name
    assert record.get("content_sha256", record["sha256"]) == (
        provenance.MNIST_OFFICIAL_SHA256[stem]), name


def test_cifar_pickles_are_hashed(tmp_path):
  from tests.conftest import write_cifar10_pickles  # pylint: disable=g-import-not-at-top
  write_cifar10_pickles(tmp_path / "cifar-10-batches-py")
  found = provenance.data_provenance("split_cifar10", tmp_path)
  assert set(found["files"]) == {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch"}
  assert "official_mnist" not in found


def test_data_provenance_reads_the_registry_record(tmp_path, monkeypatch):
  """What is recorded comes from the benchmark's record: its dataset and the
  files its data_files finds; a record without a dataset records none."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from ngm_jax import benchmarks  # pylint: disable=g-import-not-at-top
  (tmp_path / "mine.bin").write_bytes(b"my data")
  (tmp_path / "other.bin").write_bytes(b"not read")
  mine = dataclasses.replace(benchmarks.get("split_mnist"), name="my_stream",
                             dataset="my_data", data_files=lambda d: [d / "mine.bin"])
  monkeypatch.setitem(benchmarks.BENCHMARKS, "my_stream", mine)
  found = provenance.data_provenance("my_stream", tmp_path)
  assert found == {"source": "files", "data_dir": str(tmp_path), "dataset": "my_data",
                   "files": {"mine.bin": {"sha256": _sha256(b"my data"), "bytes": 7}}}
  assert provenance.data_files("my_stream", tmp_path) == [tmp_path / "mine.bin"]
  monkeypatch.setitem(benchmarks.BENCHMARKS, "my_stream",
                      dataclasses.replace(mine, dataset=None, data_files=None))
  assert provenance.data_provenance("my_stream", tmp_path) is None
  assert provenance.data_files("my_stream", tmp_path) == []
  with pytest.raises(ValueError, match="Unknown benchmark 'nope'; choose from split_mnist"):
    provenance.data_files("nope", tmp_path)


def test_tfds_source_records_versions_not_files(monkeypatch):
  import sys  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  monkeypatch.delenv("NGM_JAX_DATA_DIR", raising=False)
  builder = types.SimpleNamespace(version="3.0.1", data_dir="/tfds/mnist/3.0.1")
  module = types.SimpleNamespace(__version__="4.9.10", builder=lambda name, data_dir=None: builder)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
  assert provenance.data_provenance("split_mnist", None) == {
      "source": "tensorflow-datasets", "dataset": "mnist", "tfds_version": "4.9.10",
      "dataset_version": "3.0.1", "data_dir": "/tfds/mnist/3.0.1"}
  assert provenance.data_provenance("not_a_benchmark", None) is None


# ----------------------------------------------------------------------------
# The command line: --name and the provenance in run.json


@pytest.fixture
def code_checkout(tmp_path, monkeypatch):
  """A git checkout made here, with one known commit, that git_revision takes
  for the checkout the code runs from (provenance's ``__file__`` inside its
  ``ngm_jax/``). Returns ``(top folder, commit)``."""
  if shutil.which("git") is None:
    pytest.skip("git is not installed")
  top = tmp_path / "checkout"
  (top / "ngm_jax").mkdir(parents=True)
  (top / "ngm_jax" / "provenance.py").write_text("# the code\n")
  _git("init", "-q", cwd=top)
  _git("add", "ngm_jax/provenance.py", cwd=top)
  _git("commit", "-q", "-m", "the code", cwd=top)
  monkeypatch.setattr(provenance, "__file__", str(top / "ngm_jax" / "provenance.py"))
  return top, _git("rev-parse", "HEAD", cwd=top)


def _parse(argv):
  parser = argparse.ArgumentParser()
  common.add_experiment_flags(parser)
  return parser.parse_args(argv)


def test_name_and_provenance_in_the_experiment_meta(tmp_path, code_checkout):
  top, head = code_checkout
  folder = write_mnist_idx(tmp_path / "fashion", fake_mnist())
  args = _parse(["--benchmark", "split_mnist", "--data-dir", str(folder),
                 "--name", "Split Fashion-MNIST"])
  meta = common.load_experiment(args).meta
  assert meta["benchmark_label"] == "Split Fashion-MNIST"
  assert set(provenance.PACKAGES) <= set(meta["versions"])
  assert meta["data"]["files"]["train-images-idx3-ubyte.gz"]["sha256"] == _sha256(
      (folder / "train-images-idx3-ubyte.gz").read_bytes())
  assert meta["data"]["official_mnist"] is False
  assert meta["git"] == {"commit": head, "dirty": False}
  (top / "ngm_jax" / "provenance.py").write_text("# the code, edited\n")  # now dirty
  unnamed = common.load_experiment(_parse(["--benchmark", "split_mnist",
                                           "--data-dir", str(folder)])).meta
  assert unnamed["benchmark_label"] is None  # titled by meta["benchmark"]
  assert unnamed["git"] == {"commit": head, "dirty": True}


@pytest.mark.parametrize("name", ["", "   ", "two\nlines"])
def test_a_bad_name_is_a_usage_error(name, capsys):
  with pytest.raises(SystemExit) as exit_:
    _parse(["--benchmark", "split_mnist", "--name", name])
  assert exit_.value.code == 2
  assert "argument --name" in capsys.readouterr().err


def test_run_json_records_name_versions_git_and_data(tmp_path, code_checkout):
  top, head = code_checkout
  (top / "ngm_jax" / "provenance.py").write_text("# the code, edited\n")
  folder = write_mnist_idx(tmp_path / "data", fake_mnist())
  out = tmp_path / "out"
  code = cli.main(["run", "--benchmark", "split_mnist", "--optimizers", "sgd", "--seeds", "1",
                   "--data-dir", str(folder), "--out", str(out), "--name", "Split Fashion-MNIST",
                   "--iterations-per-task", "2", "--batch-size", "8", "--task-eval-every", "2",
                   "--no-progress"])
  assert code == 0
  meta = json.loads((out / "run.json").read_text())
  assert meta["benchmark_label"] == "Split Fashion-MNIST"
  assert meta["versions"]["jax"] == jax.__version__
  assert meta["git"] == {"commit": head, "dirty": True}
  data = meta["data"]
  assert data["source"] == "files" and data["dataset"] == "mnist"
  assert data["data_dir"] == str(folder)
  assert data["files"] == {p.name: {"sha256": _sha256(p.read_bytes()), "bytes": p.stat().st_size,
                                    "content_sha256": _sha256(gzip.decompress(p.read_bytes()))}
                           for p in folder.iterdir()}
  assert len(data["files"]) == 4
  assert data["official_mnist"] is False and data["official_mnist_gz"] is False  # made-up data
