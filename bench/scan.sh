#!/usr/bin/env bash
# Benchmark: a full default scan (all built-in packs) on the live host and on
# the golden-image fixture root. Prints one line per target with the median
# wall time, CPU time (user+sys) and peak RSS of the `annexa scan` process
# over RUNS runs: wall from a monotonic clock around the process, CPU from
# wait4's rusage (microseconds, where /usr/bin/time prints 10 ms steps), peak
# RSS from /usr/bin/time.
# Target (issue 2): median wall < 50 ms, peak RSS < 20 MB on 2 cores.
# Target (issue 22): on the RHEL 9 fixture root (tests/fixtures/roots: an
# rpm database written by rpm, dnf's cache by createrepo_c) the wall time
# per check that ran is within 20% of the Debian fixture root's; the last
# line prints both and their ratio, from the same sitting.
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
tests/ensure-tools.sh rpmbuild:rpm createrepo_c:createrepo-c >&2
tests/fixtures/roots/build.sh rhel9 good "$FIXTURE_PARENT/rhel9"

python3 - "$RUNS" "${ANNEXA:-target/release/annexa}" "$FIXTURE_PARENT/root" "$FIXTURE_PARENT/rhel9" <<'PY'
import json, os, statistics, subprocess, sys, time
runs, binary, fixture, rhel9 = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
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
    return statistics.median(walls)

def checks_run(extra):
    out = subprocess.run([binary, "scan", *extra, "--format", "json"], capture_output=True, check=False)
    report = json.loads(out.stdout)
    return sum(1 for r in report["results"] if r["status"] != "not_applicable")

measure("live host", [])
debian = measure("fixture root", ["--root", fixture])
rhel = measure("rhel9 fixture root", ["--root", rhel9])
n_debian, n_rhel = checks_run(["--root", fixture]), checks_run(["--root", rhel9])
per_debian, per_rhel = debian / n_debian, rhel / n_rhel
print(f"scan per check: debian fixture root {per_debian:.3f} ms ({n_debian} checks run), "
      f"rhel9 fixture root {per_rhel:.3f} ms ({n_rhel} checks run), ratio {per_rhel / per_debian:.2f} (target <= 1.20)")
PY
