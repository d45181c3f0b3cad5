"""ngm_jax.search: search spaces, exactly budget configurations, injected hyperparameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ngm_jax.search import SPACES, Dimension, Tunable, builtin_tunable, configurations
from ngm_jax.train import TrainConfig


def test_one_dimension_is_a_grid_with_budget_points():
  configs = configurations({"learning_rate": Dimension(1e-4, 1e-1)}, 4)
  np.testing.assert_allclose([c["learning_rate"] for c in configs], [1e-4, 1e-3, 1e-2, 1e-1],
                             rtol=1e-9)
  linear = configurations({"x": Dimension(0.0, 1.0, "linear")}, 3)
  np.testing.assert_allclose([c["x"] for c in linear], [0.0, 0.5, 1.0])


@pytest.mark.parametrize("budget", [1, 5, 16])
def test_several_dimensions_are_a_seeded_sample_of_budget_points(budget):
  space = SPACES["ngm_sgd"]
  configs = configurations(space, budget, seed=3)
  assert len(configs) == budget
  assert configs == configurations(space, budget, seed=3)
  if budget > 1:
    assert configs != configurations(space, budget, seed=4)
  for c in configs:
    for name, dim in space.items():
      assert dim.low <= c[name] <= dim.high


def test_every_builtin_space_trains_with_injected_values():
  """Each built-in's tuned values are state entries set per run, and they act."""
  params = {"w": jnp.ones((2,))}
  config = TrainConfig()
  for name, space in SPACES.items():
    tx = builtin_tunable(name, config).injected().tx
    low = {k: jnp.float32(d.low) for k, d in space.items()}
    high = {k: jnp.float32(d.high) for k, d in space.items()}
    steps = []
    for values in (low, high):
      state = optax.tree.set(tx.init(params), **values)
      updates, _ = jax.jit(tx.update)({"w": jnp.ones((2,))}, state, params,
                                      entropy=jnp.float32(0.5))
      steps.append(float(updates["w"][0]))
    assert steps[0] != steps[1], name


def test_bad_spaces_are_named():
  with pytest.raises(ValueError, match="scale='cubic'"):
    Dimension(1.0, 2.0, "cubic")
  with pytest.raises(ValueError, match="log scale"):
    Dimension(0.0, 1.0)
  with pytest.raises(ValueError, match="budget=0"):
    configurations({"x": Dimension(1.0, 2.0)}, 0)
  with pytest.raises(ValueError, match="empty"):
    configurations({}, 2)
  with pytest.raises(ValueError, match="takes no argument.*momentum"):
    Tunable(lambda learning_rate: optax.sgd(learning_rate),
            {"learning_rate": Dimension(1e-3, 1e-1), "momentum": Dimension(0.5, 0.9)})
  with pytest.raises(ValueError, match="'lion' has no search space; tunable built-ins: sgd"):
    builtin_tunable("lion", TrainConfig())
