"""Mixed precision: a network computed in bfloat16 while everything kept is float32.

``TrainConfig(compute_dtype="bfloat16")`` wraps the network's forward pass
(:func:`with_compute_dtype`): the floating-point parameters (``W_eff = g·W``,
formed in float32 first) and the preprocessed inputs are cast to bfloat16 at
the top of the pass, the layers compute in bfloat16, and the logits come back
as float32. What the trainer keeps stays float32: the parameters, their
gradients (the cast's transpose casts them back), the optimizer state, the
gain and its dynamics, the model state (BatchNorm statistics: Flax reduces
them in float32 and they are cast back to the dtype they had), the loss, the
softmax entropy H and the evaluations' losses and decisions.

Which layers compute in bfloat16 follows the modules' own dtype promotion
(Flax computes a layer in the promoted dtype of its input and parameters
unless its ``dtype`` is set): every layer of the library's MLP and slim
ResNet-18 (Linen; its BatchNorm returns its input's dtype). An NNX BatchNorm
returns float32 (its float32 statistics promote), so the layers after it
compute in float32 unless the module is built with ``dtype=jnp.bfloat16``.

The default, ``"float32"``, leaves the network as it is (the results of runs
made before this option existed). On a GPU a float32 matmul is TF32 by
default already (``jax.default_matmul_precision``); bfloat16 halves the
bytes moved as well.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ngm_jax.checks import RULES
from ngm_jax.model_fns import ModelFns

__all__ = ["COMPUTE_DTYPES", "with_compute_dtype", "cast_floats"]

#: The values of ``TrainConfig.compute_dtype``.
COMPUTE_DTYPES = RULES["compute_dtype"].choices  # ("float32", "bfloat16")


def cast_floats(tree: Any, dtype: Any) -> Any:
  """``tree`` with every floating-point leaf cast to ``dtype`` (integers,
  booleans and PRNG keys untouched)."""
  def cast(x):
    if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
      return x.astype(dtype)
    return x
  return jax.tree.map(cast, tree)


def _like(new: Any, old: Any) -> Any:
  """``new`` with each floating leaf cast back to the dtype of ``old``'s."""
  return jax.tree.map(
      lambda n, o: n.astype(o.dtype) if jnp.issubdtype(o.dtype, jnp.floating) else n,
      new, old)


def with_compute_dtype(net: ModelFns, compute_dtype: str = "float32") -> ModelFns:
  """``net`` whose ``apply`` computes in ``compute_dtype`` (one of
  :data:`COMPUTE_DTYPES`) and returns float32 logits ``[B, C]`` and the model
  state in its own dtypes; ``"float32"`` returns ``net`` itself.

  Raises:
    ValueError: another ``compute_dtype`` (naming the allowed ones).
  """
  if compute_dtype == "float32":
    return net
  if compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(f"compute_dtype={compute_dtype!r}: must be one of"
                     f" {', '.join(map(repr, COMPUTE_DTYPES))}.")
  dtype = jnp.dtype(compute_dtype)

  def apply(params, model_state, x, *, train, key):
    logits, new_state = net.apply(cast_floats(params, dtype), model_state,
                                  cast_floats(x, dtype), train=train, key=key)
    return logits.astype(jnp.float32), _like(new_state, model_state)

  return net._replace(apply=apply)
