#!/usr/bin/env python3
"""Summarises a scripts/bench.sh run: medians over rounds, ratios, targets (Markdown).

Usage: bench_report.py WORK_DIR ROUNDS GATEHOUSE_HTTP_AUTHZ_STATUS
"""

import re
import statistics
import sys
from pathlib import Path

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(path):
    text = path.read_text()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    pct = {}
    for p, value, unit in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        pct[p] = float(value) * UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    return {
        "rps": rps,
        "p50": pct.get("50"),
        "p90": pct.get("90"),
        "p99": pct.get("99"),
        "requests": requests,
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


def cpu_per_request(path, requests):
    """(Envoy, authorizer) CPU microseconds per request of one run, from its .cpu file."""
    if not path.exists() or requests == 0:
        return None, None
    f = dict(kv.split("=") for kv in path.read_text().split())
    per_tick = 1e6 / int(f["ticks_per_s"])
    authorizer = int(f["authorizer_ticks"]) * per_tick / requests
    return int(f["envoy_ticks"]) * per_tick / requests, authorizer


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def main():
    work, rounds, http_authz = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    modes = [line.split("|") for line in (work / "modes.txt").read_text().splitlines() if line]
    results = {}
    for mode_id, label, *rest in modes:
        runs = [parse_wrk(work / "raw" / f"round{r}-{mode_id}.txt") for r in range(1, rounds + 1)]
        cpu = [
            cpu_per_request(work / "raw" / f"round{r}-{mode_id}.cpu", run["requests"])
            for r, run in zip(range(1, rounds + 1), runs)
        ]
        results[mode_id] = {
            "label": label,
            "rps": statistics.median(r["rps"] for r in runs),
            "p50": statistics.median(r["p50"] for r in runs),
            "p90": statistics.median(r["p90"] for r in runs),
            "p99": statistics.median(r["p99"] for r in runs),
            "non2xx": sum(r["non2xx"] for r in runs),
            "envoy_us": median_or_none(c[0] for c in cpu),
            # The fourth field after the label names the authorizer's process; empty: none.
            "authorizer_us": median_or_none(c[1] for c in cpu) if rest[3:4] != [""] else None,
            "all": [r["rps"] for r in runs],
        }

    def rps(mode_id):
        return results[mode_id]["rps"] if mode_id in results else None

    def ratio(a, b):
        return None if rps(a) is None or rps(b) is None else rps(a) / rps(b)

    out = []
    out.append(f"### Through Envoy (wrk, median of {rounds} rounds)\n")
    out.append("| mode | what | requests/s | p50 ms | p90 ms | p99 ms | ÷ mode 2 | ÷ mode 3 | ÷ mode 3c | Envoy CPU µs/req | authorizer CPU µs/req | non-2xx | rounds (req/s) |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for mode_id, r in results.items():
        gatehouse = mode_id[0] in "456" or mode_id == "7g"
        out.append(
            f"| {mode_id} | {r['label']} | {r['rps']:.0f} | {fmt(r['p50'])} | {fmt(r['p90'])} "
            f"| {fmt(r['p99'])} | {fmt(ratio(mode_id, '2')) if gatehouse else ''} "
            f"| {fmt(ratio(mode_id, '3')) if gatehouse else ''} "
            f"| {fmt(ratio(mode_id, '3c')) if gatehouse else ''} "
            f"| {fmt(r['envoy_us'], 1)} | {fmt(r['authorizer_us'], 1) if r['authorizer_us'] is not None else ''} "
            f"| {r['non2xx']} "
            f"| {', '.join(f'{x:.0f}' for x in r['all'])} |"
        )
    if "7g" not in results:
        out.append(f"| 7g | gatehouse serving HTTP ext_authz | {http_authz} | | | | | | | | | | |")

    grpc = (work / "grpc.txt").read_text().strip().splitlines()
    out.append("\n### gRPC `Check` called directly (bench_load, open loop at the offered rate; `max` = 64 callers, closed loop)\n")
    out.append("| server | offered/s | checks/s | p50 ms | p90 ms | p99 ms | p99.9 ms | not OK | dropped |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for line in grpc:
        name, rest = line.split(" ", 1)
        f = dict(kv.split("=") for kv in rest.split())
        out.append(
            f"| {name} | {f['offered']} | {f['checks_per_s']} | {f['p50_ms']} | {f['p90_ms']} "
            f"| {f['p99_ms']} | {f['p999_ms']} | {f['not_ok']} | {f['dropped']} |"
        )

    tokens = float(re.search(r"tokens_per_s=([\d.]+)", (work / "issue.txt").read_text()).group(1))
    sign = None
    for line in (work / "openssl.txt").read_text().splitlines():
        if line.startswith("rsa 2048") or line.startswith("rsa  2048"):
            sign = float(line.split()[-2])
    rss_kib = int(re.search(r"(\d+)", (work / "rss.txt").read_text()).group(1))
    out.append("\n### Issuance and memory\n")
    out.append(f"- `/token` client_credentials, gatehouse pinned to one core: {tokens:.0f} tokens/s")
    out.append(f"- `openssl speed -seconds 3 rsa2048`, one core: {fmt(sign, 0)} signs/s")
    issue_ratio = tokens / sign if sign else None
    out.append(f"- ratio: {fmt(issue_ratio)}")
    out.append(f"- peak RSS (VmHWM) of the mode-6 gatehouse: {rss_kib / 1024:.1f} MiB")

    def p99_at_5000(name):
        for line in grpc:
            if line.startswith(name + " ") and "offered=5000 " in line:
                return float(re.search(r"p99_ms=([\d.]+)", line).group(1))
        return None

    def verdict(value, target):
        if value is None:
            return "not measured"
        return "met" if value >= target else "not met"

    out.append("\n### Targets\n")
    out.append("| target | measured | |")
    out.append("|---|---:|---|")
    out.append(f"| mode 4 ≥ 0.95 × mode 2 (stretch ≥ 1.0) | {fmt(ratio('4', '2'))} | {verdict(ratio('4', '2'), 0.95)} |")
    if "2h" in results:
        out.append(f"| mode 2h ÷ mode 2: Envoy applying gatehouse's answer, no decision, reported beside | {fmt(ratio('2h', '2'))} | — |")
        out.append(f"| mode 4 ÷ mode 2h: the decision alone, the same answer on both sides, reported beside | {fmt(ratio('4', '2h'))} | — |")
    if "7g" in results:
        out.append(f"| mode 7g (gatehouse over HTTP) ≥ 0.95 × mode 7 (naive HTTP) | {fmt(ratio('7g', '7'))} | {verdict(ratio('7g', '7'), 0.95)} |")
    else:
        out.append(f"| gatehouse over HTTP ≥ 0.95 × naive HTTP (mode 7) | {http_authz} | not measured |")
    for mode_id in ("5s", "5p"):
        if mode_id in results:
            out.append(f"| mode {mode_id} (warm) ≥ 0.85 × mode 4 | {fmt(ratio(mode_id, '4'))} | {verdict(ratio(mode_id, '4'), 0.85)} |")
    for mode_id in ("5sm", "5pm"):
        if mode_id in results:
            out.append(f"| mode {mode_id} (every check a miss) ÷ mode 4, reported beside | {fmt(ratio(mode_id, '4'))} | — |")
    out.append(f"| mode 6 ≥ 0.9 × mode 4 | {fmt(ratio('6', '4'))} | {verdict(ratio('6', '4'), 0.9)} |")
    out.append(f"| peak RSS in mode 6 ≤ 64 MiB | {rss_kib / 1024:.1f} MiB | {'met' if rss_kib <= 64 * 1024 else 'not met'} |")
    p99 = p99_at_5000("gatehouse")
    out.append(f"| gRPC Check p99 < 1 ms at 5,000 checks/s | {fmt(p99, 3)} ms | {'met' if p99 is not None and p99 < 1.0 else 'not met'} |")
    out.append(f"| /token ≥ 0.7 × RSA-2048 sign rate, one core | {fmt(issue_ratio)} | {verdict(issue_ratio, 0.7)} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
