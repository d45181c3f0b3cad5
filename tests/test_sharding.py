"""Seeds sharded over devices and hosts give the curves of one device.

The device count is fixed when JAX starts, so each configuration runs in a
subprocess (tests/scripts/sharded_run.py): 5 seeds x 2 optimizers on tiny
data. Equality, measured here:

- 8 fake CPU devices, one process, against 1 device: every training record
  (train loss, entropy, gain) and every accuracy is bitwise equal; the test
  losses, means over the test images, differ by at most ~1e-6 (each device
  holds 1 seed instead of 5, so XLA reduces the mean in another order). The
  test asserts bitwise equality of the training records and a 1e-5 tolerance
  on the evaluation losses, for that reason. (At real Split MNIST sizes the
  training records of 5 vmapped seeds on 1 device differ from iteration 1 by
  rounding from those of 1-3 seeds per device: experiments/bench.py --compare,
  docs/results.md "Scaling out". These tiny data do not show it.)
- 2 processes x 4 devices (gloo collectives on 127.0.0.1) against 1 process x
  8 devices: the same program on the same shards, so bitwise equal.
- One seed per device (``seed_axis="shard"``, chunked or scanned, one round
  of 8 or three rounds of 2 with padding, one process or two) against the
  seeds one after another on 1 device (``"sequential"``): bitwise equal,
  every curve. Each device runs one seed's program, the very computation of
  the sequential run (no seed axis to reorder a reduction); measured so on
  this CPU and asserted so. (For the ResNet, experiments/bench.py --compare
  measured differences up to 2.5e-5 from iteration 9: XLA:CPU's convolutions
  may split their work differently when two devices share the cores.)

The subprocess tests are slow (``pytest -m slow``); the helpers of
:mod:`ngm_jax.sharding` on this process's one device are tested by default.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "sharded_run.py"
TRAINING = ("train_loss", "entropy", "gain", "task1_acc", "task_acc")


def _env(devices_per_process: int) -> dict[str, str]:
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices_per_process}"
  env["JAX_PLATFORMS"] = "cpu"
  return env


def _run(out, devices, devices_per_process, *multi, runs=()):
  flags = [f"--runs={','.join(runs)}"] if runs else []
  return subprocess.Popen([sys.executable, str(SCRIPT), *flags, str(out), str(devices),
                           *map(str, multi)],
                          env=_env(devices_per_process), cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=600):
  output, _ = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, output[-3000:]
  return output


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
  out = tmp_path_factory.mktemp("sharded") / "d8.npz"
  output = _finish(_run(out, 8, 8))
  assert "'devices': 8" in output
  return dict(np.load(out))


@pytest.mark.slow
def test_eight_fake_devices_give_the_curves_of_one(tmp_path, eight_devices):
  _finish(_run(tmp_path / "d1.npz", 1, 8))
  one = dict(np.load(tmp_path / "d1.npz"))
  assert sorted(one) == sorted(eight_devices)
  for key, value in one.items():
    assert eight_devices[key].shape == value.shape and value.shape[0] == 5  # padding dropped
    if key.split("/")[1] in TRAINING:
      np.testing.assert_array_equal(eight_devices[key], value, err_msg=key)
    else:
      np.testing.assert_allclose(eight_devices[key], value, rtol=0, atol=1e-5, err_msg=key)


SHARD_RUNS = ("chunked:sequential@1", "chunked:shard@8", "scan:shard@8", "chunked:shard@2")


@pytest.fixture(scope="module")
def shard_runs(tmp_path_factory):
  out = tmp_path_factory.mktemp("shard") / "s.npz"
  output = _finish(_run(out, 8, 8, runs=SHARD_RUNS))
  assert "chunked:shard@8 ran as chunked shard" in output
  return dict(np.load(out))


def _runs_of(saved, spec):
  return {k.split("/", 1)[1]: v for k, v in saved.items() if k.startswith(spec + "/")}


@pytest.mark.slow
def test_one_seed_per_device_gives_the_curves_of_seeds_one_after_another(shard_runs):
  reference = _runs_of(shard_runs, SHARD_RUNS[0])
  assert len(reference) == 2 * 8  # two optimizers' curves
  for spec in SHARD_RUNS[1:]:
    runs = _runs_of(shard_runs, spec)
    assert sorted(runs) == sorted(reference)
    for key, value in reference.items():
      assert value.shape[0] == 5  # padding dropped
      np.testing.assert_array_equal(runs[key], value, err_msg=f"{spec}/{key}")


@pytest.mark.slow
def test_two_processes_of_four_devices_give_the_curves_of_one_process(tmp_path, eight_devices,
                                                                       shard_runs):
  # Both sharded runs: the one scanned, vmapped program, and one seed per device.
  coordinator = f"127.0.0.1:{_free_port()}"
  runs = ("auto:auto@8", "chunked:shard@8")
  procs = [_run(tmp_path / "p.npz", 8, 4, coordinator, 2, i, runs=runs) for i in (1, 0)]
  outputs = [_finish(p) for p in procs]
  assert "'processes': 2" in outputs[1] and "auto:auto@8 ran as scan vmap" in outputs[1]
  two = dict(np.load(tmp_path / "p.npz"))  # written by process 0 alone
  for spec, reference in ((runs[0], eight_devices),
                          (runs[1], _runs_of(shard_runs, SHARD_RUNS[0]))):
    got = _runs_of(two, spec)
    assert sorted(got) == sorted(reference)
    for key, value in got.items():
      np.testing.assert_array_equal(value, reference[key], err_msg=f"{spec}/{key}")


@pytest.mark.slow
def test_the_cli_runs_two_processes_and_only_process_0_writes(tmp_path):
  from tests.conftest import fake_mnist, write_mnist_idx  # pylint: disable=g-import-not-at-top
  data = write_mnist_idx(tmp_path / "mnist", fake_mnist(n_train_per_class=4,
                                                        n_test_per_class=2))
  coordinator = f"127.0.0.1:{_free_port()}"
  procs = []
  for i in (1, 0):
    argv = [sys.executable, "-m", "experiments.run", "run", "--benchmark", "split_mnist",
            "--data-dir", str(data), "--optimizers", "sgd", "--seeds", "3",
            "--iterations-per-task", "2", "--batch-size", "4", "--task-eval-every", "2",
            "--no-progress", "--out", str(tmp_path / f"out{i}"), "--coordinator", coordinator,
            "--num-processes", "2", "--process-id", str(i), "--log", "csv,tensorboard"]
    procs.append(subprocess.Popen(argv, env=_env(2), cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  outputs = [_finish(p) for p in procs]
  assert f"Files in {tmp_path / 'out0'}/" in outputs[1]  # the end-of-run summary
  assert not (tmp_path / "out1").exists()  # process 1 computes, writes nothing (no logs)
  assert (tmp_path / "out0" / "metrics.csv").stat().st_size > 0
  assert [p.name for p in (tmp_path / "out0" / "tensorboard").iterdir()] == ["sgd"]
  import json  # pylint: disable=g-import-not-at-top
  meta = json.loads((tmp_path / "out0" / "run.json").read_text())
  assert meta["mesh"]["processes"] == 2 and meta["mesh"]["devices"] == 4
  assert np.load(tmp_path / "out0" / "curves.npz")["sgd/task1_acc"].shape == (3, 10)


@pytest.mark.slow
def test_runs_that_do_not_fit_are_split_into_chunks():
  # In-process, one device: a memory budget below one run's program forces
  # chunks of one seed; the curves are those of one program for all seeds.
  import jax  # pylint: disable=g-import-not-at-top
  from ngm_jax import streams  # pylint: disable=g-import-not-at-top
  from ngm_jax.execution import train_seeds  # pylint: disable=g-import-not-at-top
  from ngm_jax.sharding import run_mesh  # pylint: disable=g-import-not-at-top
  from ngm_jax.train import TrainConfig, make_train_parts, seed_keys  # pylint: disable=g-import-not-at-top
  from tests.conftest import fake_mnist  # pylint: disable=g-import-not-at-top

  stream = streams.split_mnist(fake_mnist(n_train_per_class=4, n_test_per_class=2))
  parts = make_train_parts(stream, "ngm_sgd",
                           TrainConfig(iterations_per_task=2, batch_size=4, task_eval_every=2))
  mesh = run_mesh(1, devices=jax.devices()[:1])
  whole, t_whole = train_seeds(parts, seed_keys(3), mesh=mesh)
  chunked, t_chunked = train_seeds(parts, seed_keys(3), mesh=mesh, memory_budget=1)
  assert t_whole["chunks"] == 1 and t_whole["runs_per_chunk"] == 3
  assert t_chunked["chunks"] == 3 and t_chunked["runs_per_chunk"] == 1
  assert t_whole["device_bytes"] > t_chunked["device_bytes"] > 1
  for name, value in whole.items():
    np.testing.assert_allclose(chunked[name], value, rtol=1e-6, atol=1e-6, err_msg=name)


def test_the_table_says_when_seeds_ran_in_chunks_or_sharded(tmp_path):
  from ngm_jax.results import Result, write_report  # pylint: disable=g-import-not-at-top
  from tests.fake_runs import fake_curves, old_meta  # pylint: disable=g-import-not-at-top
  meta = old_meta()
  meta["timings"] = {label: {"compile_s": 1.0, "run_s": 1.0, "chunks": 3, "runs_per_chunk": 2}
                     for label in meta["optimizers"][:1]}
  meta["mesh"] = {"axis": "runs", "devices": 4, "device_kind": "cpu", "platform": "cpu",
                  "processes": 2}
  meta.update(benchmark_label="fashion_mnist", task1_test_size=12, num_classes=10)
  one, iterations = fake_curves()
  curves = {label: one for label in meta["optimizers"]}
  write_report(Result(curves, iterations, meta), tmp_path)
  table = (tmp_path / "table.md").read_text()
  assert table.startswith("# fashion_mnist:")
  assert f"{meta['optimizers'][0]} in 3 chunks of 2 seeds" in table
  assert "sharded over 4 cpu devices in 2 process(es)" in table


@pytest.mark.slow
def test_auto_runs_the_cpu_resnet_one_seed_per_device(tmp_path):
  # The choice docs/results.md measured ("Scaling out"): on CPU with several
  # devices the convolutional network runs chunked, one seed per device.
  from tests.conftest import write_cifar10_pickles  # pylint: disable=g-import-not-at-top
  write_cifar10_pickles(tmp_path / "data" / "cifar-10-batches-py", n_train_per_class=2,
                        n_test_per_class=1)
  argv = [sys.executable, "-m", "experiments.run", "run", "--benchmark", "split_cifar10",
          "--data-dir", str(tmp_path / "data"), "--optimizers", "ngm_sgd", "--seeds", "3",
          "--iterations-per-task", "1", "--batch-size", "2", "--task-eval-every", "1",
          "--test-subset", "2", "--no-progress", "--out", str(tmp_path / "out")]
  proc = subprocess.Popen(argv, env=_env(2), cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  _finish(proc)
  import json  # pylint: disable=g-import-not-at-top
  meta = json.loads((tmp_path / "out" / "run.json").read_text())
  assert (meta["loop"], meta["seed_axis"], meta["mesh"]["devices"]) == ("chunked", "shard", 2)
  assert meta["timings"]["ngm_sgd"]["rounds"] == 2  # 3 seeds, 2 at a time
  curves = np.load(tmp_path / "out" / "curves.npz")
  assert curves["ngm_sgd/task1_acc"].shape == (3, 5)
  assert np.all(curves["ngm_sgd/gain"] > 1.0)


# ---------------------------------------------------------------------------
# The helpers, in this process (one CPU device).


def test_pad_runs_repeats_the_last_run_and_unpad_drops_it():
  from ngm_jax.sharding import pad_runs, unpad_runs  # pylint: disable=g-import-not-at-top
  tree = {"key": np.arange(10).reshape(5, 2), "h": {"eta": np.array([0.1, 0.2, 0.3, 0.4, 0.5])}}
  padded, n = pad_runs(tree, 4)
  assert n == 5
  np.testing.assert_array_equal(padded["key"], np.r_[tree["key"], [[8, 9]] * 3])
  np.testing.assert_array_equal(padded["h"]["eta"], [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5])
  back = unpad_runs(padded, n)
  np.testing.assert_array_equal(back["key"], tree["key"])
  np.testing.assert_array_equal(back["h"]["eta"], tree["h"]["eta"])
  same, n = pad_runs(tree, 5)  # already a multiple: returned as it is
  assert same is tree and n == 5
  assert pad_runs({}, 4) == ({}, 0)


def test_run_mesh_describe_and_its_bad_sizes():
  import jax  # pylint: disable=g-import-not-at-top
  from ngm_jax.sharding import RUNS, describe_mesh, run_mesh  # pylint: disable=g-import-not-at-top
  mesh = run_mesh(1)
  assert mesh.axis_names == (RUNS,) and mesh.size == 1
  device = jax.devices()[0]
  assert describe_mesh(mesh) == {"axis": "runs", "devices": 1, "device_kind": device.device_kind,
                                 "platform": device.platform, "processes": 1}
  count = len(jax.devices())
  for bad in (0, count + 1, True, 1.0):
    with pytest.raises(ValueError, match=f"num_devices={bad!r}: must be an integer in"
                                         rf" \[1, {count}\]"):
      run_mesh(bad)


def test_shard_replicate_and_gather_round_trip():
  from jax.sharding import PartitionSpec  # pylint: disable=g-import-not-at-top
  from ngm_jax.sharding import gather, replicate, run_mesh, shard_runs  # pylint: disable=g-import-not-at-top
  mesh = run_mesh(1)
  runs = {"key_data": np.arange(12, dtype=np.uint32).reshape(3, 4)}
  sharded = shard_runs(runs, mesh)
  assert sharded["key_data"].sharding.spec == PartitionSpec("runs")
  data = replicate({"images": np.ones((2, 3), np.uint8)}, mesh)
  assert data["images"].sharding.spec == PartitionSpec()
  back = gather({**sharded, **data})
  assert isinstance(back["key_data"], np.ndarray)
  np.testing.assert_array_equal(back["key_data"], runs["key_data"])
  np.testing.assert_array_equal(back["images"], np.ones((2, 3)))
