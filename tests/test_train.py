"""The compiled, vmapped incremental-joint-training loop, on tiny synthetic data."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ngm_jax import gain as ngm
from ngm_jax import streams
from ngm_jax.execution import train_seeds
from ngm_jax.optimizers import Optimizer
from ngm_jax.placement import layer_kernels
from ngm_jax.train import TrainConfig, curve_iterations, make_train, make_train_parts, seed_keys
from tests.conftest import fake_mnist

CONFIG = TrainConfig(iterations_per_task=6, batch_size=8, eta=0.4,
                     eval_every=1, task_eval_every=3)


def run_one(stream, optimizer, config=CONFIG, key=None, **kwargs):
  """One seed's curves (key 0 unless given)."""
  train, data = make_train(stream, optimizer, config, **kwargs)
  return jax.jit(train)(jax.random.key(0) if key is None else key, data)


def run_seeds(train, data, keys):
  return jax.device_get(jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, data))


@pytest.fixture(scope="module")
def stream():
  return streams.split_mnist(fake_mnist())


@pytest.fixture(scope="module")
def ngm_curves(stream):
  train, data = make_train(stream, "ngm_sgd", CONFIG)
  return (train, data), run_seeds(train, data, seed_keys(2))


def test_curve_shapes_and_iterations(stream, ngm_curves):
  _, curves = ngm_curves
  total = 5 * 6
  expected = {"task1_acc": (2, total), "task1_loss": (2, total), "gain": (2, total),
              "entropy": (2, total), "train_loss": (2, total),
              "task_acc": (2, total // 3, 5), "task_loss": (2, total // 3, 5),
              "diverged_at": (2,)}
  assert {k: v.shape for k, v in curves.items()} == expected
  np.testing.assert_array_equal(curves["diverged_at"], [-1, -1])  # neither seed diverged
  assert all(np.isfinite(v).all() for v in curves.values())
  it = curve_iterations(CONFIG, 5)
  np.testing.assert_array_equal(it["task1"], np.arange(1, 31))
  np.testing.assert_array_equal(it["tasks"], np.arange(3, 31, 3))
  # Task-1 accuracy is the first column of the per-task accuracy.
  np.testing.assert_allclose(curves["task_acc"][:, :, 0], curves["task1_acc"][:, 2::3], atol=1e-6)


def test_gain_follows_minibatch_entropy(ngm_curves):
  _, curves = ngm_curves
  g, h = curves["gain"][0], curves["entropy"][0]
  expected_prev = np.r_[1.0, g[:-1]]  # initial gain g0 = 1
  np.testing.assert_allclose(g, 0.9 * expected_prev + 0.1 * 1.0 + 0.4 * h, rtol=1e-5)
  assert 0 < h.min() and h.max() <= np.log(10) + 1e-5


@pytest.mark.slow
def test_vmapped_seed_equals_seed_run_alone(stream, ngm_curves):
  (train, data), curves = ngm_curves
  alone = jax.device_get(jax.jit(train)(seed_keys([1])[0], data))
  for name, value in alone.items():
    np.testing.assert_allclose(curves[name][1], value, rtol=1e-4, atol=1e-5, err_msg=name)
  assert not np.allclose(curves["task1_loss"][0], curves["task1_loss"][1])  # seeds differ


@pytest.mark.slow  # tests/test_reproducibility.py too
def test_same_key_same_run(ngm_curves):
  (train, data), curves = ngm_curves
  again = run_seeds(train, data, seed_keys(2))
  for name in curves:
    np.testing.assert_array_equal(curves[name], again[name])


def test_learns_task1_and_baseline_records_unit_gain(stream):
  config = dataclasses.replace(CONFIG, iterations_per_task=30, task_eval_every=10,
                               learning_rate=0.05)
  two_tasks = dataclasses.replace(
      stream, task_names=stream.task_names[:2],
      train_task_ends=stream.train_task_ends[:2], test_task_ends=stream.test_task_ends[:2],
      train_images=stream.train_images[:stream.train_task_ends[1]],
      train_labels=stream.train_labels[:stream.train_task_ends[1]],
      test_images=stream.test_images[:stream.test_task_ends[1]],
      test_labels=stream.test_labels[:stream.test_task_ends[1]])
  curves = run_one(two_tasks, "msgd", config)
  assert float(curves["task1_acc"][29]) > 0.9
  np.testing.assert_array_equal(curves["gain"], 1.0)


def test_user_chain_and_eval_options(stream):
  config = dataclasses.replace(CONFIG, eval_every=3, eval_task1_limit=5)
  tx = optax.chain(ngm.gain_modulation(eta=0.2), optax.adam(1e-3))
  curves = run_one(stream, tx, config)
  assert curves["task1_acc"].shape == (10,)
  # Accuracy on 5 images is a multiple of 1/5.
  np.testing.assert_allclose(np.asarray(curves["task1_acc"]) * 5 % 1, 0, atol=1e-5)
  assert float(curves["gain"][-1]) > 1.0


@pytest.mark.slow
def test_progress_callback_reports_iterations(stream):
  seen = []
  train, data = make_train(stream, "sgd", CONFIG,
                           progress=lambda step: seen.append(int(np.max(step))))
  run_seeds(train, data, seed_keys(2))
  jax.effects_barrier()
  assert max(seen) == 30 and set(seen) <= set(range(3, 31, 3))


@pytest.mark.parametrize("kwargs, match", [
    ({"eval_every": 4}, "eval_every=4 must divide task_eval_every=10"),
    ({"task_eval_every": 7}, "task_eval_every=7 must divide iterations_per_task=200"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"eval_task1_limit": 0}, "eval_task1_limit=0"),
    ({"learning_rate": -1.0}, "learning_rate=-1.0"),
    ({"learning_rate": float("inf")}, r"learning_rate=inf: must be a finite number > 0"),
    ({"gamma": float("nan")}, r"gamma=nan: must be a finite number in \[0, 1\)"),
    ({"gamma": 1.0}, r"TrainConfig.gamma=1.0: must be a finite number in \[0, 1\)"),
    ({"eta": -1.0}, r"TrainConfig.eta=-1.0: must be a finite number >= 0"),
    ({"g0": 0.0}, r"g0=0.0: must be a finite number > 0"),
    ({"const_gain": -2.0}, r"const_gain=-2.0: must be a finite number > 0"),
    ({"backbone_momentum": 1.0}, r"backbone_momentum=1.0: must be None or a finite number"),
])
def test_config_validation(kwargs, match):
  with pytest.raises(ValueError, match=match):
    TrainConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [{"gamma": "0.5"}, {"eta": None}, {"learning_rate": [0.1]},
                                    {"iterations_per_task": 2.0}, {"batch_size": True},
                                    {"eval_task1_limit": 1.5}, {"backbone_momentum": "0.9"}])
def test_config_wrong_types_are_type_errors(kwargs):
  (name, value), = kwargs.items()
  with pytest.raises(TypeError, match=f"TrainConfig.{name}=.*: must be .*, not a"
                                      f" {type(value).__name__}"):
    TrainConfig(**kwargs)


def test_unknown_optimizer_name(stream):
  with pytest.raises(ValueError, match="ngm_sgd, sgd, msgd, adam, g0_sgd"):
    make_train(stream, "rmsprop", CONFIG)


@pytest.mark.slow
def test_oracle_reset_restarts_optimizer_state_and_keeps_gain(stream):
  # SGD whose step size is lr while its count < I and 0 after: without a reset
  # learning stops at the first boundary; with the reset it restarts each task.
  def stop_after_task_1(count):
    return jnp.where(count < CONFIG.iterations_per_task, 0.05, 0.0)

  tx = optax.sgd(stop_after_task_1)
  plain = run_one(stream, tx)
  reset = run_one(stream, Optimizer(tx, reset_at_task_boundaries=True))
  frozen = np.asarray(plain["task1_loss"][6:])
  np.testing.assert_allclose(frozen, frozen[0])  # no learning after task 1
  assert np.ptp(np.asarray(reset["task1_loss"][6:])) > 1e-3
  np.testing.assert_allclose(plain["task1_loss"][:6], reset["task1_loss"][:6])

  ngm_reset = run_one(stream, Optimizer(ngm.ngm_sgd(0.01, eta=0.4),
                                        reset_at_task_boundaries=True))
  g, h = np.asarray(ngm_reset["gain"]), np.asarray(ngm_reset["entropy"])
  np.testing.assert_allclose(g[1:], 0.9 * g[:-1] + 0.1 + 0.4 * h[1:], rtol=1e-5)


@pytest.mark.slow  # the sweep's tests vmap hyperparameters by default
def test_hyperparameters_as_a_vmap_axis(stream):
  injected = optax.inject_hyperparams(ngm.ngm_sgd)(learning_rate=0.01, gamma=0.9, g0=1.0,
                                                   eta=0.4)
  train, data = make_train(stream, injected, CONFIG)
  etas = jnp.array([0.0, 0.7])
  swept = jax.jit(jax.vmap(lambda e: train(jax.random.key(0), data, {"eta": e})))(etas)
  for i, eta in enumerate([0.0, 0.7]):
    config = dataclasses.replace(CONFIG, eta=eta)
    single = run_one(stream, "ngm_sgd", config)
    np.testing.assert_allclose(swept["gain"][i], single["gain"], rtol=1e-5)
    np.testing.assert_allclose(swept["task1_acc"][i], single["task1_acc"], atol=1e-6)
  np.testing.assert_allclose(swept["gain"][0], 1.0, rtol=1e-6)  # eta = 0 holds g0


@pytest.mark.parametrize("loop, seed_axis", [  # chunked sequential by default, all with -m slow
    pytest.param(*p, marks=pytest.mark.slow) if p != ("chunked", "sequential") else p
    for p in [("scan", "map"), ("chunked", "vmap"), ("chunked", "map"), ("scan", "sequential"),
              ("chunked", "sequential")]])
def test_every_driver_gives_the_scanned_vmapped_curves(stream, ngm_curves, loop, seed_axis):
  _, reference = ngm_curves
  parts = make_train_parts(stream, "ngm_sgd", CONFIG, unroll=(loop == "chunked"))
  seen = []
  curves, timings = train_seeds(parts, seed_keys(2), loop=loop, seed_axis=seed_axis,
                                progress=lambda step: seen.append(int(np.max(step))))
  jax.effects_barrier()
  assert set(curves) == set(reference)
  for name, value in reference.items():
    np.testing.assert_allclose(curves[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
  # Sequential seeds count every seed's iterations, so the bar never jumps back.
  assert max(seen) == 30 * (2 if seed_axis == "sequential" else 1)
  if seed_axis != "map":  # lax.map's seeds report from inside one program, each from 3
    assert seen == sorted(seen)
  assert timings["run_s"] > 0 and timings["compile_s"] > 0


@pytest.mark.slow
def test_batched_evaluation_matches_whole_set(stream, ngm_curves):
  _, reference = ngm_curves
  config = dataclasses.replace(CONFIG, eval_batch_size=7)  # 12 and 60 images: padded
  curves = run_seeds(*make_train(stream, "ngm_sgd", config), seed_keys(2))
  for name in ("task1_acc", "task1_loss", "task_acc", "task_loss"):
    np.testing.assert_allclose(curves[name], reference[name], rtol=1e-5, atol=1e-6)


def test_train_seeds_rejects_unknown_modes(stream):
  parts = make_train_parts(stream, "sgd", CONFIG)
  with pytest.raises(ValueError, match="choose from scan, chunked"):
    train_seeds(parts, seed_keys(1), loop="python")
  with pytest.raises(ValueError, match="choose from vmap, map, sequential"):
    train_seeds(parts, seed_keys(1), seed_axis="pmap")


@pytest.mark.parametrize("eval_every", [1, 3])
def test_unrolled_interval_has_no_loop_over_steps(stream, eval_every):
  # XLA:CPU runs convolution gradients slowly inside loops, and even a
  # one-trip lax.scan compiles to one: the unrolled interval must hold none.
  config = dataclasses.replace(CONFIG, eval_every=eval_every)
  def top_level_primitives(unroll):
    parts = make_train_parts(stream, "ngm_sgd", config, unroll=unroll)
    state = parts.init(jax.random.key(0), parts.data)
    return [e.primitive.name
            for e in jax.make_jaxpr(parts.eval_interval)(state, parts.data).jaxpr.eqns]
  assert "scan" not in top_level_primitives(unroll=True)
  assert "scan" in top_level_primitives(unroll=False)


@pytest.mark.slow
@pytest.mark.parametrize("seed_axis", ["vmap", "sequential"])
def test_replaying_a_recorded_gain_reproduces_that_runs_step_sizes(stream, seed_axis):
  # entropy_lr_sgd steps by lr·g² with g from its own entropy; replaying the
  # gain it recorded, per seed, through replayed_lr_sgd must retrace the run.
  from ngm_jax.gain_analysis import gain_schedule
  config = dataclasses.replace(CONFIG, eta=0.6)
  keys = seed_keys(2)
  own, _ = train_seeds(make_train_parts(stream, "entropy_lr_sgd", config), keys)
  schedule = gain_schedule(own["gain"], config.g0)
  assert not np.allclose(schedule[0], schedule[1])  # each seed has its own schedule
  parts = make_train_parts(stream, "replayed_lr_sgd", config)
  replayed, _ = train_seeds(parts, keys, seed_axis=seed_axis,
                            hyperparams={"schedule": schedule})
  for name in ("train_loss", "entropy", "task1_acc", "task_acc"):
    np.testing.assert_allclose(replayed[name], own[name], rtol=1e-6, atol=1e-7, err_msg=name)
  # The gain after the last step was never used by a step, so no schedule holds it.
  np.testing.assert_allclose(replayed["gain"][:, :-1], own["gain"][:, :-1], rtol=1e-6)
  with pytest.raises(ValueError, match="leading axis must be the 2 seeds"):
    train_seeds(parts, keys, hyperparams={"schedule": schedule[:1]})


ITERS = CONFIG.iterations_per_task  # 6
STEPS = ITERS + 2  # Task 1, then Task 2's first two steps


@pytest.fixture(scope="module")
def trajectory(stream):
  """``(name, config=CONFIG, where=None) -> (records, params)``: the first
  STEPS optimizer steps of key 0's run, one compiled step called from Python
  (cheaper to compile than the whole run). ``records[name]`` ``[STEPS]``
  (gain, entropy, train_loss); ``params[t]``: the weights before step ``t``
  (``t <= STEPS``). ``where``: the gain placement (default every kernel).
  Cached."""
  cache = {}

  def get(name, config=CONFIG, where=None):
    if (name, config, where) not in cache:
      parts = make_train_parts(stream, name, config,
                               **({} if where is None else {"where": where}))
      state = jax.jit(parts.init)(jax.random.key(0), parts.data)
      step = jax.jit(parts.step)
      params, records = [jax.device_get(state.params)], []
      for _ in range(STEPS):
        state, record = step(state, parts.data)
        params.append(jax.device_get(state.params))
        records.append(jax.device_get(record))
      cache[name, config, where] = ({k: np.stack([r[k] for r in records]) for k in records[0]},
                             params)
    return cache[name, config, where]

  return get


def _step_sizes(params, t):
  """|Δw| / lr of step ``t`` over every weight it moved."""
  moved = np.concatenate([np.abs(a - b).ravel() for a, b in
                          zip(jax.tree.leaves(params[t + 1]), jax.tree.leaves(params[t]))])
  return moved[moved > 0] / CONFIG.learning_rate


def _assert_gain_recursion(records):
  """g_t = γ·g_{t-1} + (1 − γ)·g0 + η·H_t from g_{-1} = g0, with CONFIG's
  γ 0.9, g0 1, η 0.4 and the recorded entropy H."""
  g, h = records["gain"], records["entropy"]
  np.testing.assert_allclose(g, 0.9 * np.r_[1.0, g[:-1]] + 0.1 * 1.0 + 0.4 * h, rtol=1e-5)
  assert np.ptp(g) > 0.01


def _assert_parts_at(a, b, t):
  """Records ``a`` and ``b`` agree up to step ``t`` and differ from it on."""
  for key in ("train_loss", "entropy"):
    np.testing.assert_allclose(a[key][:t], b[key][:t], rtol=1e-6, err_msg=key)
  assert abs(float(a["train_loss"][t]) - float(b["train_loss"][t])) > 1e-6


def test_entropy_lr_sgd_is_sgd_at_the_gain_squared(trajectory):
  (records, params), (sgd, sgd_params) = trajectory("entropy_lr_sgd"), trajectory("sgd")
  _assert_gain_recursion(records)
  # Step 0 at g0 = 1 is SGD's step, and the raw weights are used as they are
  # (no W_eff = g·W): the losses before and after it are SGD's.
  _assert_parts_at(records, sgd, 2)
  # Step 1 from the same weights and minibatch is SGD's step x g1², g1 the
  # gain after step 0 (a norm ratio: each Δw alone is ~1e-6 against float32
  # weights of ~0.05).
  g1 = float(records["gain"][0])
  assert g1 > 1.1
  flat = lambda tree: np.concatenate([np.ravel(w) for w in jax.tree.leaves(tree)])
  np.testing.assert_array_equal(flat(params[1]), flat(sgd_params[1]))
  ratio = (np.linalg.norm(flat(params[2]) - flat(params[1]))
           / np.linalg.norm(flat(sgd_params[2]) - flat(params[1])))
  assert ratio == pytest.approx(g1 ** 2, rel=1e-3)


@pytest.mark.slow
def test_ngm_msgd_takes_sgds_first_step_then_momentum(trajectory):
  (records, _), (ngm, _) = trajectory("ngm_msgd"), trajectory("ngm_sgd")
  _assert_gain_recursion(records)
  # Momentum's first step is the gradient's (the trace starts at 0), so the
  # first two losses and gains are NGM-SGD's; the second adds 0.9 x the first.
  _assert_parts_at(records, ngm, 2)
  np.testing.assert_allclose(records["gain"][:2], ngm["gain"][:2], rtol=1e-6)


@pytest.mark.slow
def test_ngm_adam_steps_every_weight_by_lr_first(trajectory):
  (records, params), (_, sgd_params) = trajectory("ngm_adam"), trajectory("ngm_sgd")
  _assert_gain_recursion(records)
  # A fresh Adam state's first step is lr·m̂/(√v̂ + ε) = lr·g/(|g| + 1e-8): every
  # weight that moves moves by lr (less only where |g| is near ε).
  sizes = _step_sizes(params, 0)
  assert sizes.size > 1000 and sizes.max() <= 1 + 1e-6
  assert np.median(sizes) == pytest.approx(1, abs=1e-4)
  assert np.median(_step_sizes(sgd_params, 0)) < 0.5  # NGM-SGD's lr·|g|: nothing like it


@pytest.mark.slow
def test_ngm_sgd_plain_has_no_momentum_even_with_a_backbone_momentum(trajectory):
  # The gain on the output layer only, so the hidden layers are a backbone.
  output = layer_kernels("output")
  ngm, _ = trajectory("ngm_sgd", CONFIG, output)
  momentum = dataclasses.replace(CONFIG, backbone_momentum=0.9)
  for config in (CONFIG, momentum):  # NGM-SGD without backbone momentum, bit for bit
    records, _ = trajectory("ngm_sgd_plain", config, output)
    _assert_gain_recursion(records)
    for key, value in ngm.items():
      np.testing.assert_array_equal(records[key], value, err_msg=key)
  # What the backbone momentum changes in NGM-SGD: from the loss after step 1 on.
  _assert_parts_at(trajectory("ngm_sgd", momentum, output)[0], ngm, 2)


@pytest.mark.parametrize("name", ["msgd_reset", pytest.param("adam_reset", marks=pytest.mark.slow)])
def test_reset_optimizers_follow_their_base_through_task_1_then_part(trajectory, name):
  (records, params), (base, base_params) = trajectory(name), trajectory(name[:-len("_reset")])
  np.testing.assert_array_equal(records["gain"], 1.0)  # no gain: recorded as 1
  # Task 1 and the loss of Task 2's first minibatch (taken before the step
  # from the fresh state) are the base optimizer's; the next loss is not.
  _assert_parts_at(records, base, ITERS + 1)
  if name == "adam_reset":
    # The boundary step starts from a fresh Adam state: |Δw| = lr on every
    # weight that moved; Adam's carried moments give other sizes.
    reset = _step_sizes(params, ITERS)
    assert np.median(reset) == pytest.approx(1, abs=1e-4) and reset.max() <= 1 + 1e-6
    assert abs(np.median(_step_sizes(base_params, ITERS)) - 1) > 0.01
  else:
    # A fresh momentum trace: the boundary step is the gradient's, lr·∇; the
    # carried trace adds 0.9 x the last step (momentum SGD: Δ_t = 0.9·Δ_{t-1} - lr·∇).
    for w0, w1, b1, b_prev in zip(*map(jax.tree.leaves, (
        params[ITERS], params[ITERS + 1], base_params[ITERS + 1], base_params[ITERS - 1]))):
      np.testing.assert_allclose(b1 - w0, (w1 - w0) + 0.9 * (w0 - b_prev), rtol=1e-3,
                                 atol=1e-7)


@pytest.mark.slow  # by default, entropy_lr_sgd's test shows the raw weights in use
def test_without_reparameterisation_the_gain_does_not_scale_the_forward_pass(stream):
  config = dataclasses.replace(CONFIG, eta=2.0)
  reparam = run_one(stream, "ngm_sgd", config)
  raw = run_one(stream, Optimizer(ngm.ngm_sgd(0.01, eta=2.0), reparameterise=False), config)
  assert float(reparam["gain"][0]) > 1.5
  # Step 0 runs at gain g0 = 1 in both, so both take the same first step; at
  # step 1 only the reparameterised forward pass scales the logits (by g^3:
  # 3 layers, ReLU, no biases), so the minibatch entropies part.
  np.testing.assert_allclose(reparam["entropy"][0], raw["entropy"][0], rtol=1e-6)
  assert abs(float(reparam["entropy"][1]) - float(raw["entropy"][1])) > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("loop, seed_axis", [("scan", "vmap"), ("chunked", "sequential")])
def test_a_diverging_seed_is_recorded_and_the_others_run_on_unaffected(stream, loop, seed_axis):
  # Seed 1's learning rate (1e6) makes it diverge; seed 0's (0.01) does not.
  parts = make_train_parts(stream, optax.inject_hyperparams(optax.sgd)(learning_rate=0.01),
                           CONFIG, unroll=(loop == "chunked"))
  run = lambda num_seeds, lrs: train_seeds(parts, seed_keys(num_seeds), loop=loop,
                                           seed_axis=seed_axis,
                                           hyperparams={"learning_rate": jnp.array(lrs)})[0]
  curves = run(2, [0.01, 1e6])
  loss = curves["train_loss"][1]
  first_bad = int(np.flatnonzero(~np.isfinite(loss) | ~np.isfinite(curves["gain"][1]))[0])
  assert curves["diverged_at"].shape == (2,) and curves["diverged_at"].dtype == np.int32
  assert curves["diverged_at"][1] == first_bad + 1  # iterations count from 1
  assert np.isfinite(loss[:first_bad]).all() and first_bad < loss.size - 1
  assert curves["diverged_at"][0] == -1
  alone = run(1, [0.01])
  healthy_pair = run(2, [0.01, 0.01])
  for name, value in alone.items():
    np.testing.assert_allclose(curves[name][0], value[0], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(curves[name][0], healthy_pair[name][0], err_msg=name)
  assert np.isfinite(curves["task1_loss"][0]).all()
