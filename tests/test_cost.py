"""ngm_jax.cost: XLA's FLOP counts of the protocol's pieces against a count by hand."""

import pytest

from ngm_jax.config import task1_eval_size
from ngm_jax.cost import (DATASHEET_PEAKS, device_peaks, flops_per_iteration, matmul_peak,
                          mlp_forward_flops, peak_for, protocol_flops)
from ngm_jax.streams import split_mnist
from ngm_jax.train import TrainConfig
from tests.conftest import fake_mnist

WIDTHS = (784, 400, 400, 10)  # the paper's MLP


@pytest.fixture(scope="module")
def counts():
  stream = split_mnist(fake_mnist(n_train_per_class=20, n_test_per_class=10))
  config = TrainConfig(iterations_per_task=10, batch_size=32, task_eval_every=10)
  return stream, config, {opt: protocol_flops(stream, opt, config) for opt in ("sgd", "ngm_sgd")}


def test_evaluations_are_the_forward_multiply_adds(counts):
  stream, config, flops = counts
  task1 = mlp_forward_flops(WIDTHS, task1_eval_size(stream, config))
  every = mlp_forward_flops(WIDTHS, len(stream.test_labels))
  # By hand: the three matrix products; XLA adds the softmax, loss and argmax (< 1 %).
  assert task1 <= flops["sgd"]["task1_eval"] <= 1.01 * task1
  assert every <= flops["sgd"]["all_tasks_eval"] <= 1.01 * every


def test_a_training_step_is_forward_and_backward(counts):
  _, config, flops = counts
  b = config.batch_size
  # Forward, the weight gradients, and the input gradients of every layer but the first.
  by_hand = 3 * mlp_forward_flops(WIDTHS, b) - 2 * b * WIDTHS[0] * WIDTHS[1]
  assert by_hand <= flops["sgd"]["train_step"] <= 1.03 * by_hand
  # NGM-SGD scales every kernel by the gain (W_eff = g·W): more, by about the parameters.
  params = sum(a * c for a, c in zip(WIDTHS[:-1], WIDTHS[1:]))
  extra = flops["ngm_sgd"]["train_step"] - flops["sgd"]["train_step"]
  assert params <= extra <= 4 * params


def test_flops_per_iteration_adds_the_evaluations_at_their_intervals():
  counts = {"train_step": 10.0, "task1_eval": 40.0, "all_tasks_eval": 200.0}
  config = TrainConfig(iterations_per_task=20, eval_every=2, task_eval_every=10)
  assert flops_per_iteration(counts, config) == 10 + 40 / 2 + 200 / 10
  assert flops_per_iteration(counts, config, task_eval_every=20) == 10 + 20 + 10
  assert flops_per_iteration({**counts, "task1_eval": None}, config) is None


def test_the_peak_a_run_is_rated_against_follows_its_precision():
  peaks = {k: {"measured": v, "datasheet": None} for k, v in
           (("fp32", 1.0), ("tf32", 8.0), ("bf16", 16.0))}
  assert peak_for(peaks, "float32", "cpu") == ("fp32", 1.0)
  assert peak_for(peaks, "float32", "gpu") == ("tf32", 8.0)  # JAX's default on a GPU
  assert peak_for(peaks, "bfloat16", "gpu") == ("bf16", 16.0)
  assert peak_for({"fp32": peaks["fp32"]}, "bfloat16", "cpu") is None  # not measured
  h200 = next(v for k, v in DATASHEET_PEAKS.items() if k in "NVIDIA H200")
  assert h200["bf16"] == 2 * h200["tf32"]  # dense figures: bf16 twice TF32


def test_a_matmul_peak_is_measured_on_this_cpu():
  peaks = device_peaks()
  assert set(peaks) == {"fp32"} and peaks["fp32"]["datasheet"] is None
  assert peaks["fp32"]["measured"] > 1e8
  assert matmul_peak(n=256, repeats=2) > 1e7
