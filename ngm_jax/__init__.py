"""ngm-jax: noradrenergic gain modulation and the stability gap, in JAX/Optax."""

from ngm_jax.data import DataUnavailableError, ImageDataset, load_mnist
from ngm_jax.gain import (
    GainModulationState,
    effective_params,
    entropy,
    gain_modulation,
    gain_of,
    ngm_sgd,
)
from ngm_jax.models import MLP, mlp_gain_mask
from ngm_jax.optimizers import OPTIMIZERS, make_optimizer
from ngm_jax.streams import TaskStream, rotated_mnist, split_mnist
from ngm_jax.train import TrainConfig, make_train, seed_keys

__version__ = "0.1.0"
