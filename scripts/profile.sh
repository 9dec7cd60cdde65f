#!/usr/bin/env bash
# Instructions per ext_authz Check, counted by callgrind: gatehouse (claims path) beside the
# allow-everything tonic server of examples/bench_allow.rs, on the same release build.
#
#   scripts/profile.sh                 # 10 s of closed-loop checks per server
#   PROFILE_SECONDS=30 scripts/profile.sh
#
# Instruction counts do not depend on what else the machine is doing, so unlike the timings
# of scripts/bench.sh they compare two builds on a busy machine (docs/benchmarks.md). Each
# server runs under `valgrind --tool=callgrind`; examples/bench_load.rs drives it over gRPC
# from outside valgrind with one token; the counters are zeroed after a warm-up and dumped
# after the measured run, so start-up is not counted. Prints instructions per check and, for
# gatehouse, its most expensive functions (self cost). Valgrind does not run the CPU's SHA
# extensions, so SHA-256 (the verified-token cache's key) takes aws-lc's vector path there
# and is listed apart: on a CPU with SHA extensions it costs well under a microsecond.
#
# Work files go to .gatehouse/profile (wiped first); callgrind outputs stay there for
# callgrind_annotate.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

seconds="${PROFILE_SECONDS:-10}"
work="${repo_root}/.gatehouse/profile"
target_dir="${CARGO_TARGET_DIR:-${repo_root}/target}"
gatehouse_bin="${target_dir}/release/gatehouse"
allow_bin="${target_dir}/release/examples/bench_allow"
load_bin="${target_dir}/release/examples/bench_load"
http_port=9400
grpc_port=9401
allow_port=9402

for tool in valgrind callgrind_control callgrind_annotate curl python3; do
    command -v "${tool}" >/dev/null 2>&1 || die "${tool} not found (Debian package valgrind)"
done

step "Building release binaries"
cargo build --release --bin gatehouse --example bench_allow --example bench_load >&2

rm -rf "${work}"
mkdir -p "${work}"

pid=""
cleanup() {
    if [[ -n "${pid}" ]]; then
        kill "${pid}" 2>/dev/null || true
        wait "${pid}" 2>/dev/null || true
    fi
}
trap cleanup EXIT

cat >"${work}/gatehouse.toml" <<EOF
[server]
grpc_addr = "127.0.0.1:${grpc_port}"
http_addr = "127.0.0.1:${http_port}"

[store]
url = "sqlite://${work}/profile.db"

[keys]
encryption_key_path = "${work}/encryption-key"

[tokens]
issuer = "http://127.0.0.1:${http_port}"
audience = "invoices-api"

[log]
level = "warn"
EOF

step "Applying examples/policy.yaml and minting a token"
"${gatehouse_bin}" apply --config "${work}/gatehouse.toml" examples/policy.yaml >"${work}/apply.out"
service_id="$(client_field "${work}/apply.out" invoice-service client_id)"
service_secret="$(client_field "${work}/apply.out" invoice-service client_secret)"
"${gatehouse_bin}" serve --config "${work}/gatehouse.toml" >"${work}/mint.log" 2>&1 &
pid=$!
wait_port gatehouse "${http_port}" "${pid}" 60
curl -fsS --retry 20 --retry-connrefused --retry-delay 1 -u "${service_id}:${service_secret}" \
    -d grant_type=client_credentials "http://127.0.0.1:${http_port}/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' >"${work}/token.txt"
cleanup
pid=""

# profile NAME PORT COMMAND...: prints "NAME instructions checks".
profile() {
    local name="$1" port="$2"
    shift 2
    valgrind --tool=callgrind --callgrind-out-file="${work}/${name}.callgrind" "$@" \
        >"${work}/${name}.log" 2>&1 &
    pid=$!
    wait_port "${name}" "${port}" "${pid}" 60
    local load=("${load_bin}" check --addr "http://127.0.0.1:${port}" --tokens "${work}/token.txt"
        --rate 0 --concurrency 8)
    "${load[@]}" --seconds 3 >/dev/null
    callgrind_control --zero "${pid}" >/dev/null 2>&1
    local line
    line="$("${load[@]}" --warmup-seconds 0 --seconds "${seconds}")"
    callgrind_control --dump "${pid}" >/dev/null 2>&1
    cleanup
    pid=""
    local checks total
    checks="$(sed -n 's/.* checks=\([0-9]*\).*/\1/p' <<<"${line}")"
    total="$(callgrind_annotate "${work}/${name}.callgrind.1" 2>/dev/null |
        sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)"
    [[ -n "${checks}" && "${checks}" -gt 0 && -n "${total}" ]] || die "no count for ${name}"
    echo "${name} ${total} ${checks}"
}

step "gatehouse under callgrind (${seconds} s)"
gatehouse_counts="$(profile gatehouse "${grpc_port}" "${gatehouse_bin}" serve --config "${work}/gatehouse.toml")"
step "allow-everything under callgrind (${seconds} s)"
allow_counts="$(profile allow "${allow_port}" "${allow_bin}" --grpc "127.0.0.1:${allow_port}")"

callgrind_annotate --threshold=100 --auto=no "${work}/gatehouse.callgrind.1" 2>/dev/null \
    >"${work}/gatehouse-self.txt"

python3 - "${work}" "${gatehouse_counts}" "${allow_counts}" <<'PY'
import re, sys
work, gatehouse, allow = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
per = lambda counts: int(counts[1]) / int(counts[2])
lines = open(f"{work}/gatehouse-self.txt").read().splitlines()
rows = []
for line in lines:
    m = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
    if m and "PROGRAM TOTALS" not in m.group(2):
        rows.append((int(m.group(1).replace(",", "")), m.group(2)))
sha = sum(n for n, name in rows if "sha256_block_data_order" in name)
checks = int(gatehouse[2])
g, a = per(gatehouse), per(allow)
print(f"| server | checks | instructions per check |")
print(f"|---|---:|---:|")
print(f"| gatehouse, claims path | {checks} | {g:,.0f} |")
print(f"| gatehouse without SHA-256 (software path under valgrind) | {checks} | {g - sha / checks:,.0f} |")
print(f"| allow-everything tonic | {allow[2]} | {a:,.0f} |")
print(f"\ngatehouse ÷ allow-everything: {g / a:.2f} ({(g - sha / checks) / a:.2f} without SHA-256)")
print("\nMost expensive functions of gatehouse (self cost per check):")
# Rows at nearly the whole total are the threads' entry frames, not their own work.
own = [(n, name) for n, name in rows if n < int(gatehouse[1]) // 2]
own.sort(reverse=True)
for n, name in own[:15]:
    short = name.split(":", 1)[-1][:110]
    print(f"  {n / checks:9,.0f}  {short}")
PY
