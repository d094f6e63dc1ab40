#!/usr/bin/env bash
# Every benchmark of bench/ in a short smoke mode (a few seconds each, tiny
# sizes): it asserts only that each ran and printed its figure line, so
# that a change of a command line, a default or an API that breaks a
# benchmark fails CI instead of rotting until someone measures. The
# figures printed here are not measurements.
#
#   bench/smoke.sh bench/scan.sh    # one benchmark (.ci/run names each)
#   bench/smoke.sh                  # all of them
set -euo pipefail
cd "$(dirname "$0")/.."
# scan.sh times with /usr/bin/time; ingest.sh polls /healthz with curl.
tests/ensure-tools.sh /usr/bin/time:time curl:curl python3:python3
bench/build.sh
wanted=("$@")

failed=0
ran=()
# Runs a benchmark with its environment; passes if it exits 0 and every
# pattern given after `--` is in what it printed.
smoke() {
    local name=$1 out
    shift
    local env=() patterns=()
    while [ "$1" != -- ]; do env+=("$1"); shift; done
    shift
    local cmd=$1
    shift
    patterns=("$@")
    if [ ${#wanted[@]} -gt 0 ] && [[ " ${wanted[*]} " != *" $cmd "* ]]; then
        return
    fi
    ran+=("$cmd")
    echo "== bench smoke: $name"
    if ! out=$(env "${env[@]}" bash -c "$cmd" 2>&1); then
        echo "$out" | tail -20
        echo "bench smoke: $name exited non-zero" >&2
        failed=1
        return
    fi
    echo "$out" | tail -4
    for p in "${patterns[@]}"; do
        if ! grep -qE "$p" <<<"$out"; then
            echo "bench smoke: $name printed no line matching /$p/" >&2
            failed=1
        fi
    done
}

smoke scan RUNS=2 -- bench/scan.sh \
    '^scan live host: median wall [0-9.]+ ms' '^scan fixture root: median wall [0-9.]+ ms' \
    '^scan rhel9 fixture root: median wall [0-9.]+ ms' '^scan ubuntu24.04 fixture root: median wall [0-9.]+ ms' \
    '^scan per check: .*rhel9/ubuntu24.04 ratio [0-9.]+' \
    '^scan added checks: [0-9]+; live \+?-?[0-9.]+ ms \(-?[0-9.]+ ms per 10 checks\)'
smoke ingest AGENTS=20 PER_AGENT=2 RUNS=1 RATE=200 -- bench/ingest.sh \
    '^ingest \(closed loop.*[0-9]+ envelopes/s' '^ingest \(open loop.*p99 [0-9.]+ ms' '^run 1: closed loop CPU'
smoke conformity HOSTS=50 HISTORY=1 CHECKS=10 REQUESTS=2 -- bench/conformity.sh \
    '^fleet summary \(50 hosts\)' '^control .* hosts\)'
smoke report HOSTS=10 CHECKS=10 HISTORY=1 RUNS=1 -- bench/report.sh \
    '^build: ' '^verify: ' '^drift: '
smoke log LEAVES=2000 ENTRIES=500 RUNS=1 VERIFY_RUNS=1 BEFORE=target/release/annexa-collector \
    AGENTS=10 PER_AGENT=2 -- bench/log.sh \
    '^median of run medians: inclusion [0-9.]+ ms' '^median: [0-9]+ entries/s' '^== run 1: with the log'

for w in "${wanted[@]}"; do
    [[ " ${ran[*]} " == *" $w "* ]] || { echo "bench smoke: no smoke run for $w" >&2; failed=1; }
done
if [ $failed -ne 0 ]; then
    echo "bench smoke: failed" >&2
    exit 1
fi
echo "bench smoke: ${ran[*]} ran and printed their figures"
