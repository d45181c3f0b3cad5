"""A user's network, Linen or NNX, as two pure functions the trainer compiles.

The training loop needs a params pytree, a pure forward pass and the
non-parameter state (BatchNorm statistics, NNX dropout RNG counters) as a
pytree it can carry through ``lax.scan`` and ``vmap``. :func:`model_fns`
gives that for

* a ``flax.linen.Module``: ``model.init``/``model.apply``; variables other
  than ``params`` are the model state, mutable while training;
* a callable ``rngs -> flax.nnx.Module`` (e.g. an NNX class whose only
  required argument is ``rngs``): built once per seed inside ``init``, then
  ``nnx.split`` into (graph, ``nnx.Param`` state, the rest); ``apply`` does
  ``nnx.merge`` inside the compiled step, and ``module.train()`` /
  ``module.eval()`` give the training and evaluation graphs (Dropout,
  BatchNorm).

Either way the network maps a batch of preprocessed images ``[B, ...]`` to
logits ``[B, C]``. A ``train`` keyword (or Linen's ``deterministic``) is
passed only to a ``__call__`` that declares one, and dropout RNGs only reach
models that use them (Linen: the ``"dropout"`` stream; NNX: ``Rngs`` streams
``params``, ``dropout`` and the default one, made from the seed's key).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
from flax import nnx

__all__ = ["ModelFns", "model_fns", "check_logits"]


class ModelFns(NamedTuple):
  """Pure functions of a network.

  Attributes:
    init: ``(key, x [B, ...]) -> (params, model_state)``.
    apply: ``(params, model_state, x [B, ...], *, train: bool, key) ->
      (logits [B, C], model_state)``; ``key`` feeds dropout (Linen), and the
      returned state is the input state unless ``train`` changed it.
    kind: ``"linen"`` or ``"nnx"``.
    name: the network's class name, for the records.
  """

  init: Callable[..., tuple[Any, Any]]
  apply: Callable[..., tuple[jax.Array, Any]]
  kind: str
  name: str


def _mode_kwargs(call: Callable[..., Any], train: bool) -> dict[str, bool]:
  """``{"train": train}`` or ``{"deterministic": not train}`` if ``call``
  declares that parameter, else nothing."""
  try:
    params = inspect.signature(call).parameters
  except (TypeError, ValueError):
    return {}
  if "train" in params:
    return {"train": train}
  if "deterministic" in params:
    return {"deterministic": not train}
  return {}


def _linen(model: nn.Module) -> ModelFns:

  def init(key, x):
    dropout_key = jax.random.fold_in(key, 1)
    variables = dict(model.init({"params": key, "dropout": dropout_key}, x,
                                **_mode_kwargs(model.__call__, False)))
    if "params" not in variables:
      raise ValueError(f"{type(model).__name__}.init returned no 'params' collection;"
                       " a model for the stability-gap protocol needs parameters.")
    params = variables.pop("params")
    return params, variables

  def apply(params, model_state, x, *, train, key):
    variables = {"params": params, **model_state}
    kwargs = _mode_kwargs(model.__call__, train)
    rngs = {"dropout": key} if train else None
    if train and model_state:
      logits, updates = model.apply(variables, x, rngs=rngs, mutable=list(model_state),
                                    **kwargs)
      return logits, {**model_state, **updates}
    return model.apply(variables, x, rngs=rngs, **kwargs), model_state

  return ModelFns(init, apply, "linen", type(model).__name__)


def _nnx(make: Callable[[nnx.Rngs], nnx.Module]) -> ModelFns:

  def build(key):
    k_default, k_params, k_dropout = jax.random.split(key, 3)
    module = make(nnx.Rngs(k_default, params=k_params, dropout=k_dropout))
    if not isinstance(module, nnx.Module):
      raise TypeError(f"model: calling {make!r} with an nnx.Rngs gave {type(module).__name__},"
                      " not a flax.nnx.Module.")
    return module

  abstract = nnx.eval_shape(lambda: build(jax.random.key(0)))
  abstract.train()
  train_graph = nnx.split(abstract, nnx.Param, ...)[0]
  abstract.eval()
  eval_graph = nnx.split(abstract, nnx.Param, ...)[0]
  call = type(abstract).__call__

  def init(key, x):
    del x  # NNX modules are built with their shapes
    _, params, rest = nnx.split(build(key), nnx.Param, ...)
    return params, rest

  def apply(params, model_state, x, *, train, key):
    del key  # NNX dropout draws from the module's own Rngs, carried in model_state
    module = nnx.merge(train_graph if train else eval_graph, params, model_state, copy=True)
    logits = module(x, **_mode_kwargs(call, train))
    if not train:
      return logits, model_state
    _, _, rest = nnx.split(module, nnx.Param, ...)
    return logits, rest

  return ModelFns(init, apply, "nnx", type(abstract).__name__)


def model_fns(model: Any) -> ModelFns:
  """:class:`ModelFns` of a Linen module or an NNX constructor (see the module
  docstring); a :class:`ModelFns` is returned as it is.

  Raises:
    TypeError: for anything else (an NNX *instance* included: pass its class
      or a ``lambda rngs: MyNet(..., rngs=rngs)`` so that every seed builds
      its own initial parameters).
  """
  if isinstance(model, ModelFns):
    return model
  if isinstance(model, nn.Module):
    return _linen(model)
  if isinstance(model, nnx.Module):
    raise TypeError(
        f"model={type(model).__name__}(...) is an NNX module instance; pass a constructor"
        f" instead, e.g. model={type(model).__name__} (if its only required argument is"
        " rngs) or model=lambda rngs: MyNet(..., rngs=rngs), so that each seed"
        " initialises its own parameters.")
  if callable(model):
    return _nnx(model)
  raise TypeError(
      f"model={model!r}: expected a flax.linen.Module, or a callable rngs ->"
      " flax.nnx.Module (e.g. an NNX class whose only required argument is rngs).")


def check_logits(logits: Any, batch: int, num_classes: int, name: str) -> None:
  """Raises ValueError unless ``logits`` has shape ``[batch, num_classes]``."""
  shape = tuple(getattr(logits, "shape", ()))
  if shape != (batch, num_classes):
    raise ValueError(
        f"model {name} maps a batch of {batch} images to an output of shape {shape};"
        f" the stability-gap protocol needs logits of shape [batch, classes] ="
        f" {[batch, num_classes]} (classes: the benchmark's {num_classes}).")
