# max-mnist: docker build -t max-pytorch-mnist . && docker run -it -p 5000:5000 max-pytorch-mnist
#
# Build args, as MAX's:
#   model_bucket           where the weights archive lives (default: the upstream model bucket)
#   model_file             the archive's name (default: mnist-classifier.tar.gz)
#   use_pre_trained_model  false: use the files in custom_assets/ instead of downloading
# The weights are checked against sha512sums.txt during the build: a mismatch fails it.
#   onnxruntime_wheel_url, onnxruntime_wheel_sha256
#                          the onnxruntime wheel whose libonnxruntime.so serves ONNX models (default: PyPI's
#                          1.32.0 for CPython 3.11 on x86_64; on arm64 pass the manylinux_2_28_aarch64 wheel);
#                          the wheel is checked against the SHA-256 before anything is extracted.
#
# Other models, as `torchserve --models`: mount a model store and name them at run time, e.g.
#   docker run -p 5000:5000 -v "$PWD/model_store:/model_store:ro" -e MODELS=mnist=mnist.mar max-pytorch-mnist
# TorchServe's own command works too (`torchserve` is on the PATH), e.g. KServe's layout:
#   docker run -p 8085:8085 -v "$PWD/models:/mnt/models:ro" max-pytorch-mnist \
#     torchserve --start --model-store=/mnt/models/model-store --ts-config=/mnt/models/config/config.properties
ARG RUST_IMAGE=rust:1-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ONNX Runtime's library, from the pinned wheel (a zip). First, and apart from the sources, so that its layer
# stays cached across source changes and a wrong wheel fails the build before anything is compiled.
FROM ${RUNTIME_IMAGE} AS onnxruntime
ARG onnxruntime_wheel_url=https://files.pythonhosted.org/packages/1d/46/e6f356c9539d2eed44126de3421a81e217da2ad91b22dc11b379cb1e384f/onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl
ARG onnxruntime_wheel_sha256=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        ca-certificates curl unzip >/dev/null \
    && mkdir /onnxruntime && cd /onnxruntime \
    && curl -fsSL --retry 3 -o onnxruntime.whl "$onnxruntime_wheel_url" \
    && if ! echo "$onnxruntime_wheel_sha256  onnxruntime.whl" | sha256sum -c -; then \
         echo "the onnxruntime wheel from $onnxruntime_wheel_url has SHA-256 $(sha256sum onnxruntime.whl | cut -d' ' -f1)," \
              "not the pinned $onnxruntime_wheel_sha256: refusing it (pass the right onnxruntime_wheel_sha256 for another wheel)" >&2; \
         exit 1; \
       fi \
    && unzip -q -j onnxruntime.whl 'onnxruntime/capi/libonnxruntime.so.*' \
    && mv libonnxruntime.so.* libonnxruntime.so && rm onnxruntime.whl

# The manifests alone, with stub sources: the builder compiles the dependencies from them in a layer that
# a change to our sources does not invalidate. (Every crate's Cargo.toml is found, so new crates need no edit;
# bench targets get stubs too, since cargo refuses a manifest whose [[bench]] file is missing.)
FROM ${RUNTIME_IMAGE} AS manifests
COPY . /context
RUN cd /context && mkdir /manifests && cp Cargo.lock /manifests/ \
    && find . -name Cargo.toml -not -path './target/*' -exec cp --parents {} /manifests/ \; \
    && cd /manifests && for dir in $(find . -name Cargo.toml -exec dirname {} \;); do \
         mkdir -p "$dir/src" && touch "$dir/src/lib.rs"; \
       done \
    && for bench in $(cd /context && find . -path '*/benches/*.rs' -not -path './target/*'); do \
         mkdir -p "$(dirname "$bench")" && echo 'fn main() {}' > "$bench"; \
       done \
    && echo 'fn main() {}' > src/main.rs

# Few instructions on purpose: on storage drivers that copy layers (vfs), each RUN or COPY copies the tree.
FROM ${RUST_IMAGE} AS builder
ENV CARGO_PROFILE_RELEASE_STRIP=true CARGO_TERM_COLOR=never
COPY --from=manifests /manifests /build
RUN cd /build && cargo build --release --locked --bin max-mnist \
    && rm -rf src core/src api/src target/release/.fingerprint/max-mnist*

COPY . /build
# The binary moves out and target/ goes, so the layers after this one stay small.
RUN cd /build && cargo build --release --locked --bin max-mnist \
    && mv target/release/max-mnist /usr/local/bin/ && rm -rf target

ARG model_bucket=https://github.com/xuhdev/max-pytorch-mnist/raw/master/pretrained-model
ARG model_file=mnist-classifier.tar.gz
ARG use_pre_trained_model=true
RUN cd /build && if [ "$use_pre_trained_model" = "true" ]; then \
        max-mnist fetch-assets --bucket "$model_bucket" --file "$model_file"; \
    else \
        [ -d custom_assets ] || { echo "use_pre_trained_model=false needs a custom_assets/ folder" >&2; exit 1; }; \
        cp -r custom_assets/. assets/ && max-mnist verify-assets --skip-missing; \
    fi

FROM ${RUNTIME_IMAGE}
WORKDIR /app
COPY --from=builder /usr/local/bin/max-mnist /usr/local/bin/max-mnist
COPY --from=builder /build/scripts/torchserve /usr/local/bin/torchserve
COPY --from=builder /build/config.toml /build/sha512sums.txt ./
COPY --from=builder /build/assets/ ./assets/
COPY --from=onnxruntime /onnxruntime/libonnxruntime.so /usr/local/lib/onnxruntime/
ENV HOST=0.0.0.0 PORT=5000 RUST_LOG=info MODEL_STORE=/model_store \
    ORT_DYLIB_PATH=/usr/local/lib/onnxruntime/libonnxruntime.so
USER 10001:10001
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["max-mnist", "healthcheck"]
CMD ["max-mnist", "serve"]
