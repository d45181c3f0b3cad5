#!/usr/bin/env bash
# The accelerator check (issue 18), one command within 10 minutes of device time: matmul peaks,
# Split MNIST compile + run on a cold and a warm compilation cache and in bf16, FLOPs and the
# fraction of peak, a profile's top costs, the ResNet in bf16 against fp32, Split CIFAR-10
# (synthetic) 5 optimizers x 5 seeds end to end, scaling over the devices if several.
#   bash experiments/gpu_check.sh MNIST_DIR [OUT]
# Appends each item's section to docs/results.md as it is measured, and to OUT/gpu_check.md
# (OUT/gpu_check.json holds the numbers): copy OUT back if the checkout is not kept.
# Rehearse on a CPU first: python experiments/gpu_check.py --tiny --out /tmp/check --results /tmp/r.md
set -euo pipefail
MNIST_DIR=${1:?usage: bash experiments/gpu_check.sh MNIST_DIR [OUT]}
OUT=${2:-results/gpu_check}
cd "$(dirname "$0")/.."
python -c "import jax; print('devices:', jax.devices())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python experiments/gpu_check.py --data-dir "$MNIST_DIR" --out "$OUT" --budget-s "${BUDGET_S:-540}"
