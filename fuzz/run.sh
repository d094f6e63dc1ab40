#!/usr/bin/env bash
# Runs the fuzz targets (docs/fuzzing.md): each for a million executions or
# MAX_SECONDS (default 600), whichever comes first, starting from the seeds
# (fuzz/harness/src/seeds.rs) and whatever corpus earlier runs left.
#
#   fuzz/run.sh                 # every target
#   fuzz/run.sh soa dsse        # some
#   MAX_SECONDS=60 fuzz/run.sh  # a quick pass
#
# A crash, hang (over 10 s) or out-of-memory (over 2 GiB) stops the target
# and leaves the input in fuzz/artifacts/<target>/; each run's statistics
# go to fuzz/logs/<target>.log and one summary line per target to stdout.
set -euo pipefail
cd "$(dirname "$0")"
max=${MAX_SECONDS:-600}
if [ $# -gt 0 ]; then targets=("$@"); else
  targets=($(ls fuzz_targets | sed 's/\.rs$//'))
fi
cargo run -q --manifest-path ../Cargo.toml -p annexa-fuzz --bin write-seeds -- corpus
# Stable Rust: no sanitizer (annexa forbids unsafe code; libFuzzer still
# catches panics, hangs and runaway memory); debug assertions on, so
# integer overflow is a finding. Built here, for the named targets only,
# so that a compile error shows on the terminal, not as a finding.
for t in "${targets[@]}"; do cargo fuzz build -O --debug-assertions -s none "$t"; done
mkdir -p logs
status=0
for t in "${targets[@]}"; do
  # host_files makes a temporary root per input: in memory, not on disk.
  if TMPDIR=/dev/shm cargo fuzz run -O --debug-assertions -s none "$t" "corpus/$t" -- \
      -runs=1000000 -max_total_time="$max" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"logs/$t.log" 2>&1; then result=ok; else result=FINDING; status=1; fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo '?')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo '?')
  printf '%-12s %-8s %10s executions %8s/s\n' "$t" "$result" "$execs" "$rate"
done
exit $status
