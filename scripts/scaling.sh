#!/usr/bin/env bash
# Scaling: how the served rate grows with the cores the server may use. For each N of --cores, the
# server runs pinned to cores 0..N-1 (taskset, so its runners and HTTP workers, which default to
# the cores it may use, are N each) and wrk to the cores after them (to all cores when none is left,
# which the table says); it measures POST /model/predict (MAX's MyConvNet) and PUT /predictions/net
# (TorchServe's Net, with $MNIST_TORCHSERVE_DIR), and prints req/s, the per-core efficiency against
# N = the first value (rate / (N × rate at that value, per core)), and the server's peak RSS.
#
#   scripts/scaling.sh [--cores 1,2,4,8] [--duration SECONDS] [--connections N]
#
# Needs wrk, curl, taskset and python3. Values of --cores above the machine's core count are skipped.
set -euo pipefail

cores_list=1,2,4,8 duration=10 connections=64
while [ $# -gt 0 ]; do
  case "$1" in
    --cores) cores_list=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    *) echo "usage: $0 [--cores 1,2,4,8] [--duration SECONDS] [--connections N]" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
. scripts/lib/served-address.sh
for tool in wrk curl taskset python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install $tool" >&2; exit 1; }
done
bin=${MAX_MNIST_BIN:-target/release/max-mnist}
[ -x "$bin" ] || cargo build --release --locked --bin max-mnist
[ -f assets/mnist-classifier.pt ] || "$bin" fetch-assets
total=$(nproc)
work=$(mktemp -d)
server=
trap '[ -z "$server" ] || kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
multipart_type=$(python3 scripts/loadtest/make-bodies.py samples "$work")
models="mnist=assets/mnist-classifier.pt"
net_mar=${MNIST_TORCHSERVE_DIR:+$MNIST_TORCHSERVE_DIR/mnist.mar}
[ -n "$net_mar" ] && models="$models,net=$net_mar"

# rate N PATH METHOD TYPE BODY: req/s of wrk on the cores after the server's.
rate() {
  local n=$1 path=$2 method=$3 type=$4 body=$5 pin
  if [ "$n" -lt "$total" ]; then pin="$n-$((total - 1))"; else pin="0-$((total - 1))"; fi
  BODY_FILE=$body METHOD=$method CONTENT_TYPE=$type taskset -c "$pin" \
    wrk -t"$(( n < total ? total - n : total ))" -c"$connections" -d"${duration}s" \
    -s scripts/loadtest/body.lua "$base$path" >"$work/wrk.out"
  if grep -Eq "Non-2xx|Socket errors" "$work/wrk.out"; then
    echo "errors under load on $path:" >&2; cat "$work/wrk.out" >&2; exit 1
  fi
  awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$work/wrk.out"
}

echo "wrk, $connections connections, ${duration} s per cell, on a $total-core machine"
echo
echo '| server cores | wrk cores | POST /model/predict req/s | per-core efficiency | PUT /predictions/net req/s | per-core efficiency | peak RSS |'
echo '|---|---|---|---|---|---|---|'
first_max='' first_net='' first_n=''
for n in ${cores_list//,/ }; do
  [ "$n" -le "$total" ] || { echo "(skipping $n cores: this machine has $total)" >&2; continue; }
  taskset -c "0-$((n - 1))" "$bin" serve --host 127.0.0.1 --port 0 --models "$models" >"$work/server.log" 2>&1 &
  server=$!
  base=$(served_address "$work/server.log" "$server")
  max=$(rate "$n" /model/predict POST "$multipart_type" "$work/predict.multipart")
  net=-
  [ -n "$net_mar" ] && net=$(rate "$n" /predictions/net PUT image/png "$work/7.png")
  rss=$(awk '$1 == "VmHWM:" { printf "%d MiB", $2 / 1024 }' "/proc/$server/status")
  kill "$server"; wait "$server" 2>/dev/null || true; server=
  [ -n "$first_n" ] || { first_n=$n first_max=$max first_net=$net; }
  efficiency() { [ "$2" = - ] && { echo -; return; }; awk -v r="$1" -v r1="$2" -v n="$n" -v n1="$first_n" 'BEGIN { printf "%.2f", (r / n) / (r1 / n1) }'; }
  wrk_cores=$(( n < total ? total - n : total ))
  [ "$n" -lt "$total" ] || wrk_cores="$total (shared)"
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$wrk_cores" "$max" "$(efficiency "$max" "$first_max")" \
    "$net" "$(efficiency "$net" "$first_net")" "$rss"
done
