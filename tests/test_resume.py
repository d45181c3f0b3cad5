"""A run cut into segments, stopped, killed and resumed gives the curves of one
uninterrupted program, bit for bit.

Library level: the segmented driver (one segment per block, per two blocks,
stopped and resumed) against the whole run as one scan from the initial
carry, and against the single program with the initialisation inside (the
form the sharded run compiled before it was segmented); every mode stopped
and resumed mid-variant (one device here; one seed per device and the
sharded vmap on 3 fake devices in a subprocess, resumed on another device
count too); a checkpoint of one mode resumed by another, and of one chunk
size by another; ``run_benchmark(..., resume=True)``, for the default and
for the CPU ResNet's ``chunked``/``sequential``. Each resume test also fails
if the checkpoint is ignored: it counts the segments run after the resume,
and a perturbed carry must change every curve after the resume point (and
none before). Command line, in
subprocesses on a tiny IDX folder: SIGKILL mid-run then ``--resume``; SIGINT
answered within seconds with exit code 130, a checkpoint and the command that
continues; SIGTERM (143) during an ``--overwrite`` leaves the old run intact.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import ngm_jax
from ngm_jax import results, runner, segment_actions, sharding
from ngm_jax.checkpoint import CheckpointError, RunCheckpoints, RunStopped
from ngm_jax.checkpoint_files import check_file_list
from ngm_jax.execution import Segments, Stopped, train_seeds
from ngm_jax.sharding import run_mesh
from ngm_jax.streams import split_mnist
from ngm_jax.train import TrainConfig, _scanned, assemble_curves, make_train_parts, seed_keys
from tests.conftest import damage_checkpoint, fake_mnist, stop_at, write_mnist_idx

pytestmark = pytest.mark.slow  # subprocesses killed and resumed, segmented runs

ROOT = Path(__file__).resolve().parents[1]
CONFIG = TrainConfig(iterations_per_task=6, batch_size=8, eta=0.4, eval_every=1,
                     task_eval_every=3)  # 2 blocks per task, 10 in all


@pytest.fixture(scope="module")
def stream():
  return split_mnist(fake_mnist())


def _one_program(parts, keys):
  """The whole run as one scanned, vmapped program, as the sharded driver ran
  it before it was cut into segments."""
  mesh = run_mesh(1)
  train = _scanned(parts, None)

  def program(data, runs):
    k = jax.random.wrap_key_data(runs["key_data"])
    return jax.vmap(lambda k, h: train(k, data, h))(k, runs["hyperparams"])

  runs = sharding.shard_runs({"key_data": np.asarray(jax.random.key_data(keys)),
                              "hyperparams": {}}, mesh)
  data = sharding.replicate(jax.device_get(parts.data), mesh)
  return jax.device_get(jax.jit(program)(data, runs))


def _assert_same(curves, reference):
  assert set(curves) == set(reference)
  for name, value in reference.items():
    np.testing.assert_array_equal(curves[name], value, err_msg=name)


@pytest.mark.parametrize("optimizer", ["ngm_sgd", "adam"])
def test_segments_stop_and_resume_give_the_one_programs_curves(stream, optimizer):
  parts = make_train_parts(stream, optimizer, CONFIG)
  keys = seed_keys(3)
  mesh = run_mesh(1)
  # Uninterrupted: the whole run as one scan over its 10 blocks from the carry.
  reference, timing = train_seeds(parts, keys, mesh=mesh,
                                  segments=Segments(blocks=10, blocks_per_task=10))
  assert timing["segments"] == 1
  assert not np.array_equal(reference["train_loss"][0], reference["train_loss"][1])
  # The single program with the initialisation inside: the same bits. (Adam's
  # step count is the same for every seed, so vmap leaves it unbatched there;
  # the segments take it unbatched too, else XLA divides by a per-seed vector
  # and the last bits differ.)
  _assert_same(reference, _one_program(parts, keys))
  seen = []

  def record(done):
    seen.append(done.blocks_done)
    return False

  curves, timing = train_seeds(parts, keys, mesh=mesh, segments=Segments(
      blocks=1, blocks_per_task=2, on_segment=record))
  _assert_same(curves, reference)
  assert timing["segments"] == 10
  assert seen == list(range(1, 11))  # called after every segment

  # Stopped after block 3 (the state taken there), resumed: the same curves.
  saved = {}

  def stop_at_3(done):
    if done.blocks_done == 3:
      saved["state"] = done.state()
      return True
    return False

  with pytest.raises(Stopped) as stopped:
    train_seeds(parts, keys, mesh=mesh, segments=Segments(blocks_per_task=2,
                                                          on_segment=stop_at_3))
  assert stopped.value.iterations_done == 9
  carry, records, blocks_done = saved["state"]
  assert blocks_done in (3, 4)  # the segment in flight is collected too
  np.testing.assert_array_equal(carry.step, [3 * blocks_done] * 3)
  assert records[0]["gain"].shape[:2] == (3, blocks_done)
  seen.clear()
  curves, timing = train_seeds(parts, keys, mesh=mesh, segments=Segments(
      blocks_per_task=2, resume=saved["state"], on_segment=record))
  _assert_same(curves, reference)
  # Continued, not retrained: only the blocks after the saved ones ran (a
  # deterministic retrain from scratch would give the same curves).
  assert timing["segments"] == 10 - blocks_done
  assert seen == list(range(blocks_done + 1, 11))

  # The run goes on from the carry and records it is given: halve the saved
  # weights and mark the saved records; the curves keep the marks up to the
  # resume point and differ from the reference everywhere after it.
  steps, task1, per_task = records
  changed = (carry._replace(params=jax.tree.map(lambda w: w * 0.5, carry.params)),
             ({**steps, "train_loss": np.full_like(steps["train_loss"], -1.0)}, task1, per_task),
             blocks_done)
  curves, _ = train_seeds(parts, keys, mesh=mesh, segments=Segments(
      blocks_per_task=2, resume=changed))
  done = 3 * blocks_done  # iterations
  np.testing.assert_array_equal(curves["train_loss"][:, :done], -1.0)
  np.testing.assert_array_equal(curves["task1_loss"][:, :done], reference["task1_loss"][:, :done])
  after = np.abs(curves["train_loss"][:, done:] - reference["train_loss"][:, done:])
  assert (after > 0).all(), after
  assert (curves["task1_loss"][:, done] != reference["task1_loss"][:, done]).all()


def _assert_resumed_from(curves, reference, blocks, per_block=3):
  """The curves continue the saved state: equal to ``reference`` for the
  first ``blocks`` blocks (the saved records), different after (the carry
  was perturbed)."""
  for name in ("train_loss", "task1_loss", "task_loss"):
    cut = blocks * (per_block if name != "task_loss" else 1)
    np.testing.assert_array_equal(curves[name][:, :cut], reference[name][:, :cut], name)
    assert not np.array_equal(curves[name][:, cut:], reference[name][:, cut:]), name


MODES = [("scan", "vmap"), ("chunked", "sequential"), ("scan", "sequential"), ("scan", "map"),
         ("chunked", "vmap"), ("chunked", "map")]


@pytest.mark.parametrize("loop, seed_axis", MODES)
def test_every_mode_stops_and_resumes_mid_variant_bit_for_bit(stream, loop, seed_axis):
  parts = make_train_parts(stream, "adam", CONFIG, unroll=(loop == "chunked"))
  keys = seed_keys(3)
  run = lambda **kw: train_seeds(parts, keys, loop=loop, seed_axis=seed_axis, **kw)
  reference, timing = run()
  assert timing["segments"] == 10
  two, timing = run(segments=Segments(blocks=2, blocks_per_task=2))  # 2 blocks a segment
  _assert_same(two, reference)
  assert timing["segments"] == 5
  saved = {}
  with pytest.raises(Stopped) as stopped:
    run(segments=Segments(blocks_per_task=2, on_segment=stop_at(4, saved)))
  assert stopped.value.blocks_done == 4 and stopped.value.iterations_done == 12
  carry, records, blocks = saved["state"]
  assert blocks in (4, 5)  # the segment in flight is collected too
  np.testing.assert_array_equal(carry.step, [3 * blocks] * 3)
  curves, timing = run(segments=Segments(blocks_per_task=2, resume=saved["state"]))
  _assert_same(curves, reference)
  assert timing["segments"] == 10 - blocks  # only the rest ran
  perturbed = carry._replace(params=jax.tree.map(lambda a: a * 1.5, carry.params))
  curves, _ = run(segments=Segments(blocks_per_task=2, resume=(perturbed, records, blocks)))
  _assert_resumed_from(curves, reference, blocks)


def test_a_checkpoint_of_one_mode_resumes_in_another(stream):
  # A chunked, sequential run's state continues as a scan, one seed at a time
  # or mapped: the saved records kept, the rest those of the scan up to the
  # order of the test losses' reductions (equal bits on 3 fake devices, not
  # on this CPU as one device).
  keys = seed_keys(3)
  chunked = make_train_parts(stream, "ngm_sgd", CONFIG, unroll=True)
  saved = {}
  with pytest.raises(Stopped):
    train_seeds(chunked, keys, loop="chunked", seed_axis="sequential",
                segments=Segments(blocks_per_task=2, on_segment=stop_at(3, saved)))
  parts = make_train_parts(stream, "ngm_sgd", CONFIG)
  reference, _ = train_seeds(parts, keys, loop="scan", seed_axis="sequential")
  for seed_axis in ("sequential", "map"):
    curves, timing = train_seeds(parts, keys, loop="scan", seed_axis=seed_axis,
                                 segments=Segments(blocks_per_task=2, resume=saved["state"]))
    _assert_close(curves, reference)
    assert timing["segments"] == 10 - saved["state"][2]
  carry, records, blocks = saved["state"]
  before = assemble_curves(*records)
  for name, value in before.items():
    np.testing.assert_array_equal(curves[name][:, :value.shape[1]], value, err_msg=name)
  with pytest.raises(ValueError, match="the carry holds rows \\[2\\].*3 seeds"):
    train_seeds(parts, keys, seed_axis="map", segments=Segments(
        resume=(jax.tree.map(lambda a: a[:2], carry), records, blocks)))
  with pytest.raises(ValueError, match="not a multiple of Segments.blocks=2"):
    train_seeds(parts, keys, segments=Segments(blocks=2, blocks_per_task=2,
                                               resume=(carry, records, 3)))


def test_seed_chunks_stop_and_resume_too(stream):
  parts = make_train_parts(stream, "ngm_sgd", CONFIG)
  keys = seed_keys(3)
  reference, _ = train_seeds(parts, keys, mesh=run_mesh(1))
  saved = {}

  def stop_at_5(done):
    if done.blocks_done >= 5:
      saved["state"] = done.state()
      return True
    return False

  with pytest.raises(Stopped):  # a 1-byte budget: three chunks of one seed
    train_seeds(parts, keys, mesh=run_mesh(1), memory_budget=1,
                segments=Segments(blocks_per_task=2, on_segment=stop_at_5))
  curves, timing = train_seeds(parts, keys, mesh=run_mesh(1), memory_budget=1,
                               segments=Segments(blocks_per_task=2, resume=saved["state"]))
  assert timing["chunks"] == 3 and timing["segments"] == 10 - saved["state"][2]
  chunked = curves
  _assert_close(curves, reference)
  # A checkpoint of three chunks resumes as one chunk, and one of one chunk
  # as three (another chunk size); a perturbed carry changes what follows.
  curves, timing = train_seeds(parts, keys, mesh=run_mesh(1), segments=Segments(
      blocks_per_task=2, resume=saved["state"]))
  assert timing["chunks"] == 1 and timing["segments"] == 10 - saved["state"][2]
  _assert_close(curves, reference)
  with pytest.raises(Stopped):
    train_seeds(parts, keys, mesh=run_mesh(1),
                segments=Segments(blocks_per_task=2, on_segment=stop_at(4, saved)))
  curves, timing = train_seeds(parts, keys, mesh=run_mesh(1), memory_budget=1,
                               segments=Segments(blocks_per_task=2, resume=saved["state"]))
  assert timing["chunks"] == 3 and timing["segments"] == 10 - saved["state"][2]
  _assert_close(curves, chunked)
  carry, records, blocks = saved["state"]
  perturbed = carry._replace(params=jax.tree.map(lambda a: a * 1.5, carry.params))
  curves, _ = train_seeds(parts, keys, mesh=run_mesh(1), memory_budget=1, segments=Segments(
      blocks_per_task=2, resume=(perturbed, records, blocks)))
  _assert_resumed_from(curves, reference, blocks)  # the records saved by the one chunk


def _assert_close(curves, reference):
  """Bitwise on the training records and accuracies; the test losses of one
  seed per program and of three are reduced in another order (1e-5)."""
  for name in ("train_loss", "gain", "entropy", "task1_acc", "task_acc", "diverged_at"):
    np.testing.assert_array_equal(curves[name], reference[name], err_msg=name)
  for name in ("task1_loss", "task_loss"):
    np.testing.assert_allclose(curves[name], reference[name], rtol=1e-5, err_msg=name)


def test_sharded_modes_resume_on_the_same_and_another_device_count(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=3")
  proc = subprocess.run([sys.executable, str(ROOT / "tests" / "scripts" / "sharded_resume.py"),
                         str(tmp_path / "r.npz"), str(tmp_path / "run")], cwd=ROOT, env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                        timeout=900, check=False)
  assert proc.returncode == 0, proc.stdout[-3000:]
  saved = dict(np.load(tmp_path / "r.npz"))
  case = lambda name: {k.split("/")[-1]: v for k, v in saved.items()
                       if k.startswith(name + "/") and not k.split("/")[-1].startswith("_")}
  for mode in ("scan:shard", "chunked:shard", "scan:vmap"):
    reference, blocks = case(f"{mode}/ref"), int(saved[f"{mode}/_blocks"])
    assert blocks in (4, 5) and int(saved[f"{mode}/ref/_segments"]) == 10
    _assert_same(case(f"{mode}/same"), reference)
    if mode.endswith("shard"):  # one seed's program per device, on 2 or 3 devices: same bits
      _assert_same(case(f"{mode}/other"), reference)
    else:  # 3 seeds on 1 device, not 2 on each of 2: the test losses' order differs
      _assert_close(case(f"{mode}/other"), reference)
    for resumed in ("same", "other", "perturbed"):
      assert int(saved[f"{mode}/{resumed}/_segments"]) == 10 - blocks, (mode, resumed)
    _assert_resumed_from(case(f"{mode}/perturbed"), reference, blocks)
  # run_benchmark: stopped on 2 devices (2 rounds), resumed from its checkpoint on 3 (1 round).
  assert int(saved["runner/_resumed_at"]) == int(saved["runner/_stopped_at"]) in (12, 15)
  assert int(saved["runner/_rounds"]) == 1
  assert saved["runner/_segments"].tolist() == [10 - int(saved["runner/_stopped_at"]) // 3]
  _assert_same(case("runner/resumed"), case("runner/ref"))


@pytest.mark.parametrize("execution", [{}, {"loop": "chunked", "seed_axis": "sequential"}])
def test_run_benchmark_stopped_by_a_signal_resumes_bit_for_bit(stream, tmp_path, monkeypatch,
                                                               execution):
  # The default (scan, vmap) and the CPU ResNet's default (chunked, sequential).
  optimizers = ["ngm_sgd", "adam"]
  reference = ngm_jax.run_benchmark(stream, optimizers, CONFIG, num_seeds=2,
                                    show_progress=False, **execution)
  handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  saver = segment_actions.SegmentActions.__call__

  def signal_in_adam(self, done):  # SIGTERM while adam trains (block 3 of 10)
    if self.label == "adam" and done.blocks_done == 3:
      signal.raise_signal(signal.SIGTERM)
    return saver(self, done)

  monkeypatch.setattr(segment_actions.SegmentActions, "__call__", signal_in_adam)
  out = tmp_path / "run"
  with pytest.raises(RunStopped) as stopped:
    ngm_jax.run_benchmark(stream, optimizers, CONFIG, num_seeds=2, out=out,
                          show_progress=False, **execution)
  monkeypatch.undo()
  e = stopped.value
  assert e.exit_code == 143 and e.variant == "adam" and e.checkpointed
  assert e.iteration in (9, 12) and e.total == 30
  assert {s: signal.getsignal(s) for s in handlers} == handlers  # handlers put back
  # ngm_sgd finished (curves.npz), adam is in a checkpoint; report refuses the part.
  saved, _ = results.load_curves(out / "curves.npz")
  assert list(saved) == ["ngm_sgd"]
  assert (out / "checkpoints").is_dir() and not (out / "table.md").exists()
  with pytest.raises(ValueError, match="not adam"):
    results.report(out)
  with pytest.raises(ValueError, match="did not finish; pass resume=True"):
    ngm_jax.run_benchmark(stream, optimizers, CONFIG, num_seeds=2, out=out)
  with pytest.raises(ValueError, match="made with other arguments.*seeds"):
    ngm_jax.run_benchmark(stream, optimizers, CONFIG, num_seeds=3, out=out, resume=True,
                          **execution)
  # Another mode is refused, with the reason (its checkpoint would resume, but
  # not to the bits of the run begun).
  other = {"loop": "scan", "seed_axis": "map"}
  with pytest.raises(ValueError, match="made with other arguments.*seed_axis: saved"):
    ngm_jax.run_benchmark(stream, optimizers, CONFIG, num_seeds=2, out=out, resume=True,
                          **other)
  saved_meta = RunCheckpoints(out).latest()[1]
  assert (saved_meta["loop"], saved_meta["seed_axis"], saved_meta["devices"]) == (
      execution.get("loop", "scan"), execution.get("seed_axis", "vmap"), 1)

  # Resumed from a checkpoint whose weights were halved (in a copy of the
  # folder): adam's curves equal the reference up to the checkpoint, differ
  # after it; ngm_sgd (finished) is not trained again.
  copy = tmp_path / "changed"
  shutil.copytree(out, copy)
  restore = runner.RunCheckpoints.restore

  def halved(self, step, carry_like):
    carry, records = restore(self, step, carry_like)
    return carry._replace(params=jax.tree.map(lambda w: w * 0.5, carry.params)), records

  monkeypatch.setattr(runner.RunCheckpoints, "restore", halved)
  changed = ngm_jax.run_benchmark(stream, optimizers, CONFIG, num_seeds=2, out=copy,
                                  resume=True, show_progress=False, **execution).curves
  monkeypatch.undo()
  _assert_same(changed["ngm_sgd"], reference.curves["ngm_sgd"])
  done = e.iteration
  np.testing.assert_array_equal(changed["adam"]["train_loss"][:, :done],
                                reference.curves["adam"]["train_loss"][:, :done])
  assert (changed["adam"]["train_loss"][:, done:]
          != reference.curves["adam"]["train_loss"][:, done:]).all()

  # The real resume: the segments after the checkpoint only, and the curves of
  # the uninterrupted run.
  calls = []

  def count(self, done):
    calls.append((self.label, done.blocks_done))
    return saver(self, done)

  monkeypatch.setattr(segment_actions.SegmentActions, "__call__", count)
  result = ngm_jax.run_benchmark(stream, optimizers, CONFIG, num_seeds=2, out=out,
                                 resume=True, show_progress=False, **execution)
  monkeypatch.undo()
  assert calls == [("adam", b) for b in range(done // 3 + 1, 11)]
  for label in optimizers:
    _assert_same(result.curves[label], reference.curves[label])
  assert result.meta["timings"]["adam"]["resumed_at_iteration"] == e.iteration
  assert "resumed_at_iteration" not in result.meta["timings"]["ngm_sgd"]
  assert not (out / "checkpoints").exists()  # removed once the run has finished
  again = results.load_result(out)
  for label in optimizers:
    _assert_same(again.curves[label], reference.curves[label])


def test_a_damaged_newest_checkpoint_resumes_from_the_one_before_bit_for_bit(
    stream, tmp_path, capfd, monkeypatch):
  optimizers = ["ngm_sgd", "adam"]
  reference = ngm_jax.run_benchmark(stream, optimizers, CONFIG, num_seeds=2,
                                    show_progress=False)
  saver = segment_actions.SegmentActions.__call__

  def signal_in_adam(self, done):
    if self.label == "adam" and done.blocks_done == 3:
      signal.raise_signal(signal.SIGTERM)
    return saver(self, done)

  monkeypatch.setattr(segment_actions.SegmentActions, "__call__", signal_in_adam)
  out = tmp_path / "run"
  with pytest.raises(RunStopped):  # a checkpoint after every segment
    ngm_jax.run_benchmark(stream, optimizers, CONFIG, num_seeds=2, out=out,
                          show_progress=False, checkpoint_every_s=1e-9)
  monkeypatch.undo()
  # adam's last two steps (variant 2 of 10 blocks: 22 + blocks; a step may
  # hold the segment in flight too).
  older, newest = sorted(int(p.name) for p in (out / "checkpoints").iterdir())
  assert 22 < older < newest <= 26, (older, newest)
  at = 3 * (older - 22)  # iterations done at the older step
  for kind in ("truncated array file", "missing meta/metadata", "emptied step folder",
               "garbage in a file"):
    copy = tmp_path / kind.replace(" ", "_").replace("/", "_")
    shutil.copytree(out, copy)
    damage_checkpoint(copy / "checkpoints" / str(newest), kind)
    capfd.readouterr()
    result = ngm_jax.run_benchmark(stream, optimizers, CONFIG, num_seeds=2, out=copy,
                                   resume=True, show_progress=False)
    printed = capfd.readouterr()
    assert f"Checkpoint {copy / 'checkpoints' / str(newest)} is damaged: " in printed.err, kind
    assert f"using step {older}, the newest intact checkpoint." in printed.err
    assert "Traceback" not in printed.err and "absl" not in printed.err
    assert (f"adam from iteration {at} of 30 (checkpoint {copy / 'checkpoints' / str(older)})"
            in printed.out)
    assert result.meta["timings"]["adam"]["resumed_at_iteration"] == at
    for label in optimizers:
      _assert_same(result.curves[label], reference.curves[label])
    assert not (copy / "checkpoints").exists()  # removed, with the damaged step, at the end
  # Both damaged: refused, naming each step's fault; nothing trained or changed.
  both = tmp_path / "both"
  shutil.copytree(out, both)
  damage_checkpoint(both / "checkpoints" / str(newest), "garbage in a file")
  damage_checkpoint(both / "checkpoints" / str(older), "emptied step folder")
  with pytest.raises(CheckpointError, match=(
      f"no intact checkpoint \\(step {newest}: .* differs from what was written \\(SHA-256\\);"
      f" step {older}: the folder is empty\\)")):
    ngm_jax.run_benchmark(stream, optimizers, CONFIG, num_seeds=2, out=both, resume=True,
                          show_progress=False)
  assert sorted(p.name for p in (both / "checkpoints").iterdir()) == [str(older), str(newest)]


# ---------------------------------------------------------------------------
# The command line, in subprocesses.

TOTAL_BLOCKS = 50  # 5 tasks x 100 iterations / task-eval-every 10
ARGS = ["--benchmark", "split_mnist", "--optimizers", "ngm_sgd,adam", "--seeds", "2",
        "--iterations-per-task", "100", "--batch-size", "8", "--task-eval-every", "10",
        "--no-progress"]


def _command(data_dir, out, *extra):
  return [sys.executable, "-m", "experiments.run", "run", *ARGS, "--data-dir", str(data_dir),
          "--out", str(out), *extra]


def _start(command):
  return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def _finish(proc, timeout=600):
  out, err = proc.communicate(timeout=timeout)
  return proc.returncode, out, err


def _wait_for_checkpoint(proc, folder, min_step, timeout=300):
  """Polls ``folder/checkpoints`` until a finished step >= ``min_step`` is there."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    assert proc.poll() is None, "the run ended before a checkpoint was seen"
    steps = [int(p.name) for p in (folder / "checkpoints").glob("*") if p.name.isdigit()]
    if steps and max(steps) >= min_step:
      return max(steps)
    time.sleep(0.02)
  raise AssertionError("no checkpoint appeared")


def _curves_equal(out, reference):
  curves, iterations = results.load_curves(out / "curves.npz")
  ref_curves, ref_iterations = results.load_curves(reference / "curves.npz")
  assert list(curves) == list(ref_curves) == ["ngm_sgd", "adam"]
  for label, per_curve in ref_curves.items():
    assert set(curves[label]) == set(per_curve)
    for name, value in per_curve.items():
      np.testing.assert_array_equal(curves[label][name], value, err_msg=f"{label}/{name}")
  for kind, value in ref_iterations.items():
    np.testing.assert_array_equal(iterations[kind], value)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
  """The data and an uninterrupted run (checkpoints off)."""
  root = tmp_path_factory.mktemp("resume_cli")
  data_dir = write_mnist_idx(root / "data", fake_mnist())
  reference = root / "reference"
  code, _, err = _finish(_start(_command(data_dir, reference, "--checkpoint-every-s", "0")))
  assert code == 0, err
  return root, data_dir, reference


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_curves(cli):
  root, data_dir, reference = cli
  out = root / "killed"
  proc = _start(_command(data_dir, out, "--checkpoint-every-s", "0.2"))
  # Wait until adam (the second variant) has a checkpoint, then kill -9.
  step = _wait_for_checkpoint(proc, out, 2 * (TOTAL_BLOCKS + 1) + 1)
  proc.send_signal(signal.SIGKILL)
  code, _, _ = _finish(proc)
  assert code == -signal.SIGKILL
  assert step < 3 * (TOTAL_BLOCKS + 1)  # killed before adam finished
  saved, _ = results.load_curves(out / "curves.npz")
  assert list(saved) == ["ngm_sgd"]

  code, stdout, err = _finish(_start(_command(data_dir, out, "--resume")))
  assert code == 0, err
  assert "finished ngm_sgd (curves.npz, not trained again)" in stdout
  assert "adam from iteration " in stdout and "of 500" in stdout
  assert "ngm_sgd: compile" not in stdout  # not trained again
  _curves_equal(out, reference)
  assert not (out / "checkpoints").exists()


def test_sigint_stops_within_seconds_with_a_checkpoint_and_the_resume_command(cli):
  root, data_dir, reference = cli
  out = root / "interrupted"
  proc = _start(_command(data_dir, out))
  _wait_for_checkpoint(proc, out, TOTAL_BLOCKS + 2)  # ngm_sgd's first task boundary
  sent = time.monotonic()
  proc.send_signal(signal.SIGINT)
  code, _, err = _finish(proc)
  answered = time.monotonic() - sent
  assert code == 130, err
  assert answered < 15, f"took {answered:.1f} s to stop"  # measured ~1-3 s on 2 busy cores
  assert "Traceback" not in err
  assert "Stopped: stopped by SIGINT in variant 'ngm_sgd' at iteration" in err
  resume = err.strip().splitlines()[-1].strip()
  assert resume.startswith("python -m experiments.run run ") and resume.endswith(" --resume")
  assert (out / "checkpoints").is_dir() and (out / "run.json").exists()
  assert not (out / "curves.npz").exists()  # no variant finished

  # A rerun without --resume is refused and says how to continue.
  code, _, err = _finish(_start(_command(data_dir, out)))
  assert code == 2 and "did not finish; pass --resume" in err
  # The command it printed continues the run.
  command = shlex.split(resume)
  command[0] = sys.executable
  code, stdout, err = _finish(subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True))
  assert code == 0, err
  assert "Resuming" in stdout and "ngm_sgd from iteration" in stdout
  _curves_equal(out, reference)


def test_sigterm_during_overwrite_keeps_the_old_run_then_resume_replaces_it(cli):
  root, data_dir, reference = cli
  out = root / "overwritten"
  out.mkdir()
  before = {}
  for path in reference.iterdir():
    (out / path.name).write_bytes(path.read_bytes())
    before[path.name] = path.read_bytes()
  partial = root / "overwritten.partial"
  proc = _start(_command(data_dir, out, "--overwrite"))
  _wait_for_checkpoint(proc, partial, TOTAL_BLOCKS + 2)
  proc.send_signal(signal.SIGTERM)
  code, _, err = _finish(proc)
  assert code == 143, err
  assert "Traceback" not in err and "Stopped: stopped by SIGTERM" in err
  resume = err.strip().splitlines()[-1]
  assert "--resume" in resume and "--overwrite" not in resume
  # The old run is untouched, file for file; the new one waits beside it.
  assert {p.name: p.read_bytes() for p in out.iterdir()} == before
  assert (partial / "checkpoints").is_dir()

  code, stdout, err = _finish(_start(_command(data_dir, out, "--resume")))
  assert code == 0, err
  assert "an unfinished --overwrite of" in stdout
  assert not partial.exists()
  _curves_equal(out, reference)
  assert "resumed" in results.read_json(out / "run.json")  # the new run took its place


def _script(name, *args):
  return [sys.executable, str(ROOT / "tests" / "scripts" / name), *args]


def test_a_second_sigint_while_a_checkpoint_is_written_ends_cleanly_then_resumes(cli):
  root, data_dir, reference = cli
  out = root / "twice"
  proc = _start(_script("double_sigint.py", *_command(data_dir, out)[3:]))
  _wait_for_checkpoint(proc, out, TOTAL_BLOCKS + 2)
  proc.send_signal(signal.SIGINT)  # the second comes from inside the stop's checkpoint write
  code, _, err = _finish(proc)
  assert code == 130, err
  assert "double_sigint: second SIGINT mid-save" in err
  assert "SIGINT: finishing the checkpoint being written first, then stopping ..." in err
  assert "Traceback" not in err and "Exception" not in err and "absl" not in err, err
  assert err.strip().splitlines()[-1].strip().endswith(" --resume")
  # The step being written when the second one came was finished: no temporary
  # step, the newest whole with its file list.
  steps = out / "checkpoints"
  names = sorted(p.name for p in steps.iterdir())
  assert all(name.isdigit() for name in names), names
  assert check_file_list(steps / max(names, key=int)) == (True, None)

  # Both steps of a copy damaged: --resume is refused with one line, exit code 2.
  broken = root / "twice_broken"
  shutil.copytree(out, broken)
  for name in names:
    damage_checkpoint(broken / "checkpoints" / name, "missing meta/metadata")
  code, _, err = _finish(_start(_command(data_dir, broken, "--resume")))
  assert code == 2, err
  assert err.startswith(f"error: {broken / 'checkpoints'}: no intact checkpoint (step ")
  assert "meta/metadata is missing" in err and len(err.strip().splitlines()) == 1, err

  code, stdout, err = _finish(_start(_command(data_dir, out, "--resume")))
  assert code == 0, err
  assert "is damaged" not in err and "ngm_sgd from iteration" in stdout
  _curves_equal(out, reference)


def test_a_disk_that_fills_up_ends_with_one_message_then_resumes(cli):
  root, data_dir, reference = cli
  out = root / "full"
  # ngm_sgd (variant 1, steps 51 + blocks) checkpoints at its 5 task boundaries,
  # adam (102 + blocks) at its first; its next one hits the limit. (A step
  # may hold the segment in flight too: 51 + 50, 102 + 10 or 11, ...)
  command = _command(data_dir, out, "--checkpoint-every-s", "1000")[3:]
  code, _, err = _finish(_start(_script("full_disk.py", "6", *command)))
  assert code == 2, err
  steps = out / "checkpoints"
  kept = sorted(int(p.name) for p in steps.iterdir())  # no temporary step left
  assert len(kept) == 2 and kept[0] == 101 and 112 <= kept[1] <= 113, kept
  failed = re.match(rf"error: checkpoint (\d+) could not be written to {re.escape(str(steps))}:"
                    rf" File too large \[EFBIG\]: {re.escape(str(steps))}/\1\.orbax-checkpoint-tmp/",
                    err)
  assert failed and 122 <= int(failed.group(1)) <= 123, err
  lines = err.strip().splitlines()  # no orbax thread tracebacks: the error, how to resume
  assert len(lines) == 3 and lines[1] == "Once it can be written, continue with:", err
  assert lines[0].endswith(f"The checkpoints saved before are kept (steps {kept[0]},"
                           f" {kept[1]})."), err
  assert lines[2].strip().endswith(" --checkpoint-every-s 1000 --resume"), err
  saved, _ = results.load_curves(out / "curves.npz")
  assert list(saved) == ["ngm_sgd"]  # the finished variant kept

  code, stdout, err = _finish(_start(_command(data_dir, out, "--resume")))
  assert code == 0, err
  assert "finished ngm_sgd" in stdout
  assert f"adam from iteration {10 * (kept[1] - 102)} of 500" in stdout
  _curves_equal(out, reference)
