#!/usr/bin/env bash
# Benchmark: building and verifying an evidence report.
# Goal: a report for 1,000 hosts x 50 checks is built in under 2 s and
# verified offline in under 2 s on this machine.
#
# Runs bench/src/bin/report-build.rs, which starts the real collector
# in-process on a fresh SQLite data directory, imports the example 2013 SoA,
# enrolls HOSTS agents over TLS and sends HISTORY real agent-signed
# envelopes each (CHECKS results of a golden-image scan) through the ingest
# path; then times RUNS report builds (collector side: store reads,
# inclusion proofs, state derivation, signing) and RUNS offline
# verifications (what `annexa verify report` does), printing medians and
# the report's size; then times RUNS `GET /v1/drift?cells=true` over TLS for
# the whole fleet since before it reported (what `annexa gate --server`
# asks; every (host, control) changed in that window).
#
#   bench/report.sh                       # 1000 hosts x 50 checks, 7 runs
#   HOSTS=5000 RUNS=3 bench/report.sh
#   OUT=/tmp/report.json bench/report.sh  # keep the report
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-1000}
CHECKS=${CHECKS:-50}
HISTORY=${HISTORY:-2}
RUNS=${RUNS:-7}
bench/build.sh
args=(--hosts "$HOSTS" --checks "$CHECKS" --history "$HISTORY" --runs "$RUNS")
if [ -n "${OUT:-}" ]; then args+=(--out "$OUT"); fi
exec target/release/report-build "${args[@]}"
