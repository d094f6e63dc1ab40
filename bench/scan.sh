#!/usr/bin/env bash
# Benchmark: a full default scan (all built-in packs) on the live host and on
# the golden-image fixture root. Prints one line per target with the median
# wall time, CPU time (user+sys) and peak RSS of the `annexa scan` process
# over RUNS runs: wall from a monotonic clock around the process, CPU from
# wait4's rusage (microseconds, where /usr/bin/time prints 10 ms steps), peak
# RSS from /usr/bin/time.
# Target (issue 2): median wall < 50 ms, peak RSS < 20 MB on 2 cores.
#
#   bench/scan.sh            # 21 runs each
#   RUNS=51 bench/scan.sh
#
# ANNEXA (optional): another annexa binary to measure (for before/after
# comparisons in one sitting); default the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-21}
command -v /usr/bin/time >/dev/null || { echo "bench/scan.sh needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
bench/build.sh
FIXTURE_PARENT=$(mktemp -d)
trap 'rm -rf "$FIXTURE_PARENT"' EXIT
target/release/annexa-fixture "$FIXTURE_PARENT/root" >/dev/null

python3 - "$RUNS" "${ANNEXA:-target/release/annexa}" "$FIXTURE_PARENT/root" <<'PY'
import os, statistics, subprocess, sys, time
runs, binary, fixture = int(sys.argv[1]), sys.argv[2], sys.argv[3]
stats = os.path.join(os.path.dirname(fixture), "time.out")

def measure(label, extra):
    walls, cpus, rss = [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        # /usr/bin/time reports the peak RSS of annexa alone (a child forked
        # from Python would inherit Python's high-water mark before exec).
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", stats, binary, "scan", *extra, "--format", "json", "-o", "/dev/null"])
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append((time.perf_counter() - start) * 1000)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):  # 1 = a check failed, a normal scan outcome
            sys.exit(f"annexa scan exited {code}")
        cpus.append((usage.ru_utime + usage.ru_stime) * 1000)
        lines = [l for l in open(stats) if l.strip() and not l.startswith("Command")]
        rss.append(int(lines[-1]) / 1024)
    print(f"scan {label}: median wall {statistics.median(walls):.1f} ms, median cpu {statistics.median(cpus):.1f} ms, "
          f"median peak RSS {statistics.median(rss):.1f} MB (max {max(rss):.1f} MB), {runs} runs")

measure("live host", [])
measure("fixture root", ["--root", fixture])
PY
