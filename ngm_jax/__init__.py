"""ngm-jax: noradrenergic gain modulation and the stability gap, in JAX/Optax."""

from ngm_jax.augment import random_crop_flip
from ngm_jax.benchmarks import ModelSetup, model_setup
from ngm_jax.data import DataUnavailableError, ImageDataset, load_cifar10, load_cifar100
from ngm_jax.data import load_miniimagenet, load_mnist
from ngm_jax.experiment import report, run_benchmark
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
from ngm_jax.models import MLP, SlimResNet18, classifier_gain_mask, mlp_gain_mask
from ngm_jax.optimizers import (ABLATIONS, OPTIMIZER_NAMES, OPTIMIZERS, make_optimizer,
                                partition_by_gain, training_options)
from ngm_jax.streams import (BENCHMARKS, Sampler, TaskStream, joint_sampler, load_benchmark,
                             rotated_mnist, split_mnist, subsample_test)
from ngm_jax.train import (TrainConfig, TrainParts, TrainState, make_train, make_train_parts,
                           seed_keys, train_seeds)

__version__ = "0.1.0"
