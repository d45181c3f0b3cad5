"""Moved: the commands' shared flags and loading are :mod:`ngm_jax.cli.args` and
:mod:`ngm_jax.cli.experiment`. These names stay importable from here for the
code that still imports them from the checkout."""

from __future__ import annotations

from ngm_jax.cli.args import TRAIN_FLAGS, add_experiment_flags, check_out
from ngm_jax.cli.experiment import (Experiment, load_experiment, provenance_meta,
                                    train_config_from)

__all__ = ["TRAIN_FLAGS", "Experiment", "add_experiment_flags", "check_out", "load_experiment",
           "provenance_meta", "train_config_from"]
