"""Failed-seed detection and its table note."""

import numpy as np
import pytest

from ngm_jax import failures


def test_failed_seeds_flags_divergence_and_collapse():
  loss = np.array([[2.0, 1.0, 0.5, 0.4],
                   [2.0, np.nan, np.nan, np.nan],  # diverged
                   [2.3, 2.3, 2.31, 2.302],         # no better than guessing among 10
                   [2.3, 2.3, 2.0, 2.2]])           # last quarter 2.2 < 0.99·ln 10
  np.testing.assert_array_equal(failures.failed_seeds({"train_loss": loss}),
                                [False, True, False, False])
  np.testing.assert_array_equal(failures.failed_seeds({"train_loss": loss}, 10, tail=0.25),
                                [False, True, True, False])
  np.testing.assert_array_equal(failures.failed_seeds({"train_loss": loss}, 10, tail=0.5),
                                [False, True, True, False])
  with pytest.raises(ValueError, match="tail=0"):
    failures.failed_seeds({"train_loss": loss}, tail=0)
  with pytest.raises(ValueError, match=r"\[S, T\]"):
    failures.failed_seeds({"train_loss": loss[0]})


def test_failed_seeds_note():
  some = {"a": np.array([False, True]), "b": np.zeros(2, bool)}
  none = {"a": np.zeros(2, bool)}
  note = failures.failed_seeds_note(some, 10)
  assert note.startswith("Failed seeds: training loss non-finite (diverged), or over the last"
                         " 10% of iterations no lower than 0.99·ln 10 nats")
  assert "collapsed" not in failures.failed_seeds_note(some, None)
  assert failures.failed_seeds_note(none, 10) is None
  assert "collapse to a uniform guess was not checked" in failures.failed_seeds_note(none, None)
