"""Former home of the analyses, kept so that older imports keep working.

Each name now lives in the module of its one job:

- :mod:`ngm_jax.gain_analysis`: ``TimeAveragedGain``, ``time_averaged_gain``,
  ``gain_schedule``, ``block_mean_gain``, ``gain_trend``;
- :mod:`ngm_jax.stats`: ``mean_and_stderr``, ``confidence_interval``,
  ``paired_difference``, ``linear_fit`` (Student-t quantiles from
  ``scipy.stats.t``);
- :mod:`ngm_jax.failures`: ``failed_seeds``, ``failed_seeds_note``;
- :mod:`ngm_jax.metrics`: ``seen_tasks_accuracy``;
- the ablation registry and its tables (``ABLATIONS``,
  ``ABLATION_COMPARISONS``, ``ablation_variants``, ``ablation_table``,
  ``comparison_table``) in :mod:`experiments.ablation_registry`;
  ``run_variants`` and ``find_reusable`` in :mod:`experiments.saved_runs`;
  ``benchmark_kind`` and ``gain_trend_table`` in
  :mod:`experiments.gain_readout`.

New code imports from those modules; this one re-exports only the library
names that callers outside them still use.
"""

from ngm_jax.failures import failed_seeds, failed_seeds_note
from ngm_jax.gain_analysis import gain_schedule

__all__ = ["failed_seeds", "failed_seeds_note", "gain_schedule"]
