"""ngm-jax: noradrenergic gain modulation and the stability gap, in JAX/Optax.

Importing the package loads neither matplotlib nor tensorflow: figures are
drawn by :mod:`ngm_jax.plots` only when a report is written.
"""

from ngm_jax.augment import random_crop_flip
from ngm_jax.benchmarks import BENCHMARKS, Benchmark, load_benchmark
from ngm_jax.config import ExperimentConfig
from ngm_jax.data import DataUnavailableError, ImageDataset, load_cifar10, load_cifar100
from ngm_jax.data import load_miniimagenet, load_mnist
from ngm_jax.execution import train_seeds
from ngm_jax.gain import (
    GainModulationState,
    ReplayedGainState,
    effective_params,
    entropy,
    gain_modulation,
    gain_of,
    gain_scaled_sgd,
    ngm_sgd,
    replayed_gain_sgd,
    set_gain,
)
from ngm_jax.logs import MetricWriter
from ngm_jax.metrics import (de_lange_metrics, seen_tasks_accuracy, summarize,
                             task1_metrics)
from ngm_jax.mitigations import (boundary_warmup, ema_params, ema_sgd, warmup_sgd,
                                 weight_ema)
from ngm_jax.model_fns import ModelFns, model_fns
from ngm_jax.models import MLP, SlimResNet18, classifier_gain_mask, mlp_gain_mask
from ngm_jax.optimizers import (ABLATIONS, MITIGATIONS, OPTIMIZER_NAMES, OPTIMIZERS, Optimizer,
                                as_optimizer, make_optimizer, partition_by_gain)
from ngm_jax.placement import gain_mask, kernels, layer_kernels
from ngm_jax.results import Result, load_result, report, save_result, write_report
from ngm_jax.runner import run_benchmark
from ngm_jax.sampling import Sampler, joint_sampler
from ngm_jax.search import Dimension, Tunable, builtin_tunable, configurations
from ngm_jax.streams import TaskStream, rotated_mnist, split_mnist, subsample_test
from ngm_jax.tuning import tune
from ngm_jax.validation import ValidationSplit, validation_split
from ngm_jax.train import (TrainConfig, TrainData, TrainParts, TrainState, make_train,
                           make_train_parts, seed_keys, train_data)

__version__ = "0.1.0"
