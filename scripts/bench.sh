#!/usr/bin/env bash
# The side-by-side benchmark (results and method in docs/benchmarks.md).
#
#   scripts/bench.sh                 # 3 rounds of 5 s per mode
#   BENCH_ROUNDS=5 BENCH_SECONDS=10 scripts/bench.sh
#
# Builds release binaries, starts one Envoy (envoy/bench/envoy-bench.yaml, one listener per
# mode), the allow-everything baselines (examples/bench_allow.rs) and several gatehouse
# processes on one SQLite store and one Postgres database of its own, then drives HTTP load
# with wrk through Envoy in every mode, alternating the modes over BENCH_ROUNDS rounds, and
# prints the median requests/s and latency percentiles per mode with the ratios the issue
# asks for. Then: gRPC Check called directly (examples/bench_load.rs) at fixed offered rates,
# /token issuance beside `openssl speed rsa2048` on one core, and gatehouse's peak RSS in
# mode 6. Only loopback traffic. Speed on a shared machine is noisy: read the ratios, which
# are measured side by side in one run, not the absolute numbers.
#
# Postgres modes use BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432), create the
# database gatehouse_bench and drop it at the end; BENCH_POSTGRES= (empty) skips them.
# Work files and raw outputs go to .gatehouse/bench, wiped first.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

rounds="${BENCH_ROUNDS:-3}"
seconds="${BENCH_SECONDS:-5}"
connections="${BENCH_CONNECTIONS:-16}"
many_tokens="${BENCH_MANY_TOKENS:-10000}"
postgres="${BENCH_POSTGRES-postgres://postgres@127.0.0.1:5432}"
pg_db="gatehouse_bench"

work="${repo_root}/.gatehouse/bench"
target_dir="${CARGO_TARGET_DIR:-${repo_root}/target}"
gatehouse_bin="${target_dir}/release/gatehouse"
allow_bin="${target_dir}/release/examples/bench_allow"
load_bin="${target_dir}/release/examples/bench_load"
envoy_bin="${repo_root}/.venv/bin/envoy"
issuer="http://127.0.0.1:9200"
audience="invoices-api"

# --- tools and build -----------------------------------------------------------------

if ! command -v wrk >/dev/null 2>&1; then
    step "Installing wrk (Debian package)"
    if [[ "$(id -u)" == 0 ]]; then
        apt-get update -qq && apt-get install -y -qq wrk
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq wrk
    fi
fi
for tool in wrk curl python3 openssl taskset; do
    command -v "${tool}" >/dev/null 2>&1 || die "${tool} not found"
done
if [[ -n "${postgres}" ]]; then
    command -v psql >/dev/null 2>&1 || die "psql not found (or run with BENCH_POSTGRES= to skip Postgres)"
fi

step "Installing Envoy"
scripts/install-envoy.sh >&2

step "Building release binaries"
cargo build --release --bin gatehouse --example bench_allow --example bench_load >&2

rm -rf "${work}"
mkdir -p "${work}/raw"

# --- processes --------------------------------------------------------------------------

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

# gatehouse_config NAME HTTP_PORT GRPC_PORT STORE_URL GRANT_CACHE_CAPACITY
gatehouse_config() {
    cat >"${work}/$1.toml" <<EOF
[server]
grpc_addr = "127.0.0.1:$3"
http_addr = "127.0.0.1:$2"

[store]
url = "$4"
grant_cache_capacity = $5

[keys]
encryption_key_path = "${work}/encryption-key"

[tokens]
issuer = "${issuer}"
audience = "${audience}"
# Tokens are minted once, before the rounds: the longest lifetime gatehouse allows.
ttl_seconds = 3600

[log]
level = "warn"
EOF
}

# start_gatehouse NAME HTTP_PORT [taskset CPU list]
start_gatehouse() {
    local name="$1" http_port="$2" cpus="${3:-}"
    local run=("${gatehouse_bin}" serve --config "${work}/${name}.toml")
    if [[ -n "${cpus}" ]]; then
        run=(taskset -c "${cpus}" "${run[@]}")
    fi
    "${run[@]}" >"${work}/${name}.log" 2>&1 &
    pids+=("$!")
    eval "pid_${name//-/_}=$!"
    wait_http "gatehouse ${name}" "$!" "http://127.0.0.1:${http_port}/readyz"
}

password_token() {
    # password_token HTTP_PORT PUBLIC_CLIENT_ID USERNAME PASSWORD
    curl -fsS --max-time 10 "http://127.0.0.1:$1/token" -d grant_type=password \
        -d "client_id=$2" -d "username=$3" --data-urlencode "password=$4" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

# --- stores and gatehouses ------------------------------------------------------------------

step "Preparing stores and starting gatehouse (logs in ${work})"
sqlite_url="sqlite://${work}/bench.db"
gatehouse_config main 9200 9201 "${sqlite_url}" 100000
gatehouse_config sqlite-nocache 9210 9211 "${sqlite_url}" 0
gatehouse_config many 9240 9241 "${sqlite_url}" 100000
gatehouse_config issue 9250 9251 "${sqlite_url}" 100000
"${gatehouse_bin}" apply --config "${work}/main.toml" examples/policy.yaml >"${work}/apply-sqlite.out"
service_id="$(client_field "${work}/apply-sqlite.out" invoice-service client_id)"
service_secret="$(client_field "${work}/apply-sqlite.out" invoice-service client_secret)"
web_id="$(client_field "${work}/apply-sqlite.out" invoices-web client_id)"
[[ -n "${service_id}" && -n "${service_secret}" && -n "${web_id}" ]] \
    || die "could not read client ids from the apply output"

start_gatehouse main 9200
start_gatehouse sqlite-nocache 9210
start_gatehouse many 9240

if [[ -n "${postgres}" ]]; then
    psql -q "${postgres}/postgres" -c "DROP DATABASE IF EXISTS ${pg_db} WITH (FORCE)" >/dev/null
    psql -q "${postgres}/postgres" -c "CREATE DATABASE ${pg_db}" >/dev/null
    gatehouse_config postgres 9220 9221 "${postgres}/${pg_db}" 100000
    gatehouse_config postgres-nocache 9230 9231 "${postgres}/${pg_db}" 0
    "${gatehouse_bin}" apply --config "${work}/postgres.toml" examples/policy.yaml \
        >"${work}/apply-postgres.out"
    pg_web_id="$(client_field "${work}/apply-postgres.out" invoices-web client_id)"
    start_gatehouse postgres 9220
    start_gatehouse postgres-nocache 9230
fi

"${allow_bin}" --grpc 127.0.0.1:9101 --http 127.0.0.1:9102 --grpc-answered 127.0.0.1:9103 \
    >"${work}/bench_allow.log" 2>&1 &
pids+=("$!")
pid_allow=$!
wait_port bench_allow 9101 "${pid_allow}"
wait_port bench_allow 9103 "${pid_allow}"

step "Minting tokens"
curl -fsS -u "${service_id}:${service_secret}" -d grant_type=client_credentials \
    http://127.0.0.1:9200/token \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' >"${work}/service.tok"
password_token 9200 "${web_id}" bulk-auditor auditor-demo-password >"${work}/auditor.tok"
if [[ -n "${postgres}" ]]; then
    password_token 9220 "${pg_web_id}" bulk-auditor auditor-demo-password >"${work}/auditor-pg.tok"
fi
"${load_bin}" mint --url http://127.0.0.1:9200/token --client-id "${service_id}" \
    --client-secret "${service_secret}" --count "${many_tokens}" >"${work}/many.tok"
[[ "$(sort -u "${work}/many.tok" | wc -l)" -ge "${many_tokens}" ]] || die "minted too few distinct tokens"

step "Starting Envoy"
jwks="$(curl -fsS http://127.0.0.1:9200/jwks)"
python3 - "${jwks}" "${issuer}" "${audience}" >"${work}/envoy-bench.yaml" <<'PY'
import sys
jwks, issuer, audience = sys.argv[1:4]
text = open("envoy/bench/envoy-bench.yaml").read()
print(text.replace("@JWKS@", jwks).replace("@ISSUER@", issuer).replace("@AUDIENCE@", audience))
PY
"${envoy_bin}" -c "${work}/envoy-bench.yaml" --concurrency 1 --use-dynamic-base-id \
    --log-level warn >"${work}/envoy.log" 2>&1 &
pids+=("$!")
pid_envoy=$!
wait_http envoy "$!" http://127.0.0.1:19901/ready

# --- modes ----------------------------------------------------------------------------------

invoice=/v1/invoices/inv-1001
ledger=/v1/ledgers/2016-01/entries/e-1
# id|label|port|token file|path|authorizer process (pid_NAME; empty: none)
modes=(
    "1|Envoy alone|10001|service.tok|${invoice}|"
    "2|ext_authz gRPC, allow-everything tonic|10002|service.tok|${invoice}|allow"
    "2h|ext_authz gRPC, allow-everything answering with gatehouse's permit|10012|service.tok|${invoice}|allow"
    "3|jwt_authn + rbac, no JWT cache|10003|service.tok|${invoice}|"
    "3c|jwt_authn + rbac, JWT cache|10004|service.tok|${invoice}|"
    "4|gatehouse, claims path|10005|service.tok|${invoice}|main"
    "5s|gatehouse, database path, SQLite, warm|10005|auditor.tok|${ledger}|main"
    "5sm|gatehouse, database path, SQLite, every check a miss|10006|auditor.tok|${ledger}|sqlite_nocache"
)
if [[ -n "${postgres}" ]]; then
    modes+=(
        "5p|gatehouse, database path, Postgres, warm|10007|auditor-pg.tok|${ledger}|postgres"
        "5pm|gatehouse, database path, Postgres, every check a miss|10008|auditor-pg.tok|${ledger}|postgres_nocache"
    )
fi
modes+=(
    "6|gatehouse, ${many_tokens} distinct tokens|10009|many.tok|${invoice}|many"
    "7|ext_authz HTTP, naive allow-everything|10010|service.tok|${invoice}|allow"
)
# gatehouse's HTTP ext_authz protocol (src/http/authz.rs), when this tree has it.
gatehouse_http_authz="not available yet"
if grep -rqs "ext_authz" src/http*; then
    modes+=("7g|ext_authz HTTP, gatehouse claims path|10011|service.tok|${invoice}|main")
    gatehouse_http_authz="measured"
fi

# The tokens minted above must outlive the run, or the last modes would measure 401s.
planned=$(( ${#modes[@]} * (rounds * seconds + 2) + 120 ))
((planned < 3300)) || die "about ${planned} s of load would outlive the tokens (3600 s): fewer BENCH_ROUNDS or BENCH_SECONDS"

# Every mode must answer 200 to its token, or the measurement means nothing.
for mode in "${modes[@]}"; do
    IFS='|' read -r id label port tokens path proc <<<"${mode}"
    status="$(curl -s -o /dev/null -w '%{http_code}' \
        -H "Authorization: Bearer $(head -n 1 "${work}/${tokens}")" "http://127.0.0.1:${port}${path}")"
    [[ "${status}" == 200 ]] || die "mode ${id} (${label}) answers ${status}, not 200"
done

run_wrk() {
    # run_wrk ID PORT TOKENS PATH DURATION OUT
    BENCH_TOKENS="${work}/$3" wrk -t1 -c"${connections}" -d"$5" --latency \
        -s envoy/bench/tokens.lua "http://127.0.0.1:$2$4" >"$6"
}

# cpu_ticks PID: user + system CPU time of the process so far, in clock ticks (0 for no PID).
cpu_ticks() {
    if [[ -z "$1" ]]; then
        echo 0
        return
    fi
    # Fields 14 and 15 of /proc/PID/stat, counted after the command name in parentheses.
    local stat
    stat="$(<"/proc/$1/stat")"
    stat="${stat##*) }"
    read -r -a fields <<<"${stat}"
    echo $((fields[11] + fields[12]))
}

step "Warm-up: 2 s per mode"
for mode in "${modes[@]}"; do
    IFS='|' read -r id label port tokens path proc <<<"${mode}"
    run_wrk "${id}" "${port}" "${tokens}" "${path}" 2s "${work}/raw/warmup-${id}.txt"
done

for ((round = 1; round <= rounds; round++)); do
    step "Round ${round}/${rounds}: ${seconds} s per mode, ${connections} connections"
    # Alternate the order between rounds so that no mode always follows the same one.
    order=("${modes[@]}")
    if ((round % 2 == 0)); then
        order=()
        for ((i = ${#modes[@]} - 1; i >= 0; i--)); do order+=("${modes[i]}"); done
    fi
    for mode in "${order[@]}"; do
        IFS='|' read -r id label port tokens path proc <<<"${mode}"
        envoy_before="$(cpu_ticks "${pid_envoy}")"
        authz_pid=""
        if [[ -n "${proc}" ]]; then
            authz_pid_var="pid_${proc}"
            authz_pid="${!authz_pid_var}"
        fi
        authz_before="$(cpu_ticks "${authz_pid}")"
        run_wrk "${id}" "${port}" "${tokens}" "${path}" "${seconds}s" \
            "${work}/raw/round${round}-${id}.txt"
        printf 'envoy_ticks=%s authorizer_ticks=%s ticks_per_s=%s\n' \
            "$(($(cpu_ticks "${pid_envoy}") - envoy_before))" \
            "$(($(cpu_ticks "${authz_pid}") - authz_before))" "$(getconf CLK_TCK)" \
            >"${work}/raw/round${round}-${id}.cpu"
        printf '  mode %-4s %s\n' "${id}" "$(grep 'Requests/sec' "${work}/raw/round${round}-${id}.txt")" >&2
    done
done

# --- gRPC Check directly, issuance, memory ----------------------------------------------------

step "gRPC Check directly (no Envoy): gatehouse claims path and the allow-everything server"
: >"${work}/grpc.txt"
for target in "gatehouse|9201" "allow-everything|9101"; do
    IFS='|' read -r name port <<<"${target}"
    for rate in 1000 5000 0; do
        line="$("${load_bin}" check --addr "http://127.0.0.1:${port}" --tokens "${work}/service.tok" \
            --rate "${rate}" --seconds "${seconds}")"
        echo "${name} ${line}" | tee -a "${work}/grpc.txt" >&2
    done
done
line="$("${load_bin}" check --addr http://127.0.0.1:9241 --tokens "${work}/many.tok" \
    --rate 5000 --seconds "${seconds}")"
echo "gatehouse-${many_tokens}-tokens ${line}" | tee -a "${work}/grpc.txt" >&2

step "Issuance: /token client_credentials on one core, beside openssl speed rsa2048"
start_gatehouse issue 9250 1
taskset -c 0 "${load_bin}" issue --url http://127.0.0.1:9250/token --client-id "${service_id}" \
    --client-secret "${service_secret}" --concurrency 4 --seconds "${seconds}" >"${work}/issue.txt"
taskset -c 1 openssl speed -seconds 3 rsa2048 >"${work}/openssl.txt" 2>/dev/null
cat "${work}/issue.txt" >&2

# Peak RSS of the mode-6 gatehouse (it served only mode 6 and its gRPC run).
grep VmHWM "/proc/${pid_many}/status" >"${work}/rss.txt"

# --- report --------------------------------------------------------------------------------------

step "Results"
printf '%s\n' "${modes[@]}" >"${work}/modes.txt"
python3 scripts/bench_report.py "${work}" "${rounds}" "${gatehouse_http_authz}" | tee "${work}/report.md"
