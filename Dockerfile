# gatehouse container image: a static-ish release binary on distroless, non-root.
#
#   docker build -t gatehouse:0.1.0 .
#
# The image holds only the binary. Configuration, the policy file and the
# key-encryption key are mounted at run time (see k8s/); nothing secret is
# baked in.

# --- build --------------------------------------------------------------------
# The toolchain is pinned by rust-toolchain.toml (1.95) as well.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rust-toolchain.toml build.rs ./
COPY src ./src
COPY migrations ./migrations
COPY examples ./examples
RUN cargo build --release --locked --bin gatehouse \
    && strip target/release/gatehouse

# --- run ----------------------------------------------------------------------
# glibc, libgcc and CA certificates (for trusted issuers' JWKS over HTTPS); no
# shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/gatehouse /usr/local/bin/gatehouse
# The distroless "nonroot" user, numerically so that runAsNonRoot can verify it.
USER 65532:65532
# 9000: HTTP (/token, /jwks, /healthz, /readyz, /metrics, /ext_authz, /v1/decision)
# 9001: gRPC (ext_authz Check, grpc.health.v1)
EXPOSE 9000 9001
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve", "--config", "/etc/gatehouse/gatehouse.toml"]
