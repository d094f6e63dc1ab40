#!/usr/bin/env bash
# Benchmark: collector ingest over TLS on loopback (issue 3).
# Starts a release collector on a fresh data directory (embedded SQLite),
# runs bench/src/bin/ingest-load.rs against it, and prints the load
# generator's line plus the collector's peak RSS. Repeat RUNS times and
# compare medians.
#
# Each run measures twice on a fresh collector: closed loop (every agent
# sends as soon as it has its previous receipt: maximum throughput) and open
# loop at RATE envelopes/s offered (latency from each envelope's due time).
#
#   bench/ingest.sh                        # 1000 agents x 9 envelopes (1 warm-up + 8 timed), 3 runs, RATE=3000
#   AGENTS=200 PER_AGENT=20 RUNS=5 RATE=1500 bench/ingest.sh
#   SOA=examples/soa/iso27001-2013.toml bench/ingest.sh   # with an SoA imported
#
# COLLECTOR (optional): another annexa-collector binary to measure (for
# before/after comparisons, bench/log.sh ingest); default the release build.
#
# SOA (optional): an SoA file imported (`annexa-collector soa import`) into
# each fresh data directory before the collector starts, so ingest also
# evaluates conformity; compare with a run without it (the default).
#
# DATABASE=postgres: the store is a fresh PostgreSQL database per run on the
# server at PG (default postgres://postgres@127.0.0.1:5432), dropped after
# the run; each run also prints the CPU seconds the collector and the
# PostgreSQL server processes spent during the load (where the time goes).
#
#   DATABASE=postgres bench/ingest.sh
#
# COLLECTORS=N (with DATABASE=postgres): N collectors on the one database,
# each with a copy of the data directory (one key, one CA), on their own
# ports; agent i sends to collector i mod N and moves to the next when its
# collector refuses with 503 or is unreachable. The CPU figure is then the
# collectors' together.
#
#   DATABASE=postgres COLLECTORS=2 bench/ingest.sh
set -euo pipefail
DATABASE=${DATABASE:-sqlite}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
SOA=${SOA:-}
if [ -n "$SOA" ]; then SOA=$(realpath "$SOA"); fi  # relative to the caller's directory
cd "$(dirname "$0")/.."
AGENTS=${AGENTS:-1000}
PER_AGENT=${PER_AGENT:-9}
RUNS=${RUNS:-3}
RATE=${RATE:-3000}
COLLECTORS=${COLLECTORS:-1}
if [ "$COLLECTORS" -gt 1 ] && [ "$DATABASE" != postgres ]; then
  echo "COLLECTORS=$COLLECTORS needs DATABASE=postgres (one SQLite file has one collector)" >&2
  exit 2
fi
bench/build.sh
COLLECTOR=${COLLECTOR:-target/release/annexa-collector}
ulimit -n 65536 2>/dev/null || true

# CPU seconds (user + system) of processes, from /proc.
cpu_of() {
  local ticks=0 p
  for p in "$@"; do
    if [ -r "/proc/$p/stat" ]; then
      ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    fi
  done
  echo "$ticks"
}
hz=$(getconf CLK_TCK)
secs() { awk -v t="$1" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }'; }

for run in $(seq "$RUNS"); do
  work=$(mktemp -d)
  data="$work/data"
  # The load generator enrolls every agent at once from one address: the
  # failure limit takes a share for each request in flight (so that
  # concurrent guesses cannot slip through), which a thousand enrollments
  # exhaust. A load generator is not an attacker: the limit is off here.
  printf 'auth_failures_per_minute = 0\n' >"$work/collector.toml"
  conf=(--config "$work/collector.toml")
  if [ "$DATABASE" = postgres ]; then
    db="annexa_bench_$$_$run"
    psql "$PG/postgres" -qc "CREATE DATABASE $db"
    printf 'database_url = "%s/%s"\n' "$PG" "$db" >>"$work/collector.toml"
  fi
  "$COLLECTOR" init "${conf[@]}" --data "$data" --name 127.0.0.1 >/dev/null
  admin=$("$COLLECTOR" api-token create "${conf[@]}" --data "$data" --name bench --role admin)
  if [ -n "$SOA" ]; then
    "$COLLECTOR" soa import "${conf[@]}" --data "$data" --by bench "$SOA" >/dev/null
  fi
  pids=()
  servers=()
  for k in $(seq "$COLLECTORS"); do
    dir="$data"
    if [ "$k" -gt 1 ]; then dir="$work/data-$k"; cp -a "$data" "$dir"; fi
    port=$((20000 + RANDOM % 20000))
    "$COLLECTOR" serve "${conf[@]}" --data "$dir" --listen "127.0.0.1:$port" 2>"$work/collector-$k.log" &
    pids+=("$!")
    servers+=(--server "https://127.0.0.1:$port")
    for _ in $(seq 50); do curl -sf --cacert "$data/ca.crt" "https://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  done
  # shellcheck disable=SC2046
  c0=$(cpu_of "${pids[@]}"); p0=$(cpu_of $(pgrep -x postgres || true))
  target/release/ingest-load "${servers[@]}" --ca "$data/ca.crt" --admin-token "$admin" --agents "$AGENTS" --per-agent "$PER_AGENT" 2>/dev/null
  # shellcheck disable=SC2046
  c1=$(cpu_of "${pids[@]}"); p1=$(cpu_of $(pgrep -x postgres || true))
  target/release/ingest-load "${servers[@]}" --ca "$data/ca.crt" --admin-token "$admin" --agents "$AGENTS" --per-agent "$PER_AGENT" --rate "$RATE" 2>/dev/null
  rss=0
  for pid in "${pids[@]}"; do
    r=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    if [ "$r" -gt "$rss" ]; then rss=$r; fi
  done
  kill -TERM "${pids[@]}"; wait "${pids[@]}" || true
  if [ "$DATABASE" = postgres ]; then
    size=$(psql "$PG/postgres" -Atc "SELECT pg_size_pretty(pg_database_size('$db'))")
    psql "$PG/postgres" -qc "DROP DATABASE $db WITH (FORCE)"
    echo "run $run: closed loop CPU: $COLLECTORS collector(s) $(secs $((c1 - c0))) s, PostgreSQL $(secs $((p1 - p0))) s; largest collector peak RSS $((rss / 1024)) MB, database $size"
  else
    echo "run $run: closed loop CPU: collector $(secs $((c1 - c0))) s; collector peak RSS $((rss / 1024)) MB, database $(du -sh "$data/collector.db" | cut -f1)"
  fi
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
done
