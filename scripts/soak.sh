#!/usr/bin/env bash
# The soak run (method and last results in docs/soak.md). Not part of the test suite.
#
#   scripts/soak.sh                        # 10 minutes
#   SOAK_SECONDS=3600 scripts/soak.sh      # an hour
#
# Builds release binaries, starts gatehouse (SQLite, or Postgres with SOAK_POSTGRES), an echo
# upstream and Envoy (envoy/sidecar.yaml, ports moved), then runs examples/soak.rs: a fixed
# rate of requests through Envoy with many distinct tokens, every answer checked, while the
# signing key is rotated and two policies are applied in turn. Prints one row per minute
# (requests, errors, latency percentiles, gatehouse RSS, events) and a summary; exits non-zero
# on any error (a wrong decision, an unexpected status, an admin step without effect).
#
#   SOAK_SECONDS       600   how long the load runs
#   SOAK_RATE          200   requests per second
#   SOAK_TOKENS        2000  distinct service tokens
#   SOAK_ROTATE_EVERY  120   seconds between key rotations
#   SOAK_APPLY_EVERY   30    seconds between applies (at most 300)
#   SOAK_WINDOW        60    seconds per report row
#   SOAK_POSTGRES      (empty: SQLite) a postgres:// server URL; the database gatehouse_soak is
#                      created there and dropped at the end
#
# Work files and logs go to .gatehouse/soak (wiped first); the report to
# .gatehouse/soak/report.md.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

seconds="${SOAK_SECONDS:-600}"
rate="${SOAK_RATE:-200}"
tokens="${SOAK_TOKENS:-2000}"
rotate_every="${SOAK_ROTATE_EVERY:-120}"
apply_every="${SOAK_APPLY_EVERY:-30}"
window="${SOAK_WINDOW:-60}"
postgres="${SOAK_POSTGRES:-}"
pg_db="gatehouse_soak"
publish_lead=10

work="${repo_root}/.gatehouse/soak"
target_dir="${CARGO_TARGET_DIR:-${repo_root}/target}"
gatehouse_bin="${target_dir}/release/gatehouse"
soak_bin="${target_dir}/release/examples/soak"
echo_bin="${target_dir}/release/examples/echo_upstream"
envoy_bin="${repo_root}/.venv/bin/envoy"
http_port=9300
grpc_port=9301
echo_port=9302
envoy_port=10300
admin_port=19300

for tool in curl python3; do
    command -v "${tool}" >/dev/null 2>&1 || die "${tool} not found"
done
if [[ -n "${postgres}" ]]; then
    command -v psql >/dev/null 2>&1 || die "psql not found (or run without SOAK_POSTGRES)"
fi
if [[ ! -x "${envoy_bin}" ]]; then
    step "Installing Envoy"
    scripts/install-envoy.sh >&2
fi

step "Building release binaries"
cargo build --release --bin gatehouse --example soak --example echo_upstream >&2

for port in "${http_port}" "${grpc_port}" "${echo_port}" "${envoy_port}" "${admin_port}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
        die "port ${port} on 127.0.0.1 is in use (another soak run?)"
    fi
done

rm -rf "${work}"
mkdir -p "${work}"

pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "${pid}" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "${pid}" 2>/dev/null || true
    done
    if [[ -n "${postgres}" ]]; then
        psql -q "${postgres}/postgres" -c "DROP DATABASE IF EXISTS ${pg_db} WITH (FORCE)" \
            >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "Preparing the store (logs in ${work})"
store_url="sqlite://${work}/soak.db"
if [[ -n "${postgres}" ]]; then
    psql -q "${postgres}/postgres" -c "DROP DATABASE IF EXISTS ${pg_db} WITH (FORCE)" >/dev/null
    psql -q "${postgres}/postgres" -c "CREATE DATABASE ${pg_db}" >/dev/null
    store_url="${postgres}/${pg_db}"
fi
cat >"${work}/gatehouse.toml" <<EOF
[server]
grpc_addr = "127.0.0.1:${grpc_port}"
http_addr = "127.0.0.1:${http_port}"

[store]
url = "${store_url}"

[keys]
encryption_key_path = "${work}/encryption-key"
# Short, so that each rotation signs within the run: a rotated key signs after 10 s.
jwks_max_age_seconds = ${publish_lead}
publish_lead_seconds = ${publish_lead}

[tokens]
issuer = "http://127.0.0.1:${http_port}"
audience = "invoices-api"

[log]
level = "warn"
EOF
cp examples/policy.yaml "${work}/policy-a.yaml"
grep -v -- '- { role: invoice-reader, account: alice }' examples/policy.yaml >"${work}/policy-b.yaml"
cmp -s "${work}/policy-a.yaml" "${work}/policy-b.yaml" && die "policy B equals policy A"
"${gatehouse_bin}" apply --config "${work}/gatehouse.toml" "${work}/policy-a.yaml" >"${work}/apply.out"
service_id="$(client_field "${work}/apply.out" invoice-service client_id)"
service_secret="$(client_field "${work}/apply.out" invoice-service client_secret)"
web_id="$(client_field "${work}/apply.out" invoices-web client_id)"
[[ -n "${service_id}" && -n "${service_secret}" && -n "${web_id}" ]] \
    || die "could not read client ids from the apply output"

step "Starting gatehouse, the echo upstream and Envoy"
"${gatehouse_bin}" serve --config "${work}/gatehouse.toml" >"${work}/gatehouse.log" 2>&1 &
gatehouse_pid="$!"
pids+=("${gatehouse_pid}")
wait_http gatehouse "${gatehouse_pid}" "http://127.0.0.1:${http_port}/readyz"

"${echo_bin}" --addr "127.0.0.1:${echo_port}" >"${work}/echo.log" 2>&1 &
pids+=("$!")

sed -e "s/port_value: 10000/port_value: ${envoy_port}/" \
    -e "s/port_value: 9901/port_value: ${admin_port}/" \
    -e "s/port_value: 9001/port_value: ${grpc_port}/" \
    -e "s/port_value: 8081/port_value: ${echo_port}/" \
    envoy/sidecar.yaml >"${work}/envoy.yaml"
"${envoy_bin}" -c "${work}/envoy.yaml" --use-dynamic-base-id --log-level warn \
    >"${work}/envoy.log" 2>&1 &
pids+=("$!")
wait_http envoy "$!" "http://127.0.0.1:${admin_port}/ready"

step "Soak: ${seconds} s at ${rate} requests/s, ${tokens} tokens, rotation every ${rotate_every} s, apply every ${apply_every} s"
status=0
"${soak_bin}" \
    --envoy "http://127.0.0.1:${envoy_port}" \
    --gatehouse "http://127.0.0.1:${http_port}" \
    --gatehouse-pid "${gatehouse_pid}" \
    --gatehouse-bin "${gatehouse_bin}" \
    --config "${work}/gatehouse.toml" \
    --policy-a "${work}/policy-a.yaml" \
    --policy-b "${work}/policy-b.yaml" \
    --service-id "${service_id}" \
    --service-secret "${service_secret}" \
    --web-id "${web_id}" \
    --seconds "${seconds}" \
    --rate "${rate}" \
    --tokens "${tokens}" \
    --rotate-every "${rotate_every}" \
    --apply-every "${apply_every}" \
    --publish-lead "${publish_lead}" \
    --window "${window}" | tee "${work}/report.md" || status=$?

kill -0 "${gatehouse_pid}" 2>/dev/null || die "gatehouse exited during the soak (see ${work}/gatehouse.log)"
if ((status != 0)); then
    die "the soak found errors (report in ${work}/report.md)"
fi
echo "soak: no errors (report in ${work}/report.md)" >&2
