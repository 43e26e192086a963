#!/usr/bin/env bash
# Load test: builds the release binary, starts the server on loopback port 0 (the port it got is read
# from its log), drives it with wrk and prints a Markdown table of req/s, p50/p99 latency and
# errors, then the server's peak RSS.
#
#   scripts/loadtest.sh [--duration SECONDS] [--connections N] [--soak SECONDS]
#
# Scenarios (each --duration, default 10 s): GET /ping; POST /model/predict (multipart 28×28 PNG) at
# N connections (default 16) and at 1; PUT /predictions/mnist (the raw PNG, as `curl -T`); a KServe
# v1 :predict of 64 instances; /ping and /model/predict at 1 connection with server and wrk pinned
# to one core. With TorchServe's example (`$MNIST_TORCHSERVE_DIR/mnist.mar`) it is served beside the
# MAX model as `net`: PUT /predictions/net at N connections and at 1, and /model/predict measured
# while /predictions/net is under load (half the connections each). With $MNIST_ONNX_DIR set,
# mobilenet_v3_small.onnx is served as `mobilenet`: a KServe v2 :infer of one FP32 [1,3,224,224]
# tensor in Triton's binary extension (the graph's input as it is, so what is measured is the
# network and HTTP, not image decoding) at N connections, and at 1 connection with server and wrk
# pinned to one core, whose time per request is the one-thread time in the target
# 0.8 × cores ÷ one-thread time printed beside the N-connection rate (ONNX Runtime's library is
# found as the server finds it, e.g. $ORT_DYLIB_PATH). --soak S then drives /model/predict for S
# seconds and samples RSS.
# Every scenario's answer is checked once with curl first; any non-2xx answer or socket error makes
# the script exit 1. Needs wrk, curl, taskset and python3 (Debian: apt-get install wrk curl
# util-linux python3).
# Weights: assets/mnist-classifier.pt, fetched when missing (from $MNIST_ASSET_CACHE when set).
set -euo pipefail

duration=10 connections=16 soak=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --soak) soak=$2; shift 2 ;;
    *) echo "usage: $0 [--duration SECONDS] [--connections N] [--soak SECONDS]" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
. scripts/lib/served-address.sh
for tool in wrk curl taskset python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install $tool" >&2; exit 1; }
done
cargo build --release --locked --bin max-mnist
bin=target/release/max-mnist
[ -f assets/mnist-classifier.pt ] || "$bin" fetch-assets   # it reads MNIST_ASSET_CACHE itself

work=$(mktemp -d)
multipart_type=$(python3 scripts/loadtest/make-bodies.py samples "$work")
net_mar=${MNIST_TORCHSERVE_DIR:+$MNIST_TORCHSERVE_DIR/mnist.mar}
served=mnist=assets/mnist-classifier.pt
[ -n "$net_mar" ] && served+=",net=$net_mar"
mobilenet=${MNIST_ONNX_DIR:+$MNIST_ONNX_DIR/mobilenet_v3_small.onnx}
[ -n "$mobilenet" ] && served+=",mobilenet=$mobilenet"
models=(--models "$served")
"$bin" serve --host 127.0.0.1 --port 0 "${models[@]}" >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
base=$(served_address "$work/server.log" "$server")

rss_kb() { awk -v field="$1:" '$1 == field { print $2 }' "/proc/$server/status"; }
failures=0
pin=()
declare -A rate

# scenario NAME CONNECTIONS PATH EXPECTED-REGEX [METHOD CONTENT-TYPE BODY-FILE [HEADER]]
scenario() {
  local name=$1 conns=$2 path=$3 expected=$4 method=${5:-GET} type=${6:-} body=${7:-} extra=${8:-}
  local threads=$((conns < 2 ? 1 : 2)) out="$work/wrk.out" answer
  local args=(-t"$threads" -c"$conns" -d"${duration}s" --latency) headers=(-H "Content-Type: $type")
  [ -n "$extra" ] && headers+=(-H "$extra")
  if [ -n "$body" ]; then
    answer=$(curl -s -X "$method" "${headers[@]}" --data-binary @"$body" "$base$path")
    BODY_FILE=$body METHOD=$method CONTENT_TYPE=$type EXTRA_HEADER=$extra \
      "${pin[@]}" wrk "${args[@]}" -s scripts/loadtest/body.lua "$base$path" >"$out"
  else
    answer=$(curl -s "$base$path")
    "${pin[@]}" wrk "${args[@]}" "$base$path" >"$out"
  fi
  if ! grep -Eq "$expected" <<<"$answer"; then
    echo "$name: unexpected answer ${answer:0:300}" >&2
    failures=$((failures + 1))
  fi
  local rps p50 p99 non2xx errors
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  p50=$(awk '$1 == "50%" { print $2 }' "$out")
  p99=$(awk '$1 == "99%" { print $2 }' "$out")
  non2xx=$(awk -F: '/Non-2xx or 3xx responses/ { print $2 + 0 }' "$out")
  errors=$(awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out")
  non2xx=${non2xx:-0} errors=${errors:-0}
  [ "$non2xx" -eq 0 ] && [ "$errors" -eq 0 ] || failures=$((failures + 1))
  rate[$name]=$rps
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$conns" "$rps" "$p50" "$p99" "$((non2xx + errors))"
}

echo
echo "wrk, ${duration} s per row, on $(nproc) cores shared with the server"
echo
echo '| scenario | connections | req/s | p50 | p99 | errors |'
echo '|---|---|---|---|---|---|'
scenario "GET /ping" "$connections" /ping '"status"'
scenario "POST /model/predict" "$connections" /model/predict '"prediction": ?7' POST "$multipart_type" "$work/predict.multipart"
scenario "POST /model/predict, 1 connection" 1 /model/predict '"prediction": ?7' POST "$multipart_type" "$work/predict.multipart"
scenario "PUT /predictions/mnist" "$connections" /predictions/mnist '^7$' PUT image/png "$work/7.png"
scenario "KServe v1 :predict, 64 instances" "$connections" /v1/models/mnist:predict '"predictions": ?\[0, ?1, ?2' POST application/json "$work/v1-64.json"
if [ -n "$net_mar" ]; then
  scenario "PUT /predictions/net (TorchServe's Net)" "$connections" /predictions/net '^7$' PUT image/png "$work/7.png"
  scenario "PUT /predictions/net, 1 connection" 1 /predictions/net '^7$' PUT image/png "$work/7.png"
  # Each model's expensive work holds its own slots: MAX's answers must not queue behind Net's.
  half=$(((connections + 1) / 2))
  BODY_FILE=$work/7.png METHOD=PUT CONTENT_TYPE=image/png \
    wrk -t1 -c"$half" -d"$((duration + 2))s" -s scripts/loadtest/body.lua "$base/predictions/net" >"$work/net-load.out" &
  net_load=$!
  sleep 1
  scenario "POST /model/predict while /predictions/net is loaded" "$half" /model/predict '"prediction": ?7' POST "$multipart_type" "$work/predict.multipart"
  wait "$net_load"
  if grep -Eq "Non-2xx|Socket errors" "$work/net-load.out"; then failures=$((failures + 1)); fi
  net_meanwhile=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$work/net-load.out")
fi
v2_224=(POST application/octet-stream "$work/v2-224.bin"
  "Inference-Header-Content-Length: $(cat "$work/v2-224.length")")
mobilenet_answer='"name": ?"predict"'
if [ -n "$mobilenet" ]; then
  scenario "KServe v2 :infer mobilenet, FP32 [1,3,224,224] binary" "$connections" /v2/models/mobilenet/infer "$mobilenet_answer" "${v2_224[@]}"
fi
# On a VM, waking a process on another core can cost ~100 µs per round trip (a loopback ping-pong
# between two processes: ~106 µs p50 across cores, ~20 µs on one). Pinning the server and wrk to
# one core shows the server's own latency.
taskset -a -p -c 0 "$server" >/dev/null
pin=(taskset -c 0)
scenario "GET /ping, 1 connection, one core" 1 /ping '"status"'
scenario "POST /model/predict, 1 connection, one core" 1 /model/predict '"prediction": ?7' POST "$multipart_type" "$work/predict.multipart"
if [ -n "$mobilenet" ]; then
  scenario "KServe v2 :infer mobilenet, 1 connection, one core" 1 /v2/models/mobilenet/infer "$mobilenet_answer" "${v2_224[@]}"
fi
pin=()
taskset -a -p -c "0-$(($(nproc) - 1))" "$server" >/dev/null
echo
awk -v predict="${rate["POST /model/predict"]}" -v ping="${rate["GET /ping"]}" \
  'BEGIN { printf "predict / ping rate: %.2f\n", predict / ping }'
[ -n "$net_mar" ] && echo "meanwhile PUT /predictions/net, $half connections: $net_meanwhile req/s"
if [ -n "$mobilenet" ]; then
  awk -v cores="$(nproc)" -v conns="$connections" \
    -v loaded="${rate["KServe v2 :infer mobilenet, FP32 [1,3,224,224] binary"]}" \
    -v single="${rate["KServe v2 :infer mobilenet, 1 connection, one core"]}" 'BEGIN {
      if (single <= 0) { print "MobileNetV3-small: no one-core rate was measured"; exit }
      target = 0.8 * cores * single
      printf "MobileNetV3-small: %d req/s at %d connections; one-thread time %.2f ms (1 connection, server and wrk on one core); target 0.8 x %d cores / %.2f ms = %.0f req/s: %s (%.2f of cores / one-thread time; wrk shares the %d cores with the server)\n",
        loaded, conns, 1000 / single, cores, 1000 / single, target,
        (loaded >= target ? "met" : "NOT met"), loaded / (cores * single), cores
    }'
fi
echo "server peak RSS: $(($(rss_kb VmHWM) / 1024)) MiB (VmHWM), now $(($(rss_kb VmRSS) / 1024)) MiB"

if [ "$soak" -gt 0 ]; then
  echo
  echo "soak: POST /model/predict, $connections connections, $soak s; RSS every 5 s (MiB):"
  BODY_FILE=$work/predict.multipart METHOD=POST CONTENT_TYPE=$multipart_type \
    wrk -t2 -c"$connections" -d"${soak}s" --latency -s scripts/loadtest/body.lua \
    "$base/model/predict" >"$work/soak.out" &
  load=$!
  samples=()
  while kill -0 "$load" 2>/dev/null; do
    samples+=("$(($(rss_kb VmRSS) / 1024))")
    sleep 5
  done
  wait "$load"
  echo "${samples[*]}"
  grep -E "Requests/sec|Non-2xx|Socket errors|^ +(50|99)%" "$work/soak.out" || true
  if grep -Eq "Non-2xx|Socket errors" "$work/soak.out"; then failures=$((failures + 1)); fi
fi

if [ "$failures" -gt 0 ]; then
  echo "loadtest: $failures scenario(s) had errors or unexpected answers; server log: " >&2
  tail -20 "$work/server.log" >&2
  exit 1
fi
