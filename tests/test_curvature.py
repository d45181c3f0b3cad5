"""Top Hessian eigenvalue by power iteration; λ_W = g²·λ_Weff."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from ngm_jax import curvature as cv
from ngm_jax.gain import effective_params
from ngm_jax.models import MLP, mlp_gain_mask


def _spd(eigenvalues, seed=0):
  """A random symmetric matrix with the given eigenvalues."""
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(eigenvalues),) * 2))
  return (q * np.asarray(eigenvalues)) @ q.T


def _quadratic(a):
  """½xᵀAx on a two-leaf pytree holding x (2 + 3 entries)."""
  a = jnp.asarray(a, jnp.float32)
  params = {"u": jnp.zeros(2), "v": {"w": jnp.zeros(3)}}
  unravel = ravel_pytree(params)[1]
  loss = lambda p: 0.5 * ravel_pytree(p)[0] @ a @ ravel_pytree(p)[0]
  return loss, params, unravel


@jax.jit
def _top_of_quadratic(a, key):
  loss, params, _ = _quadratic(a)
  return cv.top_hessian_eigenvalue(loss, params, key, num_iters=500, tol=1e-7)


@pytest.mark.parametrize("a", [
    np.diag([0.5, 4.0, 1.0, 2.0, 3.0]),
    _spd([5.0, 3.0, 2.0, 1.0, 0.5], seed=1),
    (lambda b: b @ b.T)(np.random.default_rng(2).normal(size=(5, 5))),  # random PSD
])
def test_quadratic_matches_eigvalsh(a):
  lam = _top_of_quadratic(jnp.asarray(a, jnp.float32), jax.random.key(0))
  np.testing.assert_allclose(lam, np.linalg.eigvalsh(a).max(), rtol=1e-4)


def test_hvp_is_a_times_v():
  a = _spd([5.0, 3.0, 2.0, 1.0, 0.5])
  loss, params, unravel = _quadratic(a)
  v = np.arange(1.0, 6.0, dtype=np.float32)
  hv = cv.hvp(loss, params, unravel(jnp.asarray(v)))
  np.testing.assert_allclose(ravel_pytree(hv)[0], a @ v, rtol=1e-5)


def test_largest_magnitude_is_returned_with_its_sign():
  lam = _top_of_quadratic(jnp.diag(jnp.array([-3.0, 1.0, 0.5, 0.2, 0.1])),
                          jax.random.key(0))
  np.testing.assert_allclose(lam, -3.0, rtol=1e-4)


def test_power_iteration_stops_early_at_tol():
  a = np.diag([10.0, 1.0, 1.0, 1.0, 1.0])
  loss, params, _ = _quadratic(a)
  result = cv.power_iteration(lambda v: cv.hvp(loss, params, v),
                              optax.tree.ones_like(params), num_iters=100, tol=1e-5)
  assert int(result.iterations) < 20
  np.testing.assert_allclose(result.eigenvalue, 10.0, rtol=1e-4)
  np.testing.assert_allclose(optax.tree.norm(result.eigenvector), 1.0, rtol=1e-5)


def _linear_layer():
  """One Dense kernel [6, 3] (no bias), softmax cross-entropy on 16 examples."""
  x = jax.random.normal(jax.random.key(1), (16, 6))
  labels = jnp.arange(16) % 3
  model = nn.Dense(3, use_bias=False)
  params = model.init(jax.random.key(2), x)["params"]

  def loss_of_w_eff(w_eff):
    logits = model.apply({"params": w_eff}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  return loss_of_w_eff, params


def test_linear_layer_raw_is_gain_squared_times_effective():
  loss_of_w_eff, params = _linear_layer()
  eigen = jax.jit(lambda g: cv.ngm_top_eigenvalues(
      loss_of_w_eff, params, g, jax.random.key(3), mask=mlp_gain_mask,
      num_iters=300, tol=1e-7))
  unravel = ravel_pytree(params)[1]
  dense_hessian = jax.jit(jax.hessian(lambda f: loss_of_w_eff(unravel(f))))
  for gain in (0.5, 2.5):
    out = eigen(gain)
    np.testing.assert_allclose(out["raw"], gain**2 * out["effective"], rtol=1e-3)
    np.testing.assert_allclose(out["ratio"], gain**2, rtol=1e-3)
    np.testing.assert_allclose(out["gain_sq"], gain**2, rtol=1e-6)
    # Against the dense Hessian (18 params), formed here only to check.
    flat = ravel_pytree(effective_params(params, gain, mlp_gain_mask))[0]
    dense = np.asarray(dense_hessian(flat))
    np.testing.assert_allclose(out["effective"], np.linalg.eigvalsh(dense).max(),
                               rtol=1e-3)


def test_mlp_under_jit_without_recompiling():
  # Every MLP kernel is gain-modulated, so H_W = g²·H_Weff for the whole net.
  model = MLP(hidden=(8,), num_classes=3)
  x = jax.random.normal(jax.random.key(6), (12, 5))
  labels = jnp.arange(12) % 3
  params = model.init(jax.random.key(7), x)["params"]
  loss = lambda w_eff: optax.softmax_cross_entropy_with_integer_labels(
      model.apply({"params": w_eff}, x), labels).mean()
  fn = jax.jit(lambda p, g, k: cv.ngm_top_eigenvalues(loss, p, g, k, num_iters=300,
                                                      tol=1e-7))
  for gain, seed in ((1.7, 8), (3.0, 9)):
    out = fn(params, gain, jax.random.key(seed))
    np.testing.assert_allclose(out["ratio"], gain**2, rtol=1e-2)
    assert out["raw"] > 0 and out["effective"] > 0
  assert fn._cache_size() == 1  # pylint: disable=protected-access


@pytest.mark.parametrize("kwargs, text", [
    ({"num_iters": 0}, "num_iters=0"),
    ({"num_iters": 2.5}, "num_iters=2.5"),
    ({"tol": -1.0}, "tol=-1.0"),
])
def test_bad_settings_raise(kwargs, text):
  loss, params, _ = _quadratic(np.eye(5))
  with pytest.raises(ValueError, match=text):
    cv.top_hessian_eigenvalue(loss, params, jax.random.key(0), **kwargs)
