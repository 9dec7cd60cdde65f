#!/usr/bin/env bash
# The main job, end to end on one machine: gatehouse issues tokens at /token
# and decides every request that a real Envoy sends to an upstream echo
# server. Installs Envoy (into .venv), builds gatehouse, applies
# examples/policy.yaml to a fresh SQLite store, starts gatehouse, the echo
# upstream and Envoy, then sends real requests through Envoy and checks each
# status. Exits non-zero if any status differs from the expected one.
#
# Work files (config, database, key-encryption key, logs) go to .gatehouse/demo,
# which is wiped first.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

work="${repo_root}/.gatehouse/demo"
target_dir="${CARGO_TARGET_DIR:-${repo_root}/target}"
gatehouse_bin="${target_dir}/debug/gatehouse"
echo_bin="${target_dir}/debug/examples/echo_upstream"
envoy_bin="${repo_root}/.venv/bin/envoy"

http_addr="127.0.0.1:9000"   # gatehouse /token, /jwks, /readyz
grpc_addr="127.0.0.1:9001"   # gatehouse ext_authz (must match envoy/envoy.yaml)
envoy_addr="127.0.0.1:10000" # Envoy listener (envoy/envoy.yaml)
admin_addr="127.0.0.1:9901"  # Envoy admin (envoy/envoy.yaml)
echo_addr="127.0.0.1:8081"   # upstream echo server (envoy/envoy.yaml)

invoice="/v1/invoices/inv-1001"
# What the service client invoice-service is expected to get for GET ${invoice}.
service_expect=200

step() { printf '\n==> %s\n' "$*"; }
die() {
    echo "demo: error: $*" >&2
    exit 1
}

# --- install and build -------------------------------------------------------

step "Installing Envoy"
scripts/install-envoy.sh

step "Building gatehouse and the echo upstream"
cargo build --bins --examples

for bin in "${gatehouse_bin}" "${echo_bin}" "${envoy_bin}"; do
    [[ -x "${bin}" ]] || die "expected executable ${bin} after the build"
done
command -v curl >/dev/null 2>&1 || die "curl not found"
command -v python3 >/dev/null 2>&1 || die "python3 not found"
[[ -f examples/policy.yaml ]] || die "examples/policy.yaml not found"

# --- ports --------------------------------------------------------------------

port_in_use() {
    # True when something accepts TCP connections on host:port.
    local host="${1%:*}" port="${1##*:}"
    (exec 3<>"/dev/tcp/${host}/${port}") 2>/dev/null
}

busy=()
for addr in "${http_addr}" "${grpc_addr}" "${envoy_addr}" "${admin_addr}" "${echo_addr}"; do
    if port_in_use "${addr}"; then
        busy+=("${addr}")
    fi
done
if ((${#busy[@]} > 0)); then
    die "these addresses are already in use: ${busy[*]}. The demo needs ports 9000, 9001, 9901, 10000 and 8081 on 127.0.0.1; stop whatever listens there (another demo run?) and try again."
fi

# --- fresh work dir, config, policy ---------------------------------------------

step "Preparing ${work}"
rm -rf "${work}"
mkdir -p "${work}"

# Relative paths resolve in ${work}: gatehouse runs with it as working directory.
cat >"${work}/gatehouse.toml" <<EOF
[server]
grpc_addr = "${grpc_addr}"
http_addr = "${http_addr}"

[store]
url = "sqlite://gatehouse.db"

[keys]
encryption_key_path = "gatehouse-encryption-key"

[tokens]
issuer = "http://${http_addr}"
audience = "invoices-api"
EOF
echo "config: ${work}/gatehouse.toml"

step "Applying examples/policy.yaml"
if ! (cd "${work}" && "${gatehouse_bin}" apply --config gatehouse.toml "${repo_root}/examples/policy.yaml") \
    >"${work}/apply.out" 2>"${work}/apply.err"; then
    cat "${work}/apply.out" "${work}/apply.err" >&2
    die "gatehouse apply failed"
fi
# Show the output with client secrets masked.
sed -E 's/(client_secret=)[^[:space:]]+/\1<hidden>/' "${work}/apply.out"

# Lines look like:
#   created client "invoice-service": client_id=ID client_secret=SECRET
#   created client "invoices-web": client_id=ID
client_field() {
    local name="$1" field="$2"
    sed -nE "s/^created client \"${name}\": .*${field}=([^[:space:]]+).*$/\\1/p" "${work}/apply.out" | head -n 1
}
service_id="$(client_field invoice-service client_id)"
service_secret="$(client_field invoice-service client_secret)"
web_id="$(client_field invoices-web client_id)"
[[ -n "${service_id}" && -n "${service_secret}" ]] \
    || die "could not read invoice-service's client_id/client_secret from the apply output"
[[ -n "${web_id}" ]] || die "could not read invoices-web's client_id from the apply output"

# --- start everything -------------------------------------------------------------

pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "${pid}" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "${pid}" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "Starting gatehouse, the echo upstream and Envoy (logs in ${work})"
(cd "${work}" && exec "${gatehouse_bin}" serve --config gatehouse.toml) >"${work}/gatehouse.log" 2>&1 &
pids+=("$!")
gatehouse_pid="$!"
"${echo_bin}" --addr "${echo_addr}" >"${work}/echo_upstream.log" 2>&1 &
pids+=("$!")
echo_pid="$!"
"${envoy_bin}" -c "${repo_root}/envoy/envoy.yaml" --use-dynamic-base-id --log-level warn \
    >"${work}/envoy.log" 2>&1 &
pids+=("$!")
envoy_pid="$!"

wait_ready() {
    # wait_ready NAME PID URL: polls URL (any HTTP answer for the echo server,
    # 200 otherwise) for up to 30 s while the process is alive.
    local name="$1" pid="$2" url="$3" log="$4" deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        if ! kill -0 "${pid}" 2>/dev/null; then
            echo "--- last lines of ${log}:" >&2
            tail -n 30 "${log}" >&2 || true
            die "${name} exited during start-up"
        fi
        if curl -fsS --max-time 2 -o /dev/null "${url}" 2>/dev/null; then
            echo "${name} is ready (${url})"
            return 0
        fi
        sleep 0.2
    done
    echo "--- last lines of ${log}:" >&2
    tail -n 30 "${log}" >&2 || true
    die "${name} not ready after 30 s (${url})"
}
wait_ready gatehouse "${gatehouse_pid}" "http://${http_addr}/readyz" "${work}/gatehouse.log"
wait_ready "echo upstream" "${echo_pid}" "http://${echo_addr}/" "${work}/echo_upstream.log"
wait_ready envoy "${envoy_pid}" "http://${admin_addr}/ready" "${work}/envoy.log"

# --- helpers for requests -----------------------------------------------------------

failures=0

json_field() {
    # json_field FILE FIELD: prints a top-level field of a JSON object.
    python3 - "$1" "$2" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    value = json.load(f).get(sys.argv[2])
print("" if value is None else value if isinstance(value, str) else json.dumps(value))
PY
}

indent() { sed 's/^/      /'; }

pretty_json() {
    python3 - "$1" <<'PY' 2>/dev/null || cat "$1"
import json, sys
with open(sys.argv[1]) as f:
    print(json.dumps(json.load(f), indent=2))
PY
}

token_summary() {
    # Prints the token response without the token itself.
    python3 - "$1" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    body = json.load(f)
resources = body.get("resources") or []
print(f"token_type={body.get('token_type')} expires_in={body.get('expires_in')} "
      f"scope={body.get('scope')!r} access_token=<{len(body.get('access_token', ''))} chars>")
print(f"resources: {len(resources)}")
for r in resources[:5]:
    print(f"  {r.get('action', '?'):6} {r.get('url', '?'):32} type={r.get('type')} "
          f"name={r.get('name')} id={r.get('id')}")
if len(resources) > 5:
    print(f"  ... and {len(resources) - 5} more")
PY
}

get_token() {
    # get_token LABEL OUTVAR CURL-ARGS...: POST /token, prints a summary and
    # stores the access token in OUTVAR.
    local label="$1" outvar="$2"
    shift 2
    local body="${work}/token-${label}.json" status
    status="$(curl -sS --max-time 10 -o "${body}" -w '%{http_code}' "$@" "http://${http_addr}/token")" || true
    echo "${label}  POST /token -> ${status}"
    if [[ "${status}" != 200 ]]; then
        indent <"${body}"
        echo
        die "token request for ${label} failed with ${status}"
    fi
    token_summary "${body}" | indent
    local access_token
    access_token="$(json_field "${body}" access_token)"
    [[ -n "${access_token}" ]] || die "no access_token in the token response for ${label}"
    printf -v "${outvar}" '%s' "${access_token}"
}

call() {
    # call LABEL METHOD PATH TOKEN EXPECTED [CURL-ARGS...]: one request
    # through Envoy; prints a short block and counts mismatches.
    local label="$1" method="$2" path="$3" token="$4" expected="$5"
    shift 5
    local body="${work}/resp.body" headers="${work}/resp.headers" status
    local args=(-sS --max-time 10 -o "${body}" -D "${headers}" -w '%{http_code}' -X "${method}")
    if [[ -n "${token}" ]]; then
        args+=(-H "Authorization: Bearer ${token}")
    fi
    status="$(curl "${args[@]}" "$@" "http://${envoy_addr}${path}")" || true
    local mark="ok"
    if [[ "${status}" != "${expected}" ]]; then
        mark="UNEXPECTED, wanted ${expected}"
        failures=$((failures + 1))
    fi
    printf '\n%-14s %-6s %s -> %s  (%s)\n' "${label}" "${method}" "${path}" "${status}" "${mark}"
    case "${status}" in
        200)
            echo "    x-gatehouse-* headers the upstream saw:"
            python3 - "${body}" <<'PY' | indent
import json, sys
with open(sys.argv[1]) as f:
    headers = json.load(f).get("headers", {})
for name in sorted(headers):
    if name.startswith("x-gatehouse-"):
        for value in headers[name]:
            print(f"{name}: {value}")
PY
            local obligations
            obligations="$(grep -i '^x-gatehouse-obligations:' "${headers}" | tr -d '\r' || true)"
            if [[ -n "${obligations}" ]]; then
                echo "    returned to the client: ${obligations}"
            fi
            ;;
        *)
            local challenge
            challenge="$(grep -i '^www-authenticate:' "${headers}" | tr -d '\r' || true)"
            echo "    ${challenge:-(no WWW-Authenticate header)}"
            echo "    body:"
            pretty_json "${body}" | indent
            ;;
    esac
}

# --- the demo ------------------------------------------------------------------------

step "Service client: client_credentials with HTTP Basic (curl -u)"
service_token=""
get_token invoice-service service_token -u "${service_id}:${service_secret}" \
    -d grant_type=client_credentials
call invoice-service GET "${invoice}" "${service_token}" "${service_expect}"

for account in alice bulk-auditor; do
    case "${account}" in
        alice) password="alice-demo-password" ;;
        bulk-auditor) password="auditor-demo-password" ;;
    esac
    step "${account}: password grant through the public client invoices-web"
    token=""
    get_token "${account}" token -d grant_type=password -d "client_id=${web_id}" \
        -d "username=${account}" --data-urlencode "password=${password}"

    # A client-sent decision header must never reach the upstream.
    call "${account}" GET "${invoice}" "${token}" 200 -H "x-gatehouse-subject: spoofed-by-client"
    if grep -q 'spoofed-by-client' "${work}/resp.body"; then
        echo "    UNEXPECTED: the client's own x-gatehouse-subject reached the upstream"
        failures=$((failures + 1))
    fi
    call "${account}" DELETE "${invoice}" "${token}" 403
    call "${account}" GET "${invoice}" "" 401
done

echo
if ((failures > 0)); then
    echo "demo: ${failures} check(s) did not go as expected; logs are in ${work}" >&2
    exit 1
fi
echo "demo: all requests answered as expected (logs in ${work}; Envoy's access log is ${work}/envoy.log)"
