# max-mnist: docker build -t max-pytorch-mnist . && docker run -it -p 5000:5000 max-pytorch-mnist
#
# Build args, as MAX's:
#   model_bucket           where the weights archive lives (default: the upstream model bucket)
#   model_file             the archive's name (default: mnist-classifier.tar.gz)
#   use_pre_trained_model  false: use the files in custom_assets/ instead of downloading
# The weights are checked against sha512sums.txt during the build: a mismatch fails it.
ARG RUST_IMAGE=rust:1-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /build
ENV CARGO_PROFILE_RELEASE_STRIP=true CARGO_TERM_COLOR=never

# Dependencies first, from the manifests alone, so that a change to the sources does not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY core/Cargo.toml core/
COPY api/Cargo.toml api/
RUN mkdir -p src core/src api/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs core/src/lib.rs api/src/lib.rs \
    && cargo build --release --locked --bin max-mnist \
    && rm -rf src core/src api/src target/release/.fingerprint/max-mnist*

COPY . .
RUN cargo build --release --locked --bin max-mnist

ARG model_bucket=https://github.com/xuhdev/max-pytorch-mnist/raw/master/pretrained-model
ARG model_file=mnist-classifier.tar.gz
ARG use_pre_trained_model=true
RUN if [ "$use_pre_trained_model" = "true" ]; then \
        ./target/release/max-mnist fetch-assets --bucket "$model_bucket" --file "$model_file"; \
    else \
        [ -d custom_assets ] || { echo "use_pre_trained_model=false needs a custom_assets/ folder" >&2; exit 1; }; \
        cp -r custom_assets/. assets/ \
        && ./target/release/max-mnist verify-assets --skip-missing; \
    fi

FROM ${RUNTIME_IMAGE}
WORKDIR /app
COPY --from=builder /build/target/release/max-mnist /usr/local/bin/max-mnist
COPY --from=builder /build/config.toml /build/sha512sums.txt ./
COPY --from=builder /build/assets/ ./assets/
ENV HOST=0.0.0.0 PORT=5000 RUST_LOG=info
USER 10001:10001
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["max-mnist", "healthcheck"]
CMD ["max-mnist", "serve"]
