"""What each benchmark trains: model, gain mask, preprocessing, augmentation.

The data side (loading and task streams) is :func:`ngm_jax.streams.load_benchmark`;
this module pairs each benchmark with the network the paper uses on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax

from ngm_jax.augment import random_crop_flip
from ngm_jax.models import (MLP, SlimResNet18, classifier_gain_mask, mlp_gain_mask,
                            standardise_images, standardise_mnist)
from ngm_jax.streams import TaskStream

__all__ = ["ModelSetup", "model_setup", "CIFAR10_STATS", "CIFAR100_STATS",
           "IMAGENET_STATS"]

# Per-channel (mean, std) of the training images, in [0, 1] units.
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

_IMAGE_STATS = {
    "split_cifar10": CIFAR10_STATS,
    "domain_cifar100": CIFAR100_STATS,
    "split_miniimagenet": IMAGENET_STATS,
}


@dataclasses.dataclass(frozen=True)
class ModelSetup:
  """A benchmark's network; :meth:`kwargs` gives the keyword arguments of
  :func:`ngm_jax.train.make_train_parts`."""

  model: nn.Module
  gain_mask: Any
  preprocess: Callable[[jax.Array], jax.Array]
  augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None
  convolutional: bool = False  # decides the default loop on CPU

  def kwargs(self) -> dict[str, Any]:
    return {"model": self.model, "gain_mask": self.gain_mask,
            "preprocess": self.preprocess, "augment": self.augment}


def model_setup(stream: TaskStream, augment: bool = False) -> ModelSetup:
  """The paper's network for ``stream``.

  MNIST benchmarks: the MLP, every layer gain-modulated, MNIST
  standardisation. Image benchmarks: the slim ResNet-18 with only its
  classifier gain-modulated, per-channel standardisation, and (if
  ``augment``) random 4-pixel-padded crops and horizontal flips on the
  device.
  """
  if stream.name.endswith("mnist"):
    if augment:
      raise ValueError(f"{stream.name}: no augmentation is defined for MNIST.")
    return ModelSetup(MLP(num_classes=stream.num_classes), mlp_gain_mask,
                      standardise_mnist)
  if stream.name not in _IMAGE_STATS:
    raise ValueError(
        f"No model is defined for benchmark {stream.name!r}; known:"
        f" split_mnist, rotated_mnist, {', '.join(_IMAGE_STATS)}."
    )
  mean, std = _IMAGE_STATS[stream.name]
  return ModelSetup(
      SlimResNet18(num_classes=stream.num_classes),
      classifier_gain_mask,
      standardise_images(mean, std),
      random_crop_flip if augment else None,
      convolutional=True,
  )
