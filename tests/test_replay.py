"""The replay sampler: a bounded class-balanced reservoir, half current task, half replay."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngm_jax import replay, streams
from ngm_jax.train import TrainConfig, make_train, seed_keys
from tests.conftest import fake_mnist

BATCH, ITERS, PER_CLASS = 8, 6, 3


@pytest.fixture(scope="module")
def stream():
  return streams.split_mnist(fake_mnist())  # 5 tasks x 24 rows, 12 per class


def _scan_sampler(sampler, key, num_steps):
  """Runs the sampler alone over ``num_steps`` steps, as the training loop does."""
  def body(state, step):
    rows, new_state = sampler.sample(jax.random.fold_in(key, step), step, state)
    return new_state, (rows, state.buffer, new_state.buffer, new_state.seen)

  _, records = jax.lax.scan(body, sampler.init(key), jnp.arange(num_steps))
  return records


@pytest.fixture(scope="module")
def scan_seeds(stream):
  sampler = replay.replay_sampler(stream, BATCH, ITERS, PER_CLASS)
  return jax.jit(jax.vmap(lambda k: _scan_sampler(sampler, k, 5 * ITERS)))


@pytest.fixture(scope="module")
def runs(scan_seeds):
  """Rows and buffers of 3 vmapped seeds over the whole stream."""
  return jax.device_get(scan_seeds(seed_keys(3)))


def _bounds(stream):
  ends = np.asarray(stream.train_task_ends)
  return np.r_[0, ends[:-1]], ends


def test_buffer_is_bounded_per_class_and_holds_only_seen_tasks(stream, runs):
  _, _, buffers, seen = runs
  starts, ends = _bounds(stream)
  labels = np.asarray(stream.train_labels)
  assert buffers.shape == (3, 5 * ITERS, 10, PER_CLASS)
  for s in range(3):
    for t in range(5 * ITERS):
      buf, task = buffers[s, t], t // ITERS
      full = buf >= 0
      # Class c fills its first min(N_c, M) slots, and only those.
      np.testing.assert_array_equal(full.sum(-1), np.minimum(seen[s, t], PER_CLASS))
      assert np.all(full == (np.arange(PER_CLASS) < full.sum(-1, keepdims=True)))
      rows = buf[full]
      assert np.all(rows < ends[task])  # only tasks seen so far
      np.testing.assert_array_equal(labels[rows], np.nonzero(full)[0])  # class-balanced
  # Classes of tasks not reached yet were never offered.
  assert np.all(seen[:, ITERS - 1, 2:] == 0)
  assert np.all(seen[:, -1] > PER_CLASS)  # every reservoir reached its replacement phase


def test_batches_are_half_current_task_half_earlier_tasks(stream, runs):
  rows, before, _, _ = runs
  starts, ends = _bounds(stream)
  half = BATCH // 2
  for t in range(5 * ITERS):
    task = t // ITERS
    cur = rows[:, t, :BATCH - half]
    assert np.all((cur >= starts[task]) & (cur < ends[task]))
    rep = rows[:, t, BATCH - half:]
    if task == 0:  # nothing earlier to replay: the whole batch is from task 1
      assert np.all(rep < ends[0])
      continue
    assert np.all(rep < starts[task])  # only earlier tasks' examples
    for s in range(3):  # ... and only rows the buffer held before this step
      assert set(rep[s].tolist()) <= set(before[s, t][before[s, t] >= 0].tolist())


def test_empty_buffer_draws_the_whole_batch_from_the_current_task(stream):
  sampler = replay.replay_sampler(stream, BATCH, ITERS, PER_CLASS)
  starts, ends = _bounds(stream)
  step = 2 * ITERS + 1  # task 3
  state = replay.empty_buffer(10, PER_CLASS)
  rows, new = jax.jit(sampler.sample)(jax.random.key(0), step, state)
  assert np.all((rows >= starts[2]) & (rows < ends[2]))
  assert int(new.seen.sum()) == BATCH  # every row was offered to the reservoir
  # A buffer holding only the current task's rows has nothing to replay either.
  rows_again, _ = jax.jit(sampler.sample)(jax.random.key(1), step, new)
  assert np.all((rows_again >= starts[2]) & (rows_again < ends[2]))


def test_reservoir_keeps_every_offer_with_equal_probability():
  n_rows, size, batch, trials = 24, 4, 8, 20000
  rows = jnp.arange(n_rows, dtype=jnp.int32)

  def one(key):
    state = replay.empty_buffer(2, size)
    for b in range(n_rows // batch):  # three batches, one class
      chunk = rows[b * batch:(b + 1) * batch]
      state = replay.reservoir_update(jax.random.fold_in(key, b), state, chunk,
                                      jnp.zeros(batch, jnp.int32), jnp.ones(batch, bool))
    return state

  states = jax.device_get(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), trials)))
  assert np.all(states.seen == [n_rows, 0]) and np.all(states.buffer[:, 1] == -1)
  held = states.buffer[:, 0]
  assert np.all(held >= 0)
  assert all(len(set(h)) == size for h in held.tolist())  # distinct offers, no row twice
  freq = np.bincount(held.reshape(-1), minlength=n_rows) / trials
  # Each of the 24 offers is kept with probability M/N = 1/6 (s.e. 0.0026).
  np.testing.assert_allclose(freq, size / n_rows, atol=0.015)
  expected = trials * size / n_rows
  chi2 = np.sum((freq * trials - expected) ** 2 / expected)
  assert chi2 < 60  # 23 degrees of freedom (slots are not independent: conservative)


def test_reservoir_fills_in_offer_order_and_skips_rows_not_offered():
  state = replay.empty_buffer(3, 4)
  rows = jnp.array([10, 11, 12, 13, 14, 15], jnp.int32)
  labels = jnp.array([0, 1, 0, 0, 2, 0], jnp.int32)
  offered = jnp.array([True, True, False, True, True, True])
  new = replay.reservoir_update(jax.random.key(0), state, rows, labels, offered)
  np.testing.assert_array_equal(new.buffer, [[10, 13, 15, -1], [11, -1, -1, -1],
                                             [14, -1, -1, -1]])
  np.testing.assert_array_equal(new.seen, [3, 1, 1])


def test_same_key_same_rows_different_keys_differ(scan_seeds, runs):
  rows = runs[0]
  again = jax.device_get(scan_seeds(seed_keys(3)))
  np.testing.assert_array_equal(rows, again[0])
  np.testing.assert_array_equal(runs[2], again[2])
  assert not np.array_equal(rows[0], rows[1])


def test_domain_incremental_stream_replays_earlier_tasks_of_the_same_classes():
  rotated = streams.rotated_mnist(fake_mnist(n_train_per_class=4, n_test_per_class=1))
  sampler = replay.replay_sampler(rotated, BATCH, ITERS, PER_CLASS)
  rows, _, buffers, _ = jax.device_get(jax.jit(
      lambda k: _scan_sampler(sampler, k, 3 * ITERS))(jax.random.key(0)))
  starts, ends = _bounds(rotated)
  for t in range(ITERS, 3 * ITERS):
    task = t // ITERS
    assert np.all((rows[t, :4] >= starts[task]) & (rows[t, :4] < ends[task]))
    assert np.all(rows[t, 4:] < starts[task])
  assert buffers[-1].max() >= starts[1]  # the reservoir also took the new task's rows


@pytest.mark.slow
def test_trains_inside_make_train_under_vmap(stream):
  config = TrainConfig(iterations_per_task=ITERS, batch_size=BATCH, eval_every=1,
                       task_eval_every=3)
  sampler = replay.replay_sampler(stream, BATCH, ITERS, PER_CLASS)
  train, data = make_train(stream, "ngm_sgd", config, sampler=sampler)
  curves = jax.device_get(jax.jit(jax.vmap(train, in_axes=(0, None)))(seed_keys(2), data))
  assert curves["task1_acc"].shape == (2, 30) and curves["task_acc"].shape == (2, 10, 5)
  assert all(np.isfinite(v).all() for v in curves.values())
  assert not np.allclose(curves["task1_loss"][0], curves["task1_loss"][1])
  g, h = curves["gain"][0], curves["entropy"][0]  # the gain follows the replay batches' H
  np.testing.assert_allclose(g, 0.9 * np.r_[1.0, g[:-1]] + 0.1 + 0.4 * h, rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"per_class": 0}, "per_class=0"),
    ({"batch_size": 1}, "batch_size=1"),
    ({"per_class": 2.5}, "per_class=2.5"),
])
def test_bad_arguments_name_the_value(stream, kwargs, match):
  args = {"batch_size": BATCH, "iterations_per_task": ITERS, "per_class": PER_CLASS, **kwargs}
  with pytest.raises(ValueError, match=match):
    replay.replay_sampler(stream, **args)


@pytest.mark.slow
def test_command_writes_table_and_figure_that_report_remakes(tmp_path):
  from experiments import replay as cli
  from experiments import run as run_cli
  from tests.conftest import write_mnist_idx
  data_dir = write_mnist_idx(tmp_path / "data", fake_mnist())
  out = tmp_path / "out"
  code = cli.main(["--benchmark", "split_mnist", "--data-dir", str(data_dir),
                   "--per-class", "3", "--seeds", "2", "--optimizers", "ngm_sgd",
                   "--iterations-per-task", "4", "--batch-size", "8",
                   "--task-eval-every", "2", "--out", str(out), "--no-progress"])
  assert code == 0
  meta = json.loads((out / "run.json").read_text())
  assert meta["optimizers"] == ["ngm_sgd"] and meta["seeds"] == [0, 1]
  assert meta["sampler"]["per_class"] == 3 and meta["sampler"]["buffer_size"] == 30
  table = (out / "table.md").read_text()
  assert "replay" in table and "| ngm_sgd |" in table and "avg-SG" in table
  assert (out / "figure.png").stat().st_size > 0
  (out / "table.md").unlink()
  assert run_cli.main(["report", str(out)]) == 0  # the library's report reads it
  assert "| ngm_sgd |" in (out / "table.md").read_text()
  assert cli.main(["--benchmark", "split_mnist", "--data-dir", str(data_dir),
                   "--per-class", "0", "--out", str(tmp_path / "o2")]) == 2
