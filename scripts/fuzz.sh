#!/usr/bin/env bash
# Fuzzes gatehouse's parsers and decision core with cargo fuzz (libFuzzer, AddressSanitizer,
# debug assertions on): builds every target in fuzz/, then runs each one for FUZZ_SECONDS
# (default 60) starting from its committed seeds in fuzz/corpus/<target>/.
#
#   scripts/fuzz.sh                               # every target, 60 s each (what CI runs)
#   FUZZ_SECONDS=3600 scripts/fuzz.sh jwt_verify  # one target for an hour
#
# A panic, a failed assertion, a sanitizer report, a timeout or running out of memory fails
# the run; the input that caused it is written to fuzz/artifacts/<target>/ (git-ignored) and
# replays with `cargo fuzz run <target> <file>` in fuzz/. New inputs the fuzzer finds go to a
# scratch directory that is deleted afterwards, so the checkout stays clean; set
# FUZZ_KEEP_CORPUS=DIR to keep them in DIR/<target>/ instead (to merge good ones into the
# seeds by hand).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}/fuzz"

seconds="${FUZZ_SECONDS:-60}"
case "${seconds}" in
'' | *[!0-9]*)
    echo "error: FUZZ_SECONDS must be a whole number of seconds, not '${seconds}'" >&2
    exit 2
    ;;
esac

# cargo fuzz passes nightly-only flags (-Z sanitizer=address, ...) to rustc; the pinned stable
# toolchain accepts them with RUSTC_BOOTSTRAP set.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> Installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

# The dictionary each target mutates with.
dictionary() {
    case "$1" in
    jwt_verify | jwt_claims | jwks_fetched) echo dict/jwt.dict ;;
    authorization_header | path_and_tuple | check_request) echo dict/request.dict ;;
    token_form) echo dict/form.dict ;;
    policy_file) echo dict/policy.dict ;;
    *) echo "" ;;
    esac
}

echo "==> cargo fuzz build"
cargo fuzz build

failed=()
for target in "${targets[@]}"; do
    echo "==> ${target}: ${seconds} s"
    if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
        scratch="${FUZZ_KEEP_CORPUS}/${target}"
        mkdir -p "${scratch}"
    else
        scratch="$(mktemp -d)"
    fi
    options=(-max_total_time="${seconds}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    dict="$(dictionary "${target}")"
    if [ -n "${dict}" ]; then
        options+=(-dict="${dict}")
    fi
    # The first corpus directory receives new inputs; the committed seeds are only read.
    if ! cargo fuzz run "${target}" "${scratch}" "corpus/${target}" -- "${options[@]}"; then
        failed+=("${target}")
    fi
    if [ -z "${FUZZ_KEEP_CORPUS:-}" ]; then
        rm -rf "${scratch}"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing failed for: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "==> fuzzing found nothing in ${#targets[@]} target(s), ${seconds} s each"
