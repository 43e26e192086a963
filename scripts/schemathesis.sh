#!/usr/bin/env bash
# Schemathesis against the real server: starts the release binary on a free loopback port with the
# MAX model, TorchServe's MNIST Net and its Titanic model, and runs `st run --checks all` on its
# /openapi.json, bounded in examples and time. Exits non-zero on any failure.
#
#   scripts/schemathesis.sh [--max-examples N] [--max-time SECONDS] [--seed N]
#
# The seed is fixed (1 by default) so that a failure in CI is the same on a developer's machine.
#
# Needs `st` (PyPI schemathesis, see scripts/requirements.txt; $SCHEMATHESIS, default the one in
# target/ci-venv, else on PATH), $MNIST_TORCHSERVE_DIR (mnist.mar) and $MNIST_TITANIC_DIR
# (titanic.mar). Weights: assets/mnist-classifier.pt, fetched when missing (from
# $MNIST_ASSET_CACHE when set).
set -euo pipefail

max_examples=10 max_time=60 seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --max-examples) max_examples=$2; shift 2 ;;
    --max-time) max_time=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    *) echo "usage: $0 [--max-examples N] [--max-time SECONDS] [--seed N]" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
. scripts/lib/served-address.sh
st=${SCHEMATHESIS:-target/ci-venv/bin/st}
[ -x "$st" ] || st=$(command -v st) || { echo "schemathesis is missing: pip install -r scripts/requirements.txt" >&2; exit 1; }
for dir in MNIST_TORCHSERVE_DIR MNIST_TITANIC_DIR; do
  [ -d "${!dir:-}" ] || { echo "\$$dir must name the directory of TorchServe's example archive" >&2; exit 1; }
done
cargo build --release --locked --bin max-mnist
bin=target/release/max-mnist
[ -f assets/mnist-classifier.pt ] || "$bin" fetch-assets ${MNIST_ASSET_CACHE:+--bucket "$MNIST_ASSET_CACHE"}

work=$(mktemp -d)
models="mnist=assets/mnist-classifier.pt,net=$MNIST_TORCHSERVE_DIR/mnist.mar,titanic=$MNIST_TITANIC_DIR/titanic.mar"
"$bin" serve --host 127.0.0.1 --port 0 --models "$models" >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
base=$(served_address "$work/server.log" "$server")

status=0
"$st" --config-file scripts/schemathesis/schemathesis.toml run "$base/openapi.json" \
  --checks all --max-examples "$max_examples" --max-time "$max_time" --workers 1 \
  --generation-database none --seed "$seed" || status=$?
if ! kill -0 "$server" 2>/dev/null; then
  echo "schemathesis: the server stopped during the run:" >&2
  tail -20 "$work/server.log" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "schemathesis: failures above; the server's log ends:" >&2
  tail -20 "$work/server.log" >&2
fi
exit "$status"
