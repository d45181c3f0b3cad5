"""Incremental joint training as one compiled, pure function of a PRNG key.

``make_train(stream, optimizer, config)`` returns ``train(key, data) ->
curves`` and the stream's arrays on the device: a ``jax.lax.scan`` over
iterations in which every minibatch is sampled on the device from the tasks
seen so far, one optimizer step is taken, and the network is evaluated, all
inside the compiled program. The data are an argument of the program, not
constants compiled into it. Seeds are a ``vmap`` axis::

    train, data = make_train(stream, "ngm_sgd", TrainConfig(eta=0.4))
    seeds = jax.vmap(train, in_axes=(0, None))        # keys batched, data shared
    curves = jax.jit(seeds)(seed_keys(5), data)       # five seeds, one program

Iterations are counted from 1: "iteration t" is the network after ``t``
optimizer steps, so task ``k`` (1-based) covers iterations
``((k−1)·I, k·I]`` with ``I`` iterations per task.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ngm_jax.config import TrainConfig, curve_iterations, seed_keys, task1_eval_size
from ngm_jax.evaluation import correct_and_loss, eval_interval, task_eval
from ngm_jax.gain import effective_params, entropy, gain_of, set_gain
from ngm_jax.model_fns import ModelFns, check_logits, model_fns
from ngm_jax.models import MLP, standardise_mnist
from ngm_jax.optimizers import Optimizer, as_optimizer
from ngm_jax.placement import Placement, gain_mask, kernels
from ngm_jax.precision import with_compute_dtype
from ngm_jax.sampling import Sampler, joint_sampler
from ngm_jax.streams import TaskStream

__all__ = [
    "TrainState",
    "TrainConfig",
    "TrainParts",
    "TrainData",
    "train_data",
    "make_train",
    "make_train_parts",
    "task_eval_block",
    "scan_blocks",
    "assemble_curves",
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
  hyperparams: Any = None  # {name: value} set in the optimizer state at init
  # int32: the first iteration (1-based) whose training loss or gain was
  # non-finite, -1 while none was (None is read as -1).
  diverged_at: Any = None


class TrainData(NamedTuple):
  """A stream's arrays on the device: arguments of the compiled program (never
  constants baked into it).

  Attributes:
    train_images: uint8 ``[N, H, W]`` or ``[N, H, W, C]``, ordered by task.
    train_labels: int32 ``[N]``.
    test_images, test_labels: every task's test set, ordered by task.
    test_task_ids: int32 ``[N_test]``, the task (0-based) of each test row.
  """

  train_images: jax.Array
  train_labels: jax.Array
  test_images: jax.Array
  test_labels: jax.Array
  test_task_ids: jax.Array


def train_data(stream: TaskStream, device: Any = None) -> TrainData:
  """``stream``'s arrays put on ``device`` (a device or a sharding; default the
  default device) once, for every program that trains on it."""
  arrays = TrainData(
      np.asarray(stream.train_images), np.asarray(stream.train_labels, np.int32),
      np.asarray(stream.test_images), np.asarray(stream.test_labels, np.int32),
      np.asarray(stream.test_task_ids, np.int32))
  return jax.device_put(arrays, device)


class TrainParts(NamedTuple):
  """The pieces of one run, for drivers other than the single scan.

  Every function takes the run's :class:`TrainData` as an argument.

  Attributes:
    init: ``(key, data, hyperparams=None) -> TrainState``.
    step: ``(state, data) -> (state, record)``: one optimizer step on a
      sampled minibatch; ``record`` holds its ``gain``, ``entropy`` and
      ``train_loss``.
    eval_interval: ``(state, data) -> (state, (step_records, task1_records))``:
      ``eval_every`` optimizer steps, then the Task-1 evaluation.
    task_eval: ``(state, data) -> per_task_records``: every task's test set.
    num_intervals: eval intervals in the whole run, ``T / eval_every``.
    intervals_per_task_eval: eval intervals between per-task evaluations.
    data: the stream's arrays on the device (:func:`train_data`).
    optimizer: the :class:`ngm_jax.optimizers.Optimizer` trained.
    model: the network's :class:`ngm_jax.model_fns.ModelFns`.
  """

  init: Callable[..., TrainState]
  step: Callable[[TrainState, TrainData], tuple[TrainState, dict[str, jax.Array]]]
  eval_interval: Callable[[TrainState, TrainData], tuple[TrainState, Any]]
  task_eval: Callable[[TrainState, TrainData], dict[str, jax.Array]]
  num_intervals: int
  intervals_per_task_eval: int
  data: TrainData
  optimizer: Optimizer
  model: ModelFns


def make_train_parts(
    stream: TaskStream,
    optimizer: str | optax.GradientTransformation | Optimizer,
    config: TrainConfig = TrainConfig(),
    *,
    model: Any = None,
    where: Placement = kernels,
    preprocess: Callable[[jax.Array], jax.Array] = standardise_mnist,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    sampler: Sampler | None = None,
    data: TrainData | None = None,
    unroll: bool = False,
) -> TrainParts:
  """The pure pieces of a run; see :func:`make_train` for the arguments.

  ``data``: the stream's arrays already on the device (default: put there
  now, :func:`train_data`).

  ``unroll=True`` writes the ``eval_every`` steps of an eval interval out as
  straight-line code instead of a ``lax.scan`` (XLA:CPU runs a convolution's
  weight gradient far slower inside a loop, and even a one-trip scan, or one
  with ``unroll=True`` of length 1, compiles to a loop: measured 9.3 s
  against 0.34 s for a slim ResNet-18 step at batch 64).
  """
  mask = lambda params: gain_mask(params, where)
  spec = as_optimizer(optimizer, config, mask)
  tx = spec.tx
  net = with_compute_dtype(  # bfloat16 inside the pass if config says so
      model_fns(model if model is not None else MLP(num_classes=stream.num_classes)),
      config.compute_dtype)
  data = train_data(stream) if data is None else data

  num_tasks = stream.num_tasks
  iters = config.iterations_per_task
  n_task1 = task1_eval_size(stream, config)
  test_counts = np.asarray(stream.task_sizes("test"), np.float32)
  sampler = sampler or joint_sampler(stream, config.batch_size, iters)
  _check_network(net, preprocess, data, stream.num_classes)

  def forward(params, model_state, gain, images, train, key=None):
    """Logits ``[B, C]`` with ``W_eff``, and the (updated) model state."""
    if spec.reparameterise:
      params = effective_params(params, gain, mask)
    return net.apply(params, model_state, preprocess(images), train=train, key=key)

  def loss_fn(params, model_state, gain, images, labels, key):
    logits, model_state = forward(params, model_state, gain, images, True, key)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, (logits, model_state)

  def train_step(state: TrainState, data: TrainData):
    key, batch_key, augment_key = jax.random.split(state.key, 3)
    rows, sampler_state = sampler.sample(batch_key, state.step, state.sampler_state)
    images, labels = data.train_images[rows], data.train_labels[rows]
    if augment is not None:
      images = augment(augment_key, images)
    opt_state = state.opt_state
    if spec.reset_at_task_boundaries:
      opt_state = _reset_at_boundary(tx, iters, state, opt_state)
    gain = _current_gain(opt_state)
    dropout_key = jax.random.fold_in(augment_key, 1)
    (loss, (logits, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.model_state, gain, images, labels, dropout_key)
    h = entropy(jax.lax.stop_gradient(logits))
    updates, opt_state = tx.update(grads, opt_state, state.params, entropy=h)
    params = optax.apply_updates(state.params, updates)
    new_gain = _current_gain(opt_state)
    record = {"gain": new_gain, "entropy": h, "train_loss": loss}
    return state._replace(params=params, model_state=model_state, opt_state=opt_state,
                          sampler_state=sampler_state, key=key, step=state.step + 1,
                          diverged_at=_first_divergence(state, loss, new_gain)), record

  def evaluate(state: TrainState, images, labels):
    """Per-example correctness and loss ``[N]`` of the network as it is now."""
    gain = _current_gain(state.opt_state)
    params = (state.params if spec.eval_params is None
              else spec.eval_params(state.params, state.opt_state))
    apply = lambda x: forward(params, state.model_state, gain, x, False)[0]
    return correct_and_loss(apply, images, labels, config.eval_batch_size)

  return TrainParts(
      init=functools.partial(_init_state, net, tx, preprocess, sampler),
      step=train_step,
      eval_interval=functools.partial(eval_interval, train_step, evaluate, config.eval_every,
                                      n_task1, unroll),
      task_eval=functools.partial(task_eval, evaluate, num_tasks, test_counts),
      num_intervals=num_tasks * iters // config.eval_every,
      intervals_per_task_eval=config.task_eval_every // config.eval_every,
      data=data,
      optimizer=spec,
      model=net,
  )


def _current_gain(opt_state: Any) -> jax.Array:
  """The gain in ``opt_state`` (float32 scalar), 1 for a transformation without one."""
  return jnp.asarray(gain_of(opt_state, default=1.0), jnp.float32)




def _reset_at_boundary(tx: optax.GradientTransformation, iterations_per_task: int,
                       state: TrainState, opt_state: Any) -> Any:
  """Fresh optimizer state on a task's first iteration, keeping the gain and
  the per-seed hyperparameters set at ``init``."""
  fresh = tx.init(state.params)
  if gain_of(fresh, default=None) is not None:
    fresh = set_gain(fresh, gain_of(opt_state))
  if state.hyperparams:
    fresh = optax.tree.set(fresh, **state.hyperparams)
  boundary = (state.step > 0) & (state.step % iterations_per_task == 0)
  return jax.tree.map(lambda f, o: jnp.where(boundary, f, o), fresh, opt_state)



def _init_state(net: ModelFns, tx: optax.GradientTransformation, preprocess: Callable,
                sampler: Sampler, key: jax.Array, data: TrainData,
                hyperparams: Mapping[str, Any] | None = None) -> TrainState:
  """A seed's initial :class:`TrainState` (``TrainParts.init``): the network's
  parameters, the optimizer state with the per-seed ``hyperparams`` set (and
  the gain started at an injected initial gain), the sampler's state."""
  init_key, sampler_key, loop_key = jax.random.split(key, 3)
  params, model_state = net.init(init_key, preprocess(data.train_images[:1]))
  opt_state = tx.init(params)
  hyperparams = dict(hyperparams or {})
  if hyperparams:
    opt_state = optax.tree.set(opt_state, **hyperparams)
    start = next((hyperparams[k] for k in _INITIAL_GAIN if k in hyperparams), None)
    if start is not None and gain_of(opt_state, default=None) is not None:
      opt_state = set_gain(opt_state, start)
  return TrainState(params, model_state, opt_state, sampler.init(sampler_key),
                    loop_key, jnp.zeros((), jnp.int32), hyperparams,
                    jnp.full((), -1, jnp.int32))


#: Injected hyperparameters that also set the initial gain: the gain starts
#: at the resting gain g0 (``ngm_sgd``), or at the constant gain (``g0_sgd``).
_INITIAL_GAIN = ("g0", "const_gain")


def _first_divergence(state: TrainState, loss: jax.Array, gain: jax.Array) -> jax.Array:
  """``state.diverged_at``, or this step's iteration (``state.step + 1``) if
  it is the first whose loss or gain is non-finite."""
  before = (jnp.full((), -1, jnp.int32) if state.diverged_at is None
            else jnp.asarray(state.diverged_at, jnp.int32))
  bad = ~(jnp.isfinite(loss) & jnp.isfinite(gain))
  return jnp.where((before < 0) & bad, (state.step + 1).astype(jnp.int32), before)


def _check_network(net: ModelFns, preprocess, data: TrainData, num_classes: int) -> None:
  """Traces the network on two training images (nothing is computed) and
  raises ValueError unless it gives logits ``[2, num_classes]``."""
  def logits(key, images):
    params, model_state = net.init(key, preprocess(images))
    return net.apply(params, model_state, preprocess(images), train=False, key=key)[0]

  out = jax.eval_shape(logits, jax.random.key(0), data.train_images[:2])
  check_logits(out, 2, num_classes, net.name)


def assemble_curves(steps, task1, per_task) -> dict[str, jax.Array]:
  """Records shaped ``[..., blocks, intervals, eval_every]`` (steps),
  ``[..., blocks, intervals]`` (Task 1) and ``[..., blocks, K]`` (per task),
  as :func:`scan_blocks` returns them, → the curves of :func:`make_train`."""
  curves = {k: v.reshape(v.shape[:-3] + (-1,)) for k, v in steps.items()}
  curves.update({k: v.reshape(v.shape[:-2] + (-1,)) for k, v in task1.items()})
  curves.update(per_task)
  return curves


_assemble = assemble_curves  # the earlier, private name


def task_eval_block(parts: TrainParts, state: TrainState, data: TrainData,
                    progress: Callable[[int], None] | None = None) -> tuple[TrainState, Any]:
  """One per-task-eval block of one run: ``intervals_per_task_eval`` eval
  intervals (``eval_every`` steps and the Task-1 evaluation, a ``lax.scan``),
  then every task's test set.

  Returns:
    ``(state, (steps, task1, per_task))``: ``steps`` ``{gain, entropy,
    train_loss}`` ``[intervals, eval_every]``, ``task1`` ``{task1_acc,
    task1_loss}`` ``[intervals]``, ``per_task`` ``{task_acc, task_loss}``
    ``[K]``.
  """
  state, (steps, task1) = jax.lax.scan(
      lambda s, _: parts.eval_interval(s, data), state, None,
      length=parts.intervals_per_task_eval)
  if progress is not None:
    jax.debug.callback(progress, state.step)
  return state, (steps, task1, parts.task_eval(state, data))


def scan_blocks(parts: TrainParts, state: TrainState, data: TrainData, blocks: int,
                progress: Callable[[int], None] | None = None) -> tuple[TrainState, Any]:
  """``blocks`` blocks of one run (:func:`task_eval_block`) as a ``lax.scan``;
  the whole run is ``scan_blocks(parts, init(key, data), data,
  num_intervals // intervals_per_task_eval)``.

  Returns:
    ``(state, records)``: the records of :func:`task_eval_block` with a
    leading ``[blocks]`` axis.
  """
  return jax.lax.scan(lambda s, _: task_eval_block(parts, s, data, progress), state, None,
                      length=blocks)


def make_train(
    stream: TaskStream,
    optimizer: str | optax.GradientTransformation | Optimizer,
    config: TrainConfig = TrainConfig(),
    *,
    model: Any = None,
    where: Placement = kernels,
    preprocess: Callable[[jax.Array], jax.Array] = standardise_mnist,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    sampler: Sampler | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Callable[..., dict[str, jax.Array]], TrainData]:
  """Builds ``train(key, data) -> curves`` for one optimizer on one task stream.

  Args:
    stream: the benchmark; its arrays go on the device once, as the returned
      :class:`TrainData`, the program's argument.
    optimizer: a built-in name (:data:`ngm_jax.optimizers.OPTIMIZER_NAMES`,
      built with ``config``'s hyperparameters and its training flags), any
      optax transformation, or an :class:`ngm_jax.optimizers.Optimizer`. Its
      ``update`` receives ``entropy=H``; a transformation without a gain
      trains the raw weights (gain 1 is recorded).
    config: iterations, batch size, evaluation schedule, hyperparameters.
    model: a ``flax.linen.Module`` or a callable ``rngs -> flax.nnx.Module``
      mapping preprocessed images ``[B, ...]`` to logits ``[B, C]``
      (:mod:`ngm_jax.model_fns`); default the paper's MLP with
      ``stream.num_classes`` outputs.
    where: the gain placement, a predicate on parameter paths
      (:mod:`ngm_jax.placement`); default every Dense/Conv kernel.
    preprocess: uint8 images ``[B, ...]`` → model inputs (float32).
    augment: optional ``(key, uint8 images [B, ...]) -> images``, applied to
      every training minibatch on the device (never at evaluation).
    sampler: which training rows each step draws (default
      :func:`ngm_jax.sampling.joint_sampler`, incremental joint training).
    progress: optional host callback, called with the iteration count after
      every ``task_eval_every`` iterations (from inside the compiled loop).

  Non-parameter variables (BatchNorm statistics, NNX RNG counters) are carried
  as model state, updated by training steps and used frozen at evaluation.

  Returns:
    ``(train, data)``. ``train(key, data, hyperparams=None)`` is pure and
    jittable; ``jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, data)``
    trains many seeds in one program. ``hyperparams`` optionally overrides
    values in the initial optimizer state by name (with
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
    - ``diverged_at``: ``[]`` int32, the first iteration (1-based) whose
      training loss or gain was non-finite, or -1 if none was (the run goes
      on; :func:`ngm_jax.failures.failed_seeds` reads it);

    with ``T = K · iterations_per_task``. :func:`curve_iterations` gives the
    iteration of each point.
  """
  parts = make_train_parts(
      stream, optimizer, config, model=model, where=where, preprocess=preprocess,
      augment=augment, sampler=sampler)
  return _scanned(parts, progress), parts.data


def _scanned(parts: TrainParts, progress: Callable[[int], None] | None):
  """``train(key, data, hyperparams=None)``: the whole run as one ``lax.scan``."""
  blocks = parts.num_intervals // parts.intervals_per_task_eval

  def train(key: jax.Array, data: TrainData,
            hyperparams: Mapping[str, Any] | None = None) -> dict[str, jax.Array]:
    state, records = scan_blocks(parts, parts.init(key, data, hyperparams), data, blocks,
                                 progress)
    return {**assemble_curves(*records), "diverged_at": state.diverged_at}

  return train
