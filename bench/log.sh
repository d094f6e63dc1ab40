#!/usr/bin/env bash
# Benchmarks of the evidence log (issue 5). Each prints its own figures;
# medians over runs. Not timed tests.
#
#   bench/log.sh proofs      # inclusion/consistency proofs at 10M leaves (target: inclusion < 5 ms)
#   bench/log.sh verify      # full verification of a 1M-entry bundle, signatures included,
#                            # both cores (target: >= 20,000 entries/s)
#   bench/log.sh ingest      # ingest with the log vs. the same benchmark on a collector
#                            # built without it (target: the log adds < 10% per envelope)
#
# LEAVES, ENTRIES, RUNS override the sizes; DIR puts the fixtures on another
# disk (the 1M bundle is about 6 GB, the 10M-leaf database about 1.3 GB).
# `ingest` needs BEFORE=path/to/an annexa-collector built from the commit
# before the log (d0c9081), e.g.
#   git worktree add /tmp/annexa-before d0c9081
#   (cd /tmp/annexa-before && cargo build --release -p annexa-collector)
#   BEFORE=/tmp/annexa-before/target/release/annexa-collector bench/log.sh ingest
# (with CARGO_TARGET_DIR set for that build, the binary is under it)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
RUNS=${RUNS:-5}
dir_args=()
if [ -n "${DIR:-}" ]; then dir_args=(--dir "$DIR"); fi
bench/build.sh

case "$what" in
  proofs|all)
    target/release/log-proof --leaves "${LEAVES:-10000000}" --runs "$RUNS" "${dir_args[@]}"
    ;;&
  verify|all)
    target/release/log-verify --entries "${ENTRIES:-1000000}" --runs "${VERIFY_RUNS:-3}" "${dir_args[@]}"
    ;;&
  ingest|all)
    if [ -z "${BEFORE:-}" ]; then
      echo "ingest: set BEFORE to a collector built without the log (see the top of this script)" >&2
      [ "$what" = ingest ] && exit 2
    else
      # Alternate the two collectors run by run so that the machine's
      # drift hits both alike; compare the medians of their closed-loop
      # throughput.
      for run in $(seq "$RUNS"); do
        echo "== run $run: without the log ($BEFORE)"
        COLLECTOR="$BEFORE" RUNS=1 bench/ingest.sh | grep -E "closed|envelopes/s" | head -1
        echo "== run $run: with the log"
        RUNS=1 bench/ingest.sh | grep -E "closed|envelopes/s" | head -1
      done
    fi
    ;;
esac
