"""Live metrics (ngm_jax.logs): the steps and values fed per segment, the CSV,
TensorBoard's event files read back with tensorboard's own reader, W&B's
offline run files read back, and a stopped run resumed into the same logs
with every step once and the values of an uninterrupted run."""

import csv
import importlib.util
import signal
from pathlib import Path

import numpy as np
import pytest

import ngm_jax
from ngm_jax import logs, segment_actions
from ngm_jax.checkpoint import RunStopped
from ngm_jax.cli import main
from ngm_jax.streams import split_mnist
from ngm_jax.train import TrainConfig
from tests.conftest import fake_mnist

# 5 tasks x 6 iterations, every task evaluated every 2: 3 segments per task, 15 per variant.
CONFIG = TrainConfig(iterations_per_task=6, batch_size=8, eta=0.4, eval_every=1,
                     task_eval_every=2)
TAGS = {"train_loss", "gain", "task1_acc", "task1_loss"} | {f"task_acc/{k}" for k in range(1, 6)}
FINAL = {f"final/{m}" for m in logs.FINAL_METRICS}


@pytest.fixture(scope="module")
def stream():
  return split_mnist(fake_mnist(n_train_per_class=6, n_test_per_class=3))


class _Recorder:
  """A user's writer: every call kept."""

  def __init__(self):
    self.calls, self.flushes, self.closed = [], 0, False

  def write_scalars(self, step, scalars):
    self.calls.append((step, dict(scalars)))

  def flush(self):
    self.flushes += 1

  def close(self):
    self.closed = True


def _records(seeds, blocks, intervals, every, tasks, offset=0.0):
  """Records ``[S, blocks, ...]`` whose value says where it is: 1000·seed + iteration."""
  s = np.arange(seeds)[:, None, None, None] * 1000.0
  it = (np.arange(blocks)[:, None, None] * intervals * every + np.arange(intervals)[:, None]
        * every + np.arange(every) + 1)[None] + s + offset
  steps = {"train_loss": it, "gain": -it, "entropy": it}
  evals = it[..., -1]  # [S, blocks, intervals], the interval's last iteration
  task1 = {"task1_acc": evals, "task1_loss": 2 * evals}
  ends = evals[..., -1:] + np.arange(tasks)[None, None] / 10  # [S, blocks, K]
  return steps, task1, {"task_acc": ends, "task_loss": ends}


def test_segment_scalars_are_the_seed_means_at_their_iterations():
  # Blocks 3 and 4 of a run with 2 intervals of 3 steps per block (6 iterations).
  out = logs.segment_scalars(_records(2, 2, 2, 3, 4), first_block=2)
  assert list(out) == list(range(13, 25))  # iterations 13..24, rising
  mean_seed = 500.0  # seeds 0 and 1: 1000·seed averages to 500
  assert out[13] == {"train_loss": mean_seed + 1, "gain": -(mean_seed + 1)}
  # Task 1 every 3 iterations, every task at each block's end (iterations 18, 24).
  assert out[15] == {"train_loss": mean_seed + 3, "gain": -(mean_seed + 3),
                     "task1_acc": mean_seed + 3, "task1_loss": 2 * (mean_seed + 3)}
  assert set(out[18]) == {"train_loss", "gain", "task1_acc", "task1_loss", "task_acc/1",
                          "task_acc/2", "task_acc/3", "task_acc/4"}
  np.testing.assert_allclose([out[24][f"task_acc/{k}"] for k in range(1, 5)],
                             mean_seed + 12 + np.arange(4) / 10)


def test_csv_begin_drops_the_variants_rows_and_a_cut_line(tmp_path):
  path = tmp_path / "metrics.csv"
  writer = logs.CsvWriter(path)
  writer.write_scalars(1, {"a/x": 1.0, "b/x": 2.0})
  writer.write_scalars(2, {"b/task_acc/1": 0.1})
  writer.close()
  with open(path, "a") as f:
    f.write("b,3,x,0.")  # a killed run's half row
  again = logs.CsvWriter(path, fresh=False)
  again.begin("b")
  again.write_scalars(1, {"b/x": 5.0})
  again.close()
  rows = list(csv.reader(path.open()))
  assert rows == [["variant", "step", "tag", "value"], ["a", "1", "x", "1.0"],
                  ["b", "1", "x", "5.0"]]
  logs.CsvWriter(path)  # a new run starts a new file
  assert not path.exists()


def test_bad_log_arguments_are_refused_before_training(stream, monkeypatch, tmp_path, capsys):
  with pytest.raises(ValueError, match="log 'tb': unknown sink; choose from csv, tensorboard"):
    ngm_jax.run_benchmark(stream, ["sgd"], CONFIG, log=["tb"], out=tmp_path / "a")
  with pytest.raises(TypeError, match="neither a sink name .* nor a MetricWriter"):
    ngm_jax.run_benchmark(stream, ["sgd"], CONFIG, log=[object()])
  with pytest.raises(ValueError, match="log tensorboard: writes into the run's folder; pass out="):
    ngm_jax.run_benchmark(stream, ["sgd"], CONFIG, log=["tensorboard"])
  find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "tensorboardX" else find_spec(name, *a))
  with pytest.raises(ValueError, match=r"log tensorboard: needs tensorboardX, which is not"
                                       r" installed; pip install 'ngm-jax\[tensorboard\]'"):
    ngm_jax.run_benchmark(stream, ["sgd"], CONFIG, log=["tensorboard"], out=tmp_path / "b")
  # The command line: at once, a usage error (before any data is read).
  with pytest.raises(SystemExit) as exit_:
    main(["run", "--benchmark", "split_mnist", "--log", "csv,tensorboard", "--data-dir",
          str(tmp_path / "nowhere")])
  assert exit_.value.code == 2
  err = capsys.readouterr().err
  assert "--log tensorboard: needs tensorboardX, which is not installed; pip install" \
         " 'ngm-jax[tensorboard]'" in err
  with pytest.raises(SystemExit):
    main(["run", "--log", "csv,tb"])
  assert "unknown log sink(s) tb; choose from csv, tensorboard, wandb" in capsys.readouterr().err
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------
# Reading the files back.

def read_csv(path: Path) -> dict[tuple[str, str, int], float]:
  """``{(variant, tag, step): value}``; fails on a repeated step."""
  rows = list(csv.DictReader(path.open()))
  out = {(r["variant"], r["tag"], int(r["step"])): float(r["value"]) for r in rows}
  assert len(out) == len(rows), "a (variant, tag, step) appears twice"
  return out


def read_tensorboard(folder: Path) -> dict[tuple[str, str, int], float]:
  """``{(variant, tag, step): value}`` through tensorboard's EventAccumulator
  (what TensorBoard shows); fails on a repeated step."""
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  out = {}
  for run in sorted(p for p in folder.iterdir() if p.is_dir()):
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    for tag in events.Tags()["scalars"]:
      steps = [e.step for e in events.Scalars(tag)]
      assert len(steps) == len(set(steps)), f"{run.name}/{tag}: a step appears twice"
      out.update({(run.name, tag, e.step): e.value for e in events.Scalars(tag)})
  return out


def _wandb_records(path: Path):
  """The records of a ``.wandb`` file (LevelDB log format after a 7-byte header)."""
  from wandb.proto import wandb_internal_pb2
  data, block, pos, pending = path.read_bytes(), 32768, 7, b""
  assert data[:4] == b":W&B"
  while pos + 7 <= len(data):
    if block - pos % block < 7:  # a block's tail too short for a header
      pos += block - pos % block
      continue
    length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
    chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
    if kind:
      pending = chunk if kind in (1, 2) else pending + chunk  # full/first, middle/last
      if kind in (1, 4):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        yield record


def read_wandb(folder: Path) -> dict[tuple[str, str, int], float]:
  """``{(variant, tag, step): value}`` of every offline W&B run file in
  ``folder/wandb``; fails on a step logged twice to a variant."""
  out = {}
  for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
    name = None
    for record in _wandb_records(path):
      kind = record.WhichOneof("record_type")
      if kind == "run":
        name = record.run.display_name
      elif kind == "history":
        for item in record.history.item:
          tag = item.key or "/".join(item.nested_key)
          if not tag.startswith("_"):
            key = (name, tag, record.history.step.num)
            assert key not in out, f"{key} logged twice"
            out[key] = float(item.value_json)
  return out


def expected(result) -> dict[tuple[str, str, int], float]:
  """What the logs must hold: the seed means of ``result.curves``, and the final metrics."""
  out = {}
  for label, curves in result.curves.items():
    mean = {k: np.asarray(v, np.float64).mean(axis=0) for k, v in curves.items()}
    for name, kind in (("train_loss", "step"), ("gain", "step"), ("task1_acc", "task1"),
                       ("task1_loss", "task1")):
      out.update({(label, name, int(t)): v for t, v in zip(result.iterations[kind], mean[name])})
    for k in range(mean["task_acc"].shape[-1]):
      out.update({(label, f"task_acc/{k + 1}", int(t)): v
                  for t, v in zip(result.iterations["tasks"], mean["task_acc"][:, k])})
    last = int(result.iterations["step"][-1])
    out.update({(label, f"final/{m}", last): result.metrics[label][m]["mean"]
                for m in logs.FINAL_METRICS})
  return out


def _offline_wandb(monkeypatch, tmp_path) -> tuple[str, ...]:
  """``("wandb",)`` with W&B offline and its folders in ``tmp_path``, or () without wandb."""
  if importlib.util.find_spec("wandb") is None:
    return ()
  for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
    monkeypatch.setenv(name, str(tmp_path / name))
  monkeypatch.setenv("WANDB_MODE", "offline")
  monkeypatch.setenv("WANDB_SILENT", "true")
  return ("wandb",)


def _assert_same(got, want, rtol=0.0):
  assert set(got) == set(want)
  keys = sorted(want)
  np.testing.assert_allclose([got[k] for k in keys], [want[k] for k in keys], rtol=rtol)


def test_a_run_logs_every_segment_to_csv_tensorboard_wandb_and_a_users_writer(
    stream, tmp_path, monkeypatch):
  mine = _Recorder()
  out = tmp_path / "run"
  wandb = _offline_wandb(monkeypatch, tmp_path)  # W&B too where wandb is installed
  result = ngm_jax.run_benchmark(stream, ["ngm_sgd"], CONFIG, num_seeds=2, out=out,
                                 show_progress=False, log=("csv", "tensorboard", *wandb, mine))
  want = expected(result)
  assert {tag for _, tag, _ in want} == TAGS | FINAL
  _assert_same(read_csv(out / "metrics.csv"), want)  # exact: repr of the float64 mean
  _assert_same(read_tensorboard(out / "tensorboard"), want, rtol=1e-6)  # stored as float32
  assert [p.name for p in (out / "tensorboard").iterdir()] == ["ngm_sgd"]
  if wandb:
    _assert_same(read_wandb(out), want)
  # The user's writer: one call per step, steps rising, flushed after every
  # segment (15), the final metrics and the run's end; not closed (it is the user's).
  steps = [step for step, _ in mine.calls]
  assert steps == list(range(1, 31)) + [30]
  assert {(k.split("/", 1)[0], k.split("/", 1)[1], s): v for s, d in mine.calls
          for k, v in d.items()} == want
  assert mine.flushes == 17 and not mine.closed


@pytest.mark.slow
@pytest.mark.parametrize("how", ["signal", "crash"])
def test_a_resumed_run_continues_the_logs_each_step_once(stream, tmp_path, monkeypatch, how):
  """Stopped in adam (the second variant), then resumed: the CSV, the event
  files and the W&B runs hold each step once, with an uninterrupted run's values.

  ``signal``: SIGTERM after block 4 of 15; the checkpoint may hold block 5
  too (the segment in flight), which the stopped session never logged.
  ``crash``: an error after block 8 was logged, past the checkpoint made at
  block 6 (a task boundary), as a killed run leaves it.
  """
  sinks = ("csv", "tensorboard", *_offline_wandb(monkeypatch, tmp_path))
  run = lambda out, **kw: ngm_jax.run_benchmark(stream, ["ngm_sgd", "adam"], CONFIG,
                                                num_seeds=2, out=out, show_progress=False,
                                                log=sinks, **kw)
  reference = run(tmp_path / "reference", checkpoint_every_s=0)
  saver = segment_actions.SegmentActions.__call__

  def stop(self, done):
    if self.label == "adam" and done.blocks_done == 4 and how == "signal":
      signal.raise_signal(signal.SIGTERM)
    answer = saver(self, done)
    if self.label == "adam" and done.blocks_done == 8 and how == "crash":
      raise RuntimeError("killed")
    return answer

  monkeypatch.setattr(segment_actions.SegmentActions, "__call__", stop)
  out = tmp_path / "run"
  with pytest.raises(RunStopped if how == "signal" else RuntimeError):
    run(out)
  monkeypatch.undo()
  _offline_wandb(monkeypatch, tmp_path)  # undo() restored the environment too
  logged = max(step for variant, _, step in read_csv(out / "metrics.csv") if variant == "adam")
  resumed = run(out, resume=True)
  at = resumed.meta["timings"]["adam"]["resumed_at_iteration"]
  if how == "signal":  # the logs stopped at the signal, the checkpoint at or after it
    assert logged == 8 and at in (8, 10)
  else:  # the logs went past the checkpoint
    assert logged == 16 and at in (12, 14)
  want = expected(reference)
  _assert_same(read_csv(out / "metrics.csv"), want)
  _assert_same(read_csv(out / "metrics.csv"), read_csv(tmp_path / "reference" / "metrics.csv"))
  _assert_same(read_tensorboard(out / "tensorboard"), want, rtol=1e-6)
  if "wandb" in sinks:
    runs = sorted(out.glob("wandb/offline-run-*"))
    assert len(runs) == 3  # ngm_sgd; adam stopped, adam resumed (the same run id)
    assert len({p.name.rsplit("-", 1)[1] for p in runs}) == 2
    _assert_same(read_wandb(out), want)
