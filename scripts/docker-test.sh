#!/usr/bin/env bash
# Builds the Docker image for real and checks it as a user would: weights fetched and verified at build
# time from a loopback bucket, a read-only non-root container that answers /ping, /model/metadata and a
# prediction for every sample, stops within 10 s, and builds against a tampered archive and a tampered
# onnxruntime wheel that fail. With TorchServe's example folder it also runs the image on that folder's
# mnist.mar, named by MODELS; with the ONNX folder, on its squeezenet1_1.mar through ONNX Runtime.
# Usage: scripts/docker-test.sh DIR_WITH_mnist-classifier.tar.gz [DIR_WITH_mnist.mar [DIR_WITH_squeezenet1_1.mar]]
# Needs a Docker engine; `docker build --network host` must reach 127.0.0.1, crates.io, PyPI and Debian's
# archive, and this host PyPI too (it downloads the pinned wheel to tamper with it).
# It removes what it made — its containers, its images and the layers its builds created — and
# nothing else of the engine's.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/docker-test.sh DIR_WITH_mnist-classifier.tar.gz [DIR_WITH_mnist.mar [DIR_WITH_squeezenet1_1.mar]]"
assets=${1:?$usage}
torchserve=${2:-}
onnx=${3:-}
image=max-pytorch-mnist:test-$$
bad_image=max-pytorch-mnist:tampered-$$
bad_wheel_image=max-pytorch-mnist:tampered-wheel-$$
work=$(mktemp -d)
containers=()
server_pid=""

# The layers a build made: the legacy builder prints each step's image as " ---> ID" — after
# " ---> Using cache" when it reused one, and for a FROM step the base image's own ID — so those two
# are skipped. Only untagged images are removed, so a base image is never touched.
built_layers() {
  awk '/^Step [0-9]+\/[0-9]+ : FROM / { base = 1; next }
       /^Step / { base = 0 }
       /^ ---> Using cache/ { cached = 1; next }
       /^ ---> [0-9a-f]+$/ { if (!cached && !base) print $2; cached = 0 }' "$@" 2>/dev/null
}
untagged() {
  while read -r id; do
    [ "$(docker image inspect --format '{{len .RepoTags}}' "$id" 2>/dev/null)" = 0 ] && echo "$id"
  done
}
cleanup() {
  [ ${#containers[@]} -eq 0 ] || docker rm -f "${containers[@]}" >/dev/null 2>&1 || true
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  docker rmi -f "$image" "$bad_image" "$bad_wheel_image" >/dev/null 2>&1 || true
  # Children before parents; a layer already gone with its image is skipped.
  built_layers "$work/good.log" "$work/bad.log" "$work/bad-wheel.log" | tac | untagged | xargs -r docker rmi >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "docker-test: FAILED: $*" >&2; exit 1; }
# The host port Docker published the container's 5000 on.
published_port() { docker port "$1" 5000/tcp | head -1 | sed 's/.*://'; }
wait_for_ping() {
  local port=$1 start_ns=$2 container=$3
  until curl -sf "http://127.0.0.1:$port/ping" >/dev/null; do
    [ $(( ($(date +%s%N) - start_ns) / 1000000000 )) -lt 30 ] || { docker logs "$container"; fail "no /ping within 30 s"; }
    sleep 0.05
  done
}

# A loopback bucket: the real archive, and a tampered one (the weights' last byte flipped).
mkdir -p "$work/good" "$work/bad/x"
cp "$assets/mnist-classifier.tar.gz" "$work/good/"
tar -xzf "$assets/mnist-classifier.tar.gz" -C "$work/bad/x"
python3 - "$work/bad/x/mnist-classifier.pt" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read()); data[-1] ^= 1
open(path, "wb").write(data)
PY
tar -czf "$work/bad/mnist-classifier.tar.gz" -C "$work/bad/x" mnist-classifier.pt
# And the pinned onnxruntime wheel, one byte in its middle flipped.
wheel_url=$(sed -n 's/^ARG onnxruntime_wheel_url=//p' Dockerfile)
[ -n "$wheel_url" ] || fail "no ARG onnxruntime_wheel_url=… in the Dockerfile"
curl -fsSL --retry 3 -o "$work/bad/onnxruntime.whl" "$wheel_url" || fail "cannot download $wheel_url"
python3 - "$work/bad/onnxruntime.whl" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read()); data[len(data) // 2] ^= 1
open(path, "wb").write(data)
PY
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work" >"$work/bucket.log" 2>&1 &
server_pid=$!
bucket_port=""
for _ in $(seq 100); do
  bucket_port=$(grep -o 'port [0-9]*' "$work/bucket.log" | head -1 | cut -d' ' -f2) || true
  [ -n "$bucket_port" ] && break
  sleep 0.1
done
[ -n "$bucket_port" ] || fail "the loopback bucket did not start: $(cat "$work/bucket.log")"

start=$(date +%s)
docker build --force-rm --network host --build-arg "model_bucket=http://127.0.0.1:$bucket_port/good" -t "$image" . \
  >"$work/good.log" 2>&1 || { tail -40 "$work/good.log"; fail "the image does not build"; }
build_seconds=$(( $(date +%s) - start ))
size_mb=$(( $(docker image inspect --format '{{.Size}}' "$image") / 1000000 ))
echo "docker-test: built in ${build_seconds}s, image ${size_mb} MB"

start_ns=$(date +%s%N)
container=$(docker run -d --read-only --health-interval 1s -p 127.0.0.1::5000 "$image")
containers+=("$container")
port=$(published_port "$container")
wait_for_ping "$port" "$start_ns" "$container"
echo "docker-test: first /ping $(( ($(date +%s%N) - start_ns) / 1000000 )) ms after docker run"

curl -sf "http://127.0.0.1:$port/ping" | grep -q '"Healthy"' || fail "/ping"
curl -sf "http://127.0.0.1:$port/model/metadata" | grep -q '"Image Classification"' || fail "/model/metadata"
for digit in 0 1 2 3 4 5 6 7 8 9; do
  answer=$(curl -sf -F "file=@samples/$digit.png" "http://127.0.0.1:$port/model/predict")
  echo "$answer" | grep -q "^{\"status\":\"ok\",\"predictions\":\[{\"prediction\":$digit," || fail "sample $digit: $answer"
done
echo "docker-test: all ten samples classified right"
uid=$(docker exec "$container" id -u)
[ "$uid" != "0" ] || fail "the container runs as root"
echo "docker-test: runs as uid $uid, read-only root filesystem"
for _ in $(seq 30); do
  [ "$(docker inspect --format '{{.State.Health.Status}}' "$container")" = healthy ] && break
  sleep 1
done
[ "$(docker inspect --format '{{.State.Health.Status}}' "$container")" = healthy ] || fail "HEALTHCHECK never passed"
echo "docker-test: HEALTHCHECK (max-mnist healthcheck) reports healthy"

start_ns=$(date +%s%N)
docker stop -t 10 "$container" >/dev/null
stop_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
exit_code=$(docker inspect --format '{{.State.ExitCode}}' "$container")
[ "$stop_ms" -lt 10000 ] || fail "docker stop took ${stop_ms} ms"
[ "$exit_code" = 0 ] || fail "exit code $exit_code after SIGTERM"
echo "docker-test: stopped in ${stop_ms} ms, exit code 0"

if [ -n "$torchserve" ]; then
  # TorchServe's model store mounted read-only, the model named by MODELS as `torchserve --models`
  # does; both tokens set, and the management API published (inside a container it must listen on
  # every interface for Docker to reach it).
  start_ns=$(date +%s%N)
  served=$(docker run -d --read-only -p 127.0.0.1::5000 -p 127.0.0.1::8081 \
    -v "$(cd "$torchserve" && pwd):/model_store:ro" -e MODELS=mnist=mnist.mar \
    -e MANAGEMENT_PORT=8081 -e MANAGEMENT_HOST=0.0.0.0 \
    -e INFERENCE_TOKEN=docker-inference-token -e MANAGEMENT_TOKEN=docker-management-token "$image")
  containers+=("$served")
  served_port=$(published_port "$served")
  wait_for_ping "$served_port" "$start_ns" "$served"
  inference=(-H "Authorization: Bearer docker-inference-token")
  models=$(curl -sf "${inference[@]}" "http://127.0.0.1:$served_port/models")
  [ "$models" = '{"models":[{"modelName":"mnist","modelUrl":"mnist.mar"}]}' ] || fail "/models: $models"
  curl -sf "${inference[@]}" "http://127.0.0.1:$served_port/models/mnist" | grep -q '"architecture":"Net"' || fail "/models/mnist is not Net"
  for digit in 0 1 2 3 4 5 6 7 8 9; do
    answer=$(curl -sf "${inference[@]}" -T "samples/$digit.png" "http://127.0.0.1:$served_port/predictions/mnist")
    [ "$answer" = "$digit" ] || fail "mnist.mar, sample $digit: $answer"
  done
  echo "docker-test: MODELS=mnist=mnist.mar serves TorchServe's Net from /model_store, all ten samples right"
  refused=$(curl -s -o /dev/null -w '%{http_code}' -T samples/7.png "http://127.0.0.1:$served_port/predictions/mnist")
  [ "$refused" = 401 ] || fail "a prediction without the token answered $refused"
  management_port=$(docker port "$served" 8081/tcp | head -1 | sed 's/.*://')
  registered=$(curl -sf -X POST -H "Authorization: Bearer docker-management-token" \
    "http://127.0.0.1:$management_port/models?url=mnist_cnn.pt&model_name=net2&initial_workers=1&synchronous=true")
  [ "$registered" = '{"status":"Model \"net2\" Version: 1.0 registered with 1 initial workers"}' ] || fail "register: $registered"
  answer=$(curl -sf "${inference[@]}" -T samples/3.png "http://127.0.0.1:$served_port/predictions/net2")
  [ "$answer" = 3 ] || fail "the registered model answered $answer"
  echo "docker-test: tokens asked for (401 without), mnist_cnn.pt registered from the read-only store at run time and serving"
  docker stop -t 10 "$served" >/dev/null

  # KServe's TorchServe runtime layout (/mnt/models/config/config.properties and
  # /mnt/models/model-store/*.mar, the config KServe's guide writes), started by TorchServe's own
  # command as KServe's runtime starts it: `torchserve` is on the image's PATH.
  mkdir -p "$work/kserve/config" "$work/kserve/model-store"
  cp "$torchserve/mnist.mar" "$work/kserve/model-store/"
  cat >"$work/kserve/config/config.properties" <<'PROPERTIES'
inference_address=http://0.0.0.0:8085
management_address=http://0.0.0.0:8085
metrics_address=http://0.0.0.0:8082
grpc_inference_port=7070
grpc_management_port=7071
enable_metrics_api=true
metrics_format=prometheus
NUM_WORKERS=1
number_of_netty_threads=4
job_queue_size=10
enable_envvars_config=true
install_py_dep_per_model=true
model_store=/mnt/models/model-store
model_snapshot={"name":"startup.cfg","modelCount":1,"models":{"mnist":{"1.0":{"defaultVersion":true,"marName":"mnist.mar","minWorkers":1,"maxWorkers":5,"batchSize":1,"maxBatchDelay":5000,"responseTimeout":120}}}}
PROPERTIES
  chmod 755 "$work" && chmod -R a+rX "$work/kserve"
  start_ns=$(date +%s%N)
  kserve=$(docker run -d --read-only -p 127.0.0.1::8085 -p 127.0.0.1::8082 \
    -v "$work/kserve:/mnt/models:ro" -e TS_SERVICE_ENVELOPE=kservev2 "$image" \
    torchserve --start --model-store=/mnt/models/model-store --ts-config=/mnt/models/config/config.properties)
  containers+=("$kserve")
  kserve_port=$(docker port "$kserve" 8085/tcp | head -1 | sed 's/.*://')
  wait_for_ping "$kserve_port" "$start_ns" "$kserve"
  answer=$(curl -sf -H 'Content-Type: application/json' -d @samples/requests/kserve-guide-v1-mnist.json \
    "http://127.0.0.1:$kserve_port/v1/models/mnist:predict")
  [ "$answer" = '{"predictions":[2]}' ] || fail "KServe layout, v1 predict: $answer"
  curl -sf "http://127.0.0.1:$kserve_port/models" | grep -q '"modelName":"mnist"' || fail "KServe layout: /models on the shared listener"
  metrics_port=$(docker port "$kserve" 8082/tcp | head -1 | sed 's/.*://')
  curl -sf "http://127.0.0.1:$metrics_port/metrics" | grep -q '^ts_inference_requests_total{' || fail "KServe layout: TorchServe's metrics"
  echo "docker-test: torchserve --start on KServe's /mnt/models layout: v1 predict, management and metrics answer"
  docker stop -t 10 "$kserve" >/dev/null
fi

if [ -n "$onnx" ]; then
  # ONNX Runtime's library as the image carries it: everything it links against is in the runtime image.
  missing=$(docker run --rm --entrypoint ldd "$image" /usr/local/lib/onnxruntime/libonnxruntime.so | grep 'not found' || true)
  [ -z "$missing" ] || fail "libonnxruntime.so needs what the image lacks: $missing"
  # TorchServe's image_classifier archive of an ONNX SqueezeNet from a mounted store: the kitten's top 5
  # are ONNX Runtime's on the same pre-processing (reference.json), labels in order, probabilities within 1 %.
  start_ns=$(date +%s%N)
  squeezenet=$(docker run -d --read-only -p 127.0.0.1::5000 \
    -v "$(cd "$onnx" && pwd):/model_store:ro" -e MODELS=squeezenet1_1=squeezenet1_1.mar "$image")
  containers+=("$squeezenet")
  squeezenet_port=$(published_port "$squeezenet")
  wait_for_ping "$squeezenet_port" "$start_ns" "$squeezenet"
  answer=$(curl -sf -T "$onnx/kitten.jpg" "http://127.0.0.1:$squeezenet_port/predictions/squeezenet1_1") \
    || { docker logs "$squeezenet"; fail "squeezenet1_1.mar gave no answer for kitten.jpg"; }
  python3 - "$onnx/reference.json" "$answer" <<'PY' || fail "squeezenet1_1.mar, kitten.jpg: $answer"
import json, sys
expected = json.load(open(sys.argv[1]))["kitten_squeezenet1_1"]["top5"]
answer = json.loads(sys.argv[2])
labels = [entry["label"] for entry in expected]
if list(answer) != labels:
    sys.exit(f"labels {list(answer)}, ONNX Runtime's {labels}")
for entry in expected:
    if abs(answer[entry["label"]] - entry["probability"]) > 0.01 * entry["probability"]:
        sys.exit(f"{entry['label']}: {answer[entry['label']]}, ONNX Runtime's {entry['probability']}")
PY
  metadata=$(curl -sf "http://127.0.0.1:$squeezenet_port/v2/models/squeezenet1_1") || fail "/v2/models/squeezenet1_1"
  python3 - "$metadata" <<'PY' || fail "/v2/models/squeezenet1_1: $metadata"
import json, sys
metadata = json.loads(sys.argv[1])
assert metadata["name"] == "squeezenet1_1", "name"
assert any(output["shape"][-1] == 1000 for output in metadata["outputs"]), "no output of the 1000 classes"
PY
  echo "docker-test: MODELS=squeezenet1_1=squeezenet1_1.mar serves the ONNX SqueezeNet from /model_store: kitten.jpg's top 5 are ONNX Runtime's, /v2/models/squeezenet1_1 answers"
  docker stop -t 10 "$squeezenet" >/dev/null
fi

if docker build --force-rm --network host --build-arg "model_bucket=http://127.0.0.1:$bucket_port/bad" -t "$bad_image" . >"$work/bad.log" 2>&1; then
  fail "a build against a tampered archive succeeded"
fi
# The legacy builder colours its stderr; the check reads the plain text.
sed -i 's/\x1b\[[0-9;]*m//g' "$work/bad.log"
grep -q "assets/mnist-classifier.pt: FAILED" "$work/bad.log" || { cat "$work/bad.log"; fail "the tampered build failed for another reason"; }
echo "docker-test: a tampered archive fails the build: $(grep -m1 'SHA-512 is' "$work/bad.log" | sed 's/^ *//')"

if docker build --force-rm --network host --build-arg "onnxruntime_wheel_url=http://127.0.0.1:$bucket_port/bad/onnxruntime.whl" \
    -t "$bad_wheel_image" . >"$work/bad-wheel.log" 2>&1; then
  fail "a build against a tampered onnxruntime wheel succeeded"
fi
sed -i 's/\x1b\[[0-9;]*m//g' "$work/bad-wheel.log"
grep -q "onnxruntime.whl: FAILED" "$work/bad-wheel.log" || { cat "$work/bad-wheel.log"; fail "the tampered-wheel build failed for another reason"; }
echo "docker-test: a tampered onnxruntime wheel fails the build: $(grep -m1 '^the onnxruntime wheel from' "$work/bad-wheel.log")"
echo "docker-test: 1 passed, 0 failed"
