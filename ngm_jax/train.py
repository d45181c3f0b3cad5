"""Incremental joint training as one compiled, pure function of a PRNG key.

``make_train(stream, optimizer, config)`` returns ``train(key) -> curves``: a
``jax.lax.scan`` over iterations in which every minibatch is sampled on the
device from the tasks seen so far, one optimizer step is taken, and the
network is evaluated, all inside the compiled program. Seeds are a ``vmap``
axis::

    train = make_train(stream, "ngm_sgd", TrainConfig(eta=0.4))
    curves = jax.jit(jax.vmap(train))(seed_keys(5))   # five seeds, one program

Iterations are counted from 1: "iteration t" is the network after ``t``
optimizer steps, so task ``k`` (1-based) covers iterations
``((k−1)·I, k·I]`` with ``I`` iterations per task.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ngm_jax.gain import effective_params, entropy, gain_of, set_gain
from ngm_jax.models import MLP, mlp_gain_mask, standardise_mnist
from ngm_jax.optimizers import make_optimizer
from ngm_jax.streams import Sampler, TaskStream, joint_sampler

__all__ = [
    "TrainState",
    "TrainConfig",
    "TrainParts",
    "make_train",
    "make_train_parts",
    "seed_keys",
    "curve_iterations",
    "task1_eval_size",
]


class TrainState(NamedTuple):
  """The loop's carry: everything one seed's run has at iteration ``step``."""

  params: Any
  model_state: Any  # variables other than params, e.g. {"batch_stats": ...}
  opt_state: optax.OptState
  sampler_state: Any
  key: jax.Array
  step: jax.Array  # int32, optimizer steps taken


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Hyperparameters of one incremental-joint-training run.

  Attributes:
    iterations_per_task: I, optimizer steps per task.
    batch_size: minibatch size.
    learning_rate: step size on the raw weights.
    gamma, g0, eta: the NGM gain dynamics (γ, g0, η).
    const_gain: the constant gain of the ``g0_sgd`` ablation.
    eval_every: evaluate Task-1 test accuracy and loss every this many
      iterations (1 = every iteration). Must divide ``task_eval_every``.
    task_eval_every: evaluate every task's test set every this many
      iterations. Must divide ``iterations_per_task``.
    eval_task1_limit: evaluate Task 1 on only its first N test images (None:
      all of them). Recorded in the output.
    eval_batch_size: evaluate test sets in chunks of this many images (None:
      all at once), to bound activation memory for convolutional models.
    backbone_momentum: None: one optimizer for every parameter. A number: the
      gain-modulated parameters (the ``gain_mask``) get the named optimizer
      and every other parameter SGD with this momentum, through
      ``optax.partition`` (the image benchmarks' NGM-SGD: gain-modulated
      classifier by plain SGD, backbone by momentum SGD 0.9).
  """

  iterations_per_task: int = 200
  batch_size: int = 128
  learning_rate: float = 0.01
  gamma: float = 0.9
  g0: float = 1.0
  eta: float = 0.4
  const_gain: float = 1.0
  eval_every: int = 1
  task_eval_every: int = 10
  eval_task1_limit: int | None = None
  eval_batch_size: int | None = None
  backbone_momentum: float | None = None

  def __post_init__(self):
    for name in ("iterations_per_task", "batch_size", "eval_every",
                 "task_eval_every"):
      value = getattr(self, name)
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"TrainConfig.{name}={value!r}: must be an integer >= 1.")
    if self.task_eval_every % self.eval_every:
      raise ValueError(
          f"TrainConfig: eval_every={self.eval_every} must divide"
          f" task_eval_every={self.task_eval_every}."
      )
    if self.iterations_per_task % self.task_eval_every:
      raise ValueError(
          f"TrainConfig: task_eval_every={self.task_eval_every} must divide"
          f" iterations_per_task={self.iterations_per_task}."
      )
    if self.eval_task1_limit is not None and self.eval_task1_limit < 1:
      raise ValueError(
          f"TrainConfig.eval_task1_limit={self.eval_task1_limit!r}: must be"
          " None (all Task-1 test images) or an integer >= 1."
      )
    if self.eval_batch_size is not None and self.eval_batch_size < 1:
      raise ValueError(
          f"TrainConfig.eval_batch_size={self.eval_batch_size!r}: must be None"
          " or an integer >= 1."
      )
    if not self.learning_rate > 0:
      raise ValueError(
          f"TrainConfig.learning_rate={self.learning_rate!r}: must be > 0."
      )

  def optimizer(self, name: str, gain_mask: Any = None
                ) -> optax.GradientTransformationExtraArgs:
    """The named optimizer (see :func:`ngm_jax.optimizers.make_optimizer`)
    with this config's hyperparameters; with ``backbone_momentum`` set, only
    the ``gain_mask`` parameters get it (the rest: momentum SGD)."""
    return make_optimizer(
        name,
        learning_rate=self.learning_rate,
        gamma=self.gamma,
        g0=self.g0,
        eta=self.eta,
        const_gain=self.const_gain,
        backbone_momentum=self.backbone_momentum,
        gain_mask=gain_mask,
    )


def seed_keys(seeds: int | list[int]) -> jax.Array:
  """PRNG keys ``[S]`` for seeds ``0..S-1`` (or the listed seeds).

  Seed ``s`` always gets ``jax.random.key(s)``, so a seed's run is the same
  whether it is trained alone or among others.
  """
  seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
  return jnp.stack([jax.random.key(s) for s in seeds])


def curve_iterations(config: TrainConfig, num_tasks: int) -> dict[str, np.ndarray]:
  """The iteration (1-based step count) of each recorded point, per curve kind."""
  total = config.iterations_per_task * num_tasks
  return {
      "step": np.arange(1, total + 1),
      "task1": np.arange(config.eval_every, total + 1, config.eval_every),
      "tasks": np.arange(config.task_eval_every, total + 1, config.task_eval_every),
  }


def task1_eval_size(stream: TaskStream, config: TrainConfig) -> int:
  """How many Task-1 test images the per-iteration evaluation uses."""
  n = int(stream.test_task_ends[0])
  return n if config.eval_task1_limit is None else min(n, config.eval_task1_limit)


class TrainParts(NamedTuple):
  """The pieces of one run, for drivers other than the single scan.

  Attributes:
    init: ``(key, hyperparams=None) -> TrainState``.
    eval_interval: ``state -> (state, (step_records, task1_records))``:
      ``eval_every`` optimizer steps, then the Task-1 evaluation.
    task_eval: ``state -> per_task_records``: every task's test set.
    num_intervals: eval intervals in the whole run, ``T / eval_every``.
    intervals_per_task_eval: eval intervals between per-task evaluations.
  """

  init: Callable[..., TrainState]
  eval_interval: Callable[[TrainState], tuple[TrainState, Any]]
  task_eval: Callable[[TrainState], dict[str, jax.Array]]
  num_intervals: int
  intervals_per_task_eval: int


def make_train_parts(
    stream: TaskStream,
    optimizer: str | optax.GradientTransformationExtraArgs,
    config: TrainConfig = TrainConfig(),
    *,
    model: nn.Module | None = None,
    gain_mask: Any = mlp_gain_mask,
    preprocess: Callable[[jax.Array], jax.Array] = standardise_mnist,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    sampler: Sampler | None = None,
    reset_opt_state_at_task_boundaries: bool = False,
    reparameterise: bool = True,
    unroll: bool = False,
) -> TrainParts:
  """The pure pieces of a run; see :func:`make_train` for the arguments.

  ``unroll=True`` writes the ``eval_every`` steps of an eval interval out as
  straight-line code instead of a ``lax.scan`` (XLA:CPU runs a convolution's
  weight gradient far slower inside a loop, and even a one-trip scan, or one
  with ``unroll=True`` of length 1, compiles to a loop: measured 9.3 s
  against 0.34 s for a slim ResNet-18 step at batch 64).
  """
  if isinstance(optimizer, str):
    tx = config.optimizer(optimizer, gain_mask)
  else:
    tx = optimizer
  if not hasattr(tx, "update"):
    raise TypeError(f"optimizer must be a name or an optax transformation, got {tx!r}.")
  tx = optax.with_extra_args_support(tx)
  model = model or MLP(num_classes=stream.num_classes)

  num_tasks = stream.num_tasks
  iters = config.iterations_per_task
  train_x = jnp.asarray(stream.train_images)
  train_y = jnp.asarray(stream.train_labels)
  test_x = jnp.asarray(stream.test_images)
  test_y = jnp.asarray(stream.test_labels)
  test_ids = jnp.asarray(stream.test_task_ids)
  n_task1 = task1_eval_size(stream, config)
  task1_x, task1_y = test_x[:n_task1], test_y[:n_task1]
  test_counts = jnp.asarray(stream.task_sizes("test"), jnp.float32)
  sampler = sampler or joint_sampler(stream, config.batch_size, iters)

  def forward(params, model_state, gain, images, train):
    """Logits ``[B, C]`` with ``W_eff``, and the (updated) model state."""
    if reparameterise:
      params = effective_params(params, gain, gain_mask)
    variables = {"params": params, **model_state}
    x = preprocess(images)
    if train and model_state:
      logits, updates = model.apply(variables, x, train=True, mutable=list(model_state))
      return logits, {**model_state, **updates}
    return model.apply(variables, x, train=train), model_state

  def current_gain(opt_state):
    return jnp.asarray(gain_of(opt_state, default=1.0), jnp.float32)

  def loss_fn(params, model_state, gain, images, labels):
    logits, model_state = forward(params, model_state, gain, images, train=True)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, (logits, model_state)

  def reset_at_boundary(state: TrainState, opt_state):
    """Fresh optimizer state (the gain kept) on a task's first iteration."""
    fresh = tx.init(state.params)
    if gain_of(fresh, default=None) is not None:
      fresh = set_gain(fresh, gain_of(opt_state))
    boundary = (state.step > 0) & (state.step % iters == 0)
    return jax.tree.map(lambda f, o: jnp.where(boundary, f, o), fresh, opt_state)

  def train_step(state: TrainState, _):
    key, batch_key, augment_key = jax.random.split(state.key, 3)
    rows, sampler_state = sampler.sample(batch_key, state.step, state.sampler_state)
    images, labels = train_x[rows], train_y[rows]
    if augment is not None:
      images = augment(augment_key, images)
    opt_state = state.opt_state
    if reset_opt_state_at_task_boundaries:
      opt_state = reset_at_boundary(state, opt_state)
    gain = current_gain(opt_state)
    (loss, (logits, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.model_state, gain, images, labels)
    h = entropy(jax.lax.stop_gradient(logits))
    updates, opt_state = tx.update(grads, opt_state, state.params, entropy=h)
    params = optax.apply_updates(state.params, updates)
    record = {"gain": current_gain(opt_state), "entropy": h, "train_loss": loss}
    return TrainState(params, model_state, opt_state, sampler_state, key,
                      state.step + 1), record

  def evaluate(state: TrainState, images, labels):
    """Per-example correctness and loss ``[N]`` of the network as it is now."""
    gain = current_gain(state.opt_state)

    def chunk(xy):
      logits, _ = forward(state.params, state.model_state, gain, xy[0], train=False)
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, xy[1])
      return (jnp.argmax(logits, -1) == xy[1]).astype(jnp.float32), losses

    n, size = len(labels), config.eval_batch_size
    if size is None or n <= size:
      return chunk((images, labels))
    pad = -n % size
    padded = (jnp.pad(images, [(0, pad)] + [(0, 0)] * (images.ndim - 1)),
              jnp.pad(labels, (0, pad)))
    batched = jax.tree.map(lambda a: a.reshape((-1, size) + a.shape[1:]), padded)
    correct, losses = jax.lax.map(chunk, batched)
    return correct.reshape(-1)[:n], losses.reshape(-1)[:n]

  def eval_interval(state):
    if unroll:  # straight-line code: even a one-trip lax.scan compiles to a loop
      records = []
      for _ in range(config.eval_every):
        state, record = train_step(state, None)
        records.append(record)
      steps = jax.tree.map(lambda *r: jnp.stack(r), *records)
    else:
      state, steps = jax.lax.scan(train_step, state, None, length=config.eval_every)
    correct, losses = evaluate(state, task1_x, task1_y)
    return state, (steps, {"task1_acc": correct.mean(), "task1_loss": losses.mean()})

  def task_eval(state):
    correct, losses = evaluate(state, test_x, test_y)
    return {
        "task_acc": jax.ops.segment_sum(correct, test_ids, num_tasks) / test_counts,
        "task_loss": jax.ops.segment_sum(losses, test_ids, num_tasks) / test_counts,
    }

  def init(key: jax.Array, hyperparams: Mapping[str, Any] | None = None) -> TrainState:
    init_key, sampler_key, loop_key = jax.random.split(key, 3)
    variables = dict(model.init(init_key, preprocess(train_x[:1]), train=False))
    params = variables.pop("params")
    opt_state = tx.init(params)
    if hyperparams:
      opt_state = optax.tree.set(opt_state, **hyperparams)
    return TrainState(params, variables, opt_state, sampler.init(sampler_key),
                      loop_key, jnp.zeros((), jnp.int32))

  return TrainParts(
      init=init,
      eval_interval=eval_interval,
      task_eval=task_eval,
      num_intervals=num_tasks * iters // config.eval_every,
      intervals_per_task_eval=config.task_eval_every // config.eval_every,
  )


def _assemble(steps, task1, per_task) -> dict[str, jax.Array]:
  """Records shaped ``[..., blocks, intervals, eval_every]`` (steps),
  ``[..., blocks, intervals]`` (Task 1) and ``[..., blocks, K]`` (per task)
  → the curves of :func:`make_train`."""
  curves = {k: v.reshape(v.shape[:-3] + (-1,)) for k, v in steps.items()}
  curves.update({k: v.reshape(v.shape[:-2] + (-1,)) for k, v in task1.items()})
  curves.update(per_task)
  return curves


def make_train(
    stream: TaskStream,
    optimizer: str | optax.GradientTransformationExtraArgs,
    config: TrainConfig = TrainConfig(),
    *,
    model: nn.Module | None = None,
    gain_mask: Any = mlp_gain_mask,
    preprocess: Callable[[jax.Array], jax.Array] = standardise_mnist,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    sampler: Sampler | None = None,
    reset_opt_state_at_task_boundaries: bool = False,
    reparameterise: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Callable[..., dict[str, jax.Array]]:
  """Builds ``train(key) -> curves`` for one optimizer on one task stream.

  Args:
    stream: the benchmark; its arrays are put on the device once, here.
    optimizer: a name from :data:`ngm_jax.optimizers.OPTIMIZERS` (built with
      ``config``'s hyperparameters), or any optax transformation. Its
      ``update`` receives ``entropy=H``; a transformation without a gain
      trains the raw weights (gain 1 is recorded).
    config: iterations, batch size, evaluation schedule, hyperparameters.
    model: a Flax module mapping preprocessed inputs to logits; default the
      paper's MLP with ``stream.num_classes`` outputs.
    gain_mask: pytree of bools (or ``params -> mask``) selecting the
      gain-modulated kernels.
    preprocess: uint8 images ``[B, ...]`` → model inputs (float32).
    augment: optional ``(key, uint8 images [B, ...]) -> images``, applied to
      every training minibatch on the device (never at evaluation).
    sampler: which training rows each step draws (default
      :func:`ngm_jax.streams.joint_sampler`, incremental joint training).
    reset_opt_state_at_task_boundaries: re-initialise the optimizer state
      (keeping any gain) at the first iteration of every task after the
      first. This uses task identity, so it is an *oracle* ablation.
    reparameterise: compute with ``W_eff = g·W`` on the gain mask (NGM).
      False: use the raw weights whatever the gain (the step-size-only
      ablation, :func:`ngm_jax.gain.gain_scaled_sgd`).
    progress: optional host callback, called with the iteration count after
      every ``task_eval_every`` iterations (from inside the compiled loop).

  The model is called as ``model.apply(variables, x, train=...)``; variables
  other than ``params`` (e.g. BatchNorm's ``batch_stats``) are carried as
  model state, updated by training steps and used frozen at evaluation.

  Returns:
    ``train(key, hyperparams=None)``, pure and jittable. ``hyperparams``
    optionally overrides values in the initial optimizer state by name (with
    ``optax.inject_hyperparams``, e.g. ``{"eta": 0.3}``), so that
    hyperparameters can be a ``vmap`` axis too. It returns a dict of curves:

    - ``task1_acc``, ``task1_loss``: ``[T / eval_every]`` Task-1 test accuracy
      (fraction) and mean cross-entropy (nats);
    - ``gain``: ``[T]`` the gain after each iteration's update (the gain the
      network is evaluated with, and the next step trains with);
    - ``entropy``, ``train_loss``: ``[T]`` H and the loss of each training
      minibatch (nats);
    - ``task_acc``, ``task_loss``: ``[T / task_eval_every, K]`` accuracy and
      loss on every task's test set;

    with ``T = K · iterations_per_task``. :func:`curve_iterations` gives the
    iteration of each point.
  """
  parts = make_train_parts(
      stream, optimizer, config, model=model, gain_mask=gain_mask,
      preprocess=preprocess, augment=augment, sampler=sampler,
      reset_opt_state_at_task_boundaries=reset_opt_state_at_task_boundaries,
      reparameterise=reparameterise)
  return _scanned(parts, progress)


def _scanned(parts: TrainParts, progress: Callable[[int], None] | None):
  """``train(key, hyperparams=None)``: the whole run as one ``lax.scan``."""
  blocks = parts.num_intervals // parts.intervals_per_task_eval

  def task_eval_block(state, _):
    state, (steps, task1) = jax.lax.scan(
        lambda s, _: parts.eval_interval(s), state, None,
        length=parts.intervals_per_task_eval)
    if progress is not None:
      jax.debug.callback(progress, state.step)
    return state, (steps, task1, parts.task_eval(state))

  def train(key: jax.Array, hyperparams: Mapping[str, Any] | None = None
            ) -> dict[str, jax.Array]:
    _, records = jax.lax.scan(task_eval_block, parts.init(key, hyperparams), None,
                              length=blocks)
    return _assemble(*records)

  return train


#: How :func:`train_seeds` runs the loop and the seeds.
LOOPS = ("scan", "chunked")
SEED_AXES = ("vmap", "map", "sequential")


def train_seeds(
    parts: TrainParts,
    keys: jax.Array,
    *,
    loop: str = "scan",
    seed_axis: str = "vmap",
    progress: Callable[[int], None] | None = None,
    hyperparams: Mapping[str, Any] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """Runs every seed of ``keys`` ``[S]``; returns curves ``[S, ...]`` and timings.

  Args:
    parts: from :func:`make_train_parts` (with ``unroll=True`` for
      ``loop="chunked"`` on CPU convolutions).
    keys: one PRNG key per seed.
    loop: ``"scan"``: the whole run is one compiled program (``lax.scan``
      over iterations). ``"chunked"``: one compiled eval interval
      (``eval_every`` steps and the Task-1 evaluation), called from Python;
      evaluation stays compiled and data stay on the device.
    seed_axis: ``"vmap"``: seeds batched into every operation; ``"map"``:
      seeds one after another inside the compiled program (``lax.map``);
      ``"sequential"``: one seed's program, compiled once and called for each
      seed in turn from Python (no seed axis in the compiled code at all).
    progress: host callback with the iteration count, after every per-task
      evaluation.
    hyperparams: ``{name: [S, ...]}``, per-seed values set by name in each
      seed's initial optimizer state (``init``'s ``hyperparams``), e.g. the
      gain schedule each seed of :func:`ngm_jax.gain.replayed_gain_sgd`
      replays.

  Returns:
    ``(curves, timings)``: the curves of :func:`make_train` with a leading
    seed axis, as NumPy arrays; ``{"compile_s", "run_s"}`` in seconds
    (compilation ahead of time, then the run).
  """
  if loop not in LOOPS:
    raise ValueError(f"loop={loop!r}; choose from {', '.join(LOOPS)}.")
  if seed_axis not in SEED_AXES:
    raise ValueError(f"seed_axis={seed_axis!r}; choose from {', '.join(SEED_AXES)}.")
  # "sequential" compiles one seed's program once and calls it per seed; its
  # progress restarts at each seed.
  num_seeds = len(keys)
  for name, value in (hyperparams or {}).items():
    if np.shape(value)[:1] != (num_seeds,):
      raise ValueError(f"hyperparams[{name!r}] has shape {np.shape(value)}; its leading"
                       f" axis must be the {num_seeds} seeds.")
  over_seeds = {"vmap": jax.vmap,
                "map": lambda f: lambda *args: jax.lax.map(lambda a: f(*a), args),
                "sequential": lambda f: f}[seed_axis]
  if seed_axis == "sequential":
    batches = [(keys[i], jax.tree.map(lambda v, i=i: v[i], hyperparams))
               for i in range(num_seeds)]
  else:
    batches = [(keys, hyperparams)]
  t0 = time.perf_counter()
  if loop == "scan":
    train = _scanned(parts, progress)
    compiled = jax.jit(over_seeds(train)).lower(*batches[0]).compile()
    t1 = time.perf_counter()
    outputs = [jax.device_get(jax.block_until_ready(compiled(*b))) for b in batches]
  else:
    init = jax.jit(over_seeds(parts.init)).lower(*batches[0]).compile()
    states = [init(*b) for b in batches]
    interval = jax.jit(over_seeds(parts.eval_interval), donate_argnums=0
                       ).lower(states[0]).compile()
    task_eval = jax.jit(over_seeds(parts.task_eval)).lower(states[0]).compile()
    t1 = time.perf_counter()
    outputs = []
    for state in states:
      steps, task1, per_task = [], [], []
      for i in range(1, parts.num_intervals + 1):
        state, (s, t) = interval(state)
        steps.append(s)
        task1.append(t)
        if i % parts.intervals_per_task_eval == 0:
          per_task.append(task_eval(state))
          if progress is not None:
            progress(int(np.max(jax.device_get(state.step))))
      axis = 0 if seed_axis == "sequential" else 1  # the interval axis
      stack = lambda records: jax.tree.map(lambda *a: np.stack(a, axis=axis),
                                           *jax.device_get(records))
      steps, task1, per_task = stack(steps), stack(task1), stack(per_task)
      lead = steps["gain"].shape[:axis]
      curves = {k: v.reshape(lead + (-1,)) for k, v in {**steps, **task1}.items()}
      curves.update(per_task)
      outputs.append(curves)
  if seed_axis == "sequential":
    curves = jax.tree.map(lambda *a: np.stack(a), *outputs)
  else:
    curves = outputs[0]
  t2 = time.perf_counter()
  return curves, {"compile_s": t1 - t0, "run_s": t2 - t1}
