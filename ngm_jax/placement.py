"""Where the gain acts: a predicate on parameter paths, for Linen and NNX alike.

A *placement* is a function ``where(path) -> bool`` of a parameter's path,
given as a tuple of names from the root of the parameter tree, e.g.
``("hidden_0", "kernel")`` for a Linen ``Dense`` named ``hidden_0`` or
``("blocks", "0", "conv", "kernel")`` for an NNX module's list of blocks.
NNX states end every path in the ``value`` of a ``Variable``; that name is
dropped, so one predicate serves both libraries.

:func:`gain_mask` turns a placement into the pytree of bools that
:func:`ngm_jax.gain.effective_params` takes (``W_eff = g·W`` on the selected
leaves).
"""

from __future__ import annotations

from typing import Any, Callable

import jax

__all__ = ["Placement", "param_path", "kernels", "layer_kernels", "gain_mask"]

#: ``where(path: tuple[str, ...]) -> bool``: True for a gain-modulated leaf.
Placement = Callable[[tuple[str, ...]], bool]


def _name(key: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def param_path(keypath: tuple[Any, ...]) -> tuple[str, ...]:
  """A JAX key path → the tuple of names of :data:`Placement` (an NNX
  ``Variable``'s trailing ``value`` dropped)."""
  names = tuple(_name(k) for k in keypath)
  if names and names[-1] == "value" and type(keypath[-1]).__name__ == "GetAttrKey":
    names = names[:-1]
  return names


def kernels(path: tuple[str, ...]) -> bool:
  """The default placement: every ``kernel``, i.e. the weight matrix of every
  Dense/Linear layer and the filters of every convolution (Linen and NNX name
  both ``kernel``); biases, norms and embeddings are left alone."""
  return bool(path) and path[-1] == "kernel"


def layer_kernels(*layers: str) -> Placement:
  """The kernels of the named layers only, e.g. ``layer_kernels("classifier")``
  (a layer's name is the path element just before ``kernel``)."""
  if not layers or not all(isinstance(l, str) and l for l in layers):
    raise ValueError(f"layer_kernels{layers!r}: give one or more layer names (strings).")
  wanted = frozenset(layers)

  def where(path: tuple[str, ...]) -> bool:
    return len(path) >= 2 and path[-1] == "kernel" and path[-2] in wanted

  where.__name__ = f"layer_kernels({', '.join(map(repr, layers))})"
  return where


def gain_mask(params: Any, where: Placement = kernels) -> Any:
  """A pytree of bools like ``params`` (a Linen params dict or an
  ``nnx.State``): True where ``where(param_path(path))``."""
  return jax.tree_util.tree_map_with_path(lambda p, _: bool(where(param_path(p))), params)
