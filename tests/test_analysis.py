"""ngm_jax.analysis re-exports the names its older callers still import."""

from ngm_jax import analysis, failures, gain_analysis


def test_old_names_are_the_new_functions():
  assert analysis.failed_seeds is failures.failed_seeds
  assert analysis.failed_seeds_note is failures.failed_seeds_note
  assert analysis.gain_schedule is gain_analysis.gain_schedule
  assert sorted(analysis.__all__) == ["failed_seeds", "failed_seeds_note", "gain_schedule"]
