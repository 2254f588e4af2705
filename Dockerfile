# syntax=docker/dockerfile:1
# The trustwatch operator image: `docker build -t trustwatch:dev .`
# config/manager runs it as `trustwatch run ...` with UID 65532 and a read-only root filesystem.

FROM rust:1-bookworm AS builder
WORKDIR /src
# The whole context (see .dockerignore): Cargo.toml names the test targets, which must exist.
COPY . .
# Registry and target caches survive between builds (BuildKit); the binary is copied out of
# the cache mount so the next stage can use it.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin trustwatch \
 && cp target/release/trustwatch /usr/local/bin/trustwatch

# glibc, libgcc and CA certificates; no shell. Runs as nonroot (65532:65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /usr/local/bin/trustwatch /trustwatch
USER 65532:65532
# 9090: /metrics, 8081: /healthz and /readyz
EXPOSE 9090 8081
ENTRYPOINT ["/trustwatch"]
CMD ["run"]
