#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 300 s each) with cargo-fuzz on the nightly toolchain.
#   image_pipeline: any upload through decode + normalisation + inference
#   checkpoint:     any weights file through the checkpoint / safetensors readers
#   onnx_graph:     any bytes through the checks an ONNX file passes before ONNX Runtime sees it
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET…]
# Seeds: samples/*.png, and the upstream checkpoint from assets/ or $MNIST_ASSET_CACHE's archive.
# ONNX seeds: titanic.onnx and my_convnet.onnx from $MNIST_ONNX_DIR.
# A crash leaves its input in fuzz/artifacts/TARGET/ and makes this script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(image_pipeline checkpoint onnx_graph)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q nightly || { echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }

seeds=fuzz/seeds
mkdir -p "$seeds/image_pipeline" "$seeds/checkpoint" "$seeds/onnx_graph"
cp samples/*.png "$seeds/image_pipeline/"
if [ -f assets/mnist-classifier.pt ]; then
  cp assets/mnist-classifier.pt "$seeds/checkpoint/"
elif [ -f "${MNIST_ASSET_CACHE:-/nonexistent}/mnist-classifier.tar.gz" ]; then
  tar -xzf "$MNIST_ASSET_CACHE/mnist-classifier.tar.gz" -C "$seeds/checkpoint"
fi

[ -z "${MNIST_ONNX_DIR:-}" ] || cp "$MNIST_ONNX_DIR"/titanic.onnx "$MNIST_ONNX_DIR"/my_convnet.onnx "$seeds/onnx_graph/"

for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  echo "== fuzz $target for ${seconds}s"
  cargo +nightly fuzz run --release "$target" "fuzz/corpus/$target" "$seeds/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
