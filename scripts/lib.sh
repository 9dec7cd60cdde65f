# Shell helpers for the measuring scripts (bench.sh, soak.sh, profile.sh): sourced, not run.
# Messages go to standard error, so that a script's standard output stays its report; `die`
# names the script that sourced this file. `work` (the script's work directory) must be set
# before a helper that names it in a message runs.

script_name="$(basename "$0" .sh)"

step() { printf '\n==> %s\n' "$*" >&2; }

die() {
    echo "${script_name}: error: $*" >&2
    exit 1
}

# wait_http NAME PID URL: polls URL until it answers 2xx, for up to 30 s, while PID is alive.
wait_http() {
    local name="$1" pid="$2" url="$3" deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        kill -0 "${pid}" 2>/dev/null || die "${name} exited during start-up (logs in ${work})"
        if curl -fsS --max-time 2 -o /dev/null "${url}" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    die "${name} not ready after 30 s (${url})"
}

# wait_port NAME PORT [PID] [SECONDS]: waits until something listens on 127.0.0.1:PORT, for
# up to SECONDS (default 30), and, when PID is given, while that process is alive.
wait_port() {
    local name="$1" port="$2" pid="${3:-}" deadline=$((SECONDS + ${4:-30}))
    while ((SECONDS < deadline)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
            return 0
        fi
        if [[ -n "${pid}" ]] && ! kill -0 "${pid}" 2>/dev/null; then
            die "${name} exited during start-up (logs in ${work})"
        fi
        sleep 0.2
    done
    die "${name} not listening on ${port} after ${4:-30} s"
}

# client_field APPLY_OUTPUT NAME FIELD: a field of `gatehouse apply`'s line for a new client,
#   created client "NAME": client_id=ID client_secret=SECRET
client_field() {
    sed -nE "s/^created client \"$2\": .*$3=([^[:space:]]+).*$/\\1/p" "$1" | head -n 1
}
