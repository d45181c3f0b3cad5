"""The (η, γ) sweep as one vmapped program, and its metric grids."""

import dataclasses

import jax
import numpy as np
import pytest

from ngm_jax import streams, sweep
from ngm_jax.placement import layer_kernels
from ngm_jax.train import TrainConfig, make_train, seed_keys
from tests.conftest import fake_mnist

CONFIG = TrainConfig(iterations_per_task=4, batch_size=8, eval_every=1, task_eval_every=2)
ETAS, GAMMAS = (0.0, 0.6), (0.5, 0.9)


@pytest.fixture(scope="module")
def stream():
  return streams.split_mnist(fake_mnist(n_train_per_class=6, n_test_per_class=3))


@pytest.fixture(scope="module")
def swept(stream):
  return sweep.sweep(stream, CONFIG, ETAS, GAMMAS, num_seeds=2)


def test_curves_have_eta_gamma_seed_axes(swept):
  curves, timings = swept
  total = 5 * 4
  assert curves["task1_acc"].shape == (2, 2, 2, total)
  assert curves["gain"].shape == (2, 2, 2, total)
  assert curves["task_acc"].shape == (2, 2, 2, total // 2, 5)
  assert all(np.isfinite(v).all() for v in curves.values())
  assert timings["compile_s"] > 0 and timings["run_s"] > 0
  assert timings["wall_s"] >= timings["compile_s"] + timings["run_s"]


def test_each_run_follows_its_own_gain_dynamics(swept):
  curves, _ = swept
  for i, eta in enumerate(ETAS):
    for j, gamma in enumerate(GAMMAS):
      g, h = curves["gain"][i, j], curves["entropy"][i, j]  # [S, T]
      prev = np.concatenate([np.ones((2, 1)), g[:, :-1]], axis=1)  # starts at g0 = 1
      np.testing.assert_allclose(g, gamma * prev + (1 - gamma) + eta * h, rtol=1e-5)
  np.testing.assert_allclose(curves["gain"][0], 1.0, rtol=1e-6)  # η = 0 holds g0


@pytest.mark.slow
@pytest.mark.parametrize("i, j", [(1, 0)])
def test_a_grid_point_equals_a_separate_make_train(stream, swept, i, j):
  curves, _ = swept
  config = dataclasses.replace(CONFIG, eta=ETAS[i], gamma=GAMMAS[j])
  train, data = make_train(stream, "ngm_sgd", config)
  alone = jax.device_get(jax.jit(jax.vmap(train, in_axes=(0, None)))(seed_keys(2), data))
  for name, value in alone.items():
    np.testing.assert_allclose(curves[name][i, j], value, rtol=1e-4, atol=1e-5, err_msg=name)
  assert not np.allclose(curves["gain"][i, 0], curves["gain"][i, 1])  # γ matters


@pytest.mark.slow
def test_sweep_honours_backbone_momentum(stream):
  # Gain on the output layer only, momentum SGD on the hidden ones: a grid
  # point must train exactly as the built-in ngm_sgd with that config does.
  config = dataclasses.replace(CONFIG, backbone_momentum=0.9, eta=0.6, gamma=0.5)
  output_only = layer_kernels("output")
  curves, _ = sweep.sweep(stream, config, [0.6], [0.5], num_seeds=1, where=output_only)
  train, data = make_train(stream, "ngm_sgd", config, where=output_only)
  alone = jax.device_get(jax.jit(jax.vmap(train, in_axes=(0, None)))(seed_keys(1), data))
  plain = dataclasses.replace(config, backbone_momentum=None)
  train, data = make_train(stream, "ngm_sgd", plain, where=output_only)
  no_momentum = jax.device_get(jax.jit(jax.vmap(train, in_axes=(0, None)))(seed_keys(1), data))
  np.testing.assert_allclose(curves["train_loss"][0, 0], alone["train_loss"], rtol=1e-5)
  assert not np.allclose(curves["train_loss"][0, 0], no_momentum["train_loss"], rtol=1e-5)


def test_separate_runs_build_ngm_sgd_per_setting_and_time_each(stream, monkeypatch):
  # The numbers of make_train_parts + train_seeds are make_train's
  # (tests/test_train.py); here, the loop's wiring and bookkeeping.
  built = []

  def fake_parts(stream_, optimizer, config, **kwargs):
    built.append((optimizer, config.eta, config.gamma, config.learning_rate))
    return "parts"

  def fake_train_seeds(parts, keys):
    return {"task1_acc": np.zeros((len(keys), 3))}, {"compile_s": 1.0, "run_s": 2.0}

  monkeypatch.setattr(sweep, "make_train_parts", fake_parts)
  monkeypatch.setattr(sweep, "train_seeds", fake_train_seeds)
  seen = []
  runs, timings = sweep.separate_runs(stream, CONFIG, [(0.0, 0.9), (0.6, 0.5)], 3,
                                      callback=lambda k, t: seen.append(k))
  assert built == [("ngm_sgd", 0.0, 0.9, 0.01), ("ngm_sgd", 0.6, 0.5, 0.01)]
  assert seen == [0, 1] and [r["task1_acc"].shape for r in runs] == [(3, 3)] * 2
  assert [(t["eta"], t["gamma"]) for t in timings] == [(0.0, 0.9), (0.6, 0.5)]
  assert all(t["compile_s"] == 1.0 and t["run_s"] == 2.0 and t["wall_s"] > 0 for t in timings)
  with pytest.raises(ValueError, match="gamma=1.0 is not allowed"):
    sweep.separate_runs(stream, CONFIG, [(0.1, 1.0)], 1)


def test_grid_metrics_on_hand_made_curves():
  # 2 tasks x 2 points. final_1 = 1.0, min_2 = 0.8 → SG = 0.2; final_2 = 0.9.
  dip = np.array([0.5, 1.0, 0.8, 0.9])
  flat = np.array([0.5, 1.0, 1.0, 1.0])
  acc = np.stack([np.stack([np.stack([dip, dip]), np.stack([dip, flat])])])  # [1, 2, 2, 4]
  grids = sweep.grid_metrics(acc, num_tasks=2)
  assert set(grids) == {"avg_acc", "avg_min_acc", "wc_acc", "avg_sg"}
  np.testing.assert_allclose(grids["avg_sg"]["per_seed"], [[[0.2, 0.2], [0.2, 0.0]]])
  np.testing.assert_allclose(grids["avg_sg"]["mean"], [[0.2, 0.1]])
  np.testing.assert_allclose(grids["avg_sg"]["stderr"], [[0.0, 0.1]])
  np.testing.assert_allclose(grids["avg_acc"]["mean"], [[0.95, 0.975]])
  np.testing.assert_allclose(grids["wc_acc"]["mean"][0, 0], 0.5 * 0.9 + 0.5 * 0.8)
  one_seed = sweep.grid_metrics(acc[:, :, :1], 2, metrics=("avg_sg",))
  assert np.isnan(one_seed["avg_sg"]["stderr"]).all()
  with pytest.raises(ValueError, match="unknown metric.*choose from"):
    sweep.grid_metrics(acc, 2, metrics=("sg",))


@pytest.mark.parametrize("etas, gammas, match", [
    ((0.1,), (1.0,), "gamma=1.0 is not allowed"),
    ((-0.1,), (0.9,), "eta=-0.1 is not allowed"),
    ((), (0.9,), "no eta values"),
    ((0.1, 0.1), (0.9,), "repeated eta"),
])
def test_bad_grid_names_the_value(etas, gammas, match):
  with pytest.raises(ValueError, match=match):
    sweep.check_grid(etas, gammas)
