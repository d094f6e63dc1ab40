#!/usr/bin/env bash
# Benchmark: latency of the collector's conformity queries on a large fleet.
# Goal: with 10,000 hosts x 50 checks (and history behind them), the fleet
# conformity summary and one control's host list answer in under 200 ms.
#
# Runs bench/src/bin/conformity-query.rs, which (in one process, on a fresh
# temporary data directory with the embedded SQLite store):
#   1. enrolls HOSTS hosts (80% env=prod, 20% env=staging) and writes HISTORY
#      chained envelopes per host through the Store trait, whose latest
#      results cover CHECKS built-in checks (~94% pass, ~5% fail, ~1% error);
#      envelope bytes are placeholders (queries are measured, not signatures);
#   2. imports the example ISO/IEC 27001:2013 SoA and an auditor API token;
#   3. starts the collector in-process and prints how long start took (it
#      reconciles every host against the SoA before serving);
#   4. times REQUESTS sequential HTTPS requests (after 3 warm-ups) of
#        GET /v1/conformity                       (fleet summary)
#        GET /v1/conformity/controls/$CONTROL     (one control's host list)
#        GET /v1/conformity/hosts/{agent id}      (one host, every control)
#      checking each answers 200 with the expected number of hosts/controls,
#      and prints median, p90 and max latency, response sizes and RSS.
# Population time is printed too but is not what is measured.
# (Ingest rate with and without an SoA: SOA=... bench/ingest.sh.)
#
#   bench/conformity.sh                     # 10000 hosts x 3 envelopes, 50 checks, 15 requests
#   HOSTS=2000 REQUESTS=30 bench/conformity.sh
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-10000}
HISTORY=${HISTORY:-3}
CHECKS=${CHECKS:-50}
REQUESTS=${REQUESTS:-15}
CONTROL=${CONTROL:-A.9.4.2}
bench/build.sh
target/release/conformity-query --hosts "$HOSTS" --history "$HISTORY" --checks "$CHECKS" \
  --requests "$REQUESTS" --control "$CONTROL"
