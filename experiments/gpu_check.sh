#!/usr/bin/env bash
# The accelerator check (issue 10): Split MNIST and Split CIFAR-10 (synthetic) at full
# size, five optimizers x five seeds, the ResNet's seed axis, matmul precision, peak memory.
#   bash experiments/gpu_check.sh MNIST_DIR [OUT]
# Writes OUT/gpu_check.json (each item as it finishes) and OUT/gpu_check.md; prints both.
# Rehearse on a CPU first: python experiments/gpu_check.py --data-dir MNIST_DIR --tiny
set -euo pipefail
MNIST_DIR=${1:?usage: bash experiments/gpu_check.sh MNIST_DIR [OUT]}
OUT=${2:-results/gpu_check}
cd "$(dirname "$0")/.."
python -c "import jax; print('devices:', jax.devices())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python experiments/gpu_check.py --data-dir "$MNIST_DIR" --out "$OUT"
