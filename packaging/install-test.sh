#!/usr/bin/env bash
# Installs the .deb packages into a fresh Debian root and goes through what
# an ops team does with them: install, enroll an agent with a collector,
# deliver evidence, upgrade, remove, purge. Run by .ci/run after
# packaging/check.sh (which builds the packages); needs root, debootstrap
# and network access to Debian's archive (debootstrap's default mirror).
#
#   packaging/install-test.sh
#
# The root is made with `debootstrap --variant=minbase bookworm` (about 40 s
# here) under $CARGO_TARGET_DIR/install-test/ and used through chroot with
# /proc mounted: the collector runs as its system user inside it on a free
# loopback port, and the agent inside it enrolls and delivers over TLS.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(realpath "${CARGO_TARGET_DIR:-target}")
packages=$target/packages
work=$target/install-test
root=$work/root

fail() { echo "install test: $*" >&2; exit 1; }
step() { echo "== $*"; }
[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null || fail "debootstrap is not installed"
ls "$packages"/annexa-agent_*.deb "$packages"/annexa-collector_*.deb >/dev/null 2>&1 ||
  packaging/build.sh

collector_pid=
cleanup() {
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null
  mountpoint -q "$root/proc" && umount "$root/proc"
  return 0
}
trap cleanup EXIT

# A command inside the root, with a clean environment as a package
# manager or an operator's shell there would have it.
in_root_cmd=(chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
  DEBIAN_FRONTEND=noninteractive)
in_root() { "${in_root_cmd[@]}" "$@"; }
as_collector() { in_root runuser -u annexa-collector -- "$@"; }
mode_of() { in_root stat -c '%a %U:%G' "$1"; }
expect_mode() {
  local got
  got=$(mode_of "$1") || fail "$1 is missing"
  [ "$got" = "$2" ] || fail "$1 is $got, want $2"
}
expect_absent() { [ ! -e "$root$1" ] || fail "$1 is still there"; }
expect_present() { [ -e "$root$1" ] || fail "$1 is gone"; }
sum_of() { sha256sum "$root$1" | cut -d' ' -f1; }

step "debootstrap --variant=minbase bookworm"
if mountpoint -q "$root/proc"; then umount "$root/proc"; fi
rm -rf "$work"
mkdir -p "$work"
debootstrap --variant=minbase bookworm "$root" >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed (log: $work/debootstrap.log)"; }
mount -t proc proc "$root/proc"
mkdir -p "$root/tmp/packages"
cp "$packages"/annexa-agent_*.deb "$packages"/annexa-collector_*.deb "$root/tmp/packages/"
agent_deb=$(cd "$root" && ls tmp/packages/annexa-agent_*.deb)
collector_deb=$(cd "$root" && ls tmp/packages/annexa-collector_*.deb)
version=$(dpkg-deb -f "$root/$agent_deb" Version)

step "install annexa-collector"
out=$(in_root dpkg -i "/$collector_deb" 2>&1) || { echo "$out"; fail "dpkg -i annexa-collector failed"; }
echo "$out"
in_root getent passwd annexa-collector >/dev/null || fail "no annexa-collector user"
[ "$(in_root getent passwd annexa-collector | cut -d: -f7)" = /usr/sbin/nologin ] ||
  fail "the annexa-collector user can log in"
expect_mode /var/lib/annexa-collector "700 annexa-collector:annexa-collector"
expect_mode /etc/annexa/collector.toml "640 root:annexa-collector"
expect_mode /var/lib/annexa-collector/collector.key "600 annexa-collector:annexa-collector"
expect_mode /var/lib/annexa-collector/ca.key "600 annexa-collector:annexa-collector"
fingerprint=$(grep -o 'SHA256:[0-9a-f]\{64\}' <<<"$out" | head -1)
[ -n "$fingerprint" ] || fail "the collector's postinst printed no CA fingerprint"

step "install annexa-agent"
out=$(in_root dpkg -i "/$agent_deb" 2>&1) || { echo "$out"; fail "dpkg -i annexa-agent failed"; }
echo "$out"
grep -q 'not enrolled yet. Enroll with:' <<<"$out" || fail "the agent's postinst did not say how to enroll"
expect_mode /var/lib/annexa "700 root:root"
expect_mode /etc/annexa/agent.toml "644 root:root"
expect_mode /etc/annexa/checks.d "755 root:root"
expect_mode /usr/share/man/man1/annexa.1.gz "644 root:root"
expect_mode /usr/share/bash-completion/completions/annexa "644 root:root"
got=$(in_root annexa --version)
[ "$got" = "annexa ${version%-*}" ] || fail "annexa --version says '$got', the package is $version"
echo "$got"

step "annexa scan --root / inside the root"
status=0
in_root annexa scan --root / --format json -o /tmp/scan.json || status=$?
[ "$status" -le 1 ] || fail "annexa scan --root / exited $status"
scan=$(cat "$root/tmp/scan.json")
grep -q '"schema": *"annexa.scan/' <<<"$scan" || fail "the scan wrote no annexa.scan report"
summary=$(sed -n '/^  "summary": {/,/^  }/p' <<<"$scan" | tr -d ' \n')
[ -n "$summary" ] || fail "the scan report has no summary"
echo "$summary"
# Every check's verdict on a stock minbase root, as packaging/minbase-verdicts
# records it (with the reason for each that is not a plain fail): a check that
# starts to pass, fail, err or not apply differently on real Debian is caught
# here. ANNEXA_BLESS=1 rewrites the file from this run.
verdicts=packaging/minbase-verdicts
python3 - "$root/tmp/scan.json" "$verdicts" "${ANNEXA_BLESS:-}" <<'PY' || fail "verdicts differ from $verdicts"
import json, sys
report, path, bless = sys.argv[1], sys.argv[2], sys.argv[3]
got = {r["check_id"]: (r["status"], r["message"]) for r in json.load(open(report))["results"]}
if bless:
    with open(path, "w") as f:
        f.write("# Verdicts of `annexa scan --root /` in a fresh `debootstrap --variant=minbase\n"
                "# bookworm` root with annexa-agent and annexa-collector installed, checked by\n"
                "# packaging/install-test.sh. One line per check: id, status, and what the\n"
                "# scan said (for reading; only the status is compared).\n")
        for cid in sorted(got):
            f.write(f"{cid} {got[cid][0]} # {got[cid][1][:140]}\n")
    sys.exit(0)
want = {}
for line in open(path):
    line = line.split("#", 1)[0].split()
    if line:
        want[line[0]] = line[1]
wrong = [f"{c}: {got.get(c, ('missing', ''))[0]} (want {w}): {got.get(c, ('', ''))[1]}"
         for c, w in sorted(want.items()) if got.get(c, ("missing",))[0] != w]
wrong += [f"{c}: {s} (not in the file): {m}" for c, (s, m) in sorted(got.items()) if c not in want]
print("\n".join(wrong), file=sys.stderr)
sys.exit(1 if wrong else 0)
PY
echo "verdicts of all $(grep -c '^[a-z]' "$verdicts") checks as recorded in $verdicts"

step "enroll the agent with the collector and deliver"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The operator's edits to both conffiles must survive the upgrade below.
sed -i "s|^# listen = .*|listen = \"127.0.0.1:$port\"|" "$root/etc/annexa/collector.toml"
sed -i 's|^# splay_seconds = .*|splay_seconds = 7|' "$root/etc/annexa/agent.toml"
start_collector() {
  # Not through in_root: $! must be the process itself, to be stopped.
  "${in_root_cmd[@]}" runuser -u annexa-collector -- \
    annexa-collector serve --config /etc/annexa/collector.toml >>"$work/collector.log" 2>&1 &
  collector_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$collector_pid" 2>/dev/null || { cat "$work/collector.log" >&2; fail "the collector exited"; }
    sleep 0.1
  done
  fail "the collector does not listen on 127.0.0.1:$port"
}
stop_collector() { kill "$collector_pid"; wait "$collector_pid" || true; collector_pid=; }
start_collector
as_collector annexa-collector token create --ttl 10m --config /etc/annexa/collector.toml >"$root/tmp/token"
in_root annexa enroll --server "https://127.0.0.1:$port" --token-file /tmp/token --ca-fingerprint "$fingerprint"
in_root annexa run --once || fail "annexa run --once did not deliver"
key_sum=$(sum_of /var/lib/annexa/agent.key)
enrollment_sum=$(sum_of /var/lib/annexa/enrollment.json)
collector_key_sum=$(sum_of /var/lib/annexa-collector/collector.key)
expect_mode /var/lib/annexa/agent.key "600 root:root"
stop_collector

step "upgrade both packages to a later version"
# The same files under a later version: what dpkg does on upgrade (prerm,
# unpack over, postinst configure with the old version) is what is tested.
later=${version}+1
for deb in "$agent_deb" "$collector_deb"; do
  rm -rf "$work/repack"
  dpkg-deb -R "$root/$deb" "$work/repack"
  sed -i "s/^Version: .*/Version: $later/" "$work/repack/DEBIAN/control"
  dpkg-deb --root-owner-group -b "$work/repack" "$root/tmp/packages/upgrade-$(basename "$deb")" >/dev/null
done
in_root sh -c 'dpkg -i /tmp/packages/upgrade-*.deb </dev/null' || fail "the upgrade failed"
for pkg in annexa-agent annexa-collector; do
  [ "$(in_root dpkg-query -W -f '${Version}' $pkg)" = "$later" ] || fail "$pkg was not upgraded"
done
[ "$(sum_of /var/lib/annexa/agent.key)" = "$key_sum" ] || fail "the upgrade changed the agent key"
[ "$(sum_of /var/lib/annexa/enrollment.json)" = "$enrollment_sum" ] || fail "the upgrade changed the enrollment"
[ "$(sum_of /var/lib/annexa-collector/collector.key)" = "$collector_key_sum" ] || fail "the upgrade changed the collector key"
grep -qx 'splay_seconds = 7' "$root/etc/annexa/agent.toml" || fail "the upgrade lost the edit to agent.toml"
grep -qx "listen = \"127.0.0.1:$port\"" "$root/etc/annexa/collector.toml" || fail "the upgrade lost the edit to collector.toml"
expect_mode /etc/annexa/collector.toml "640 root:annexa-collector"
expect_mode /var/lib/annexa "700 root:root"
# The same agent goes on with its chain: the collector accepts only the
# next sequence number from the enrolled key.
start_collector
in_root annexa run --once || fail "after the upgrade, annexa run --once did not deliver"
stop_collector

step "remove: configuration and evidence stay"
in_root dpkg -r annexa-agent annexa-collector
expect_absent /usr/bin/annexa
expect_absent /usr/bin/annexa-collector
expect_absent /usr/lib/systemd/system/annexa.service
for kept in /etc/annexa/agent.toml /etc/annexa/collector.toml /var/lib/annexa/agent.key \
  /var/lib/annexa/enrollment.json /var/lib/annexa-collector/collector.key; do
  expect_present "$kept"
done

step "purge: what remains"
in_root dpkg -P annexa-agent annexa-collector
rm -rf "$root/tmp/packages" "$root/tmp/token" "$root/tmp/scan.json"  # this test's own files
left=$(cd "$root" && find . -xdev \( -name '*annexa*' -o -path ./etc/annexa \) -print | sort)
[ -z "$left" ] || fail "purge left: $left"
[ -z "$(in_root dpkg -l | grep annexa || true)" ] || fail "dpkg still lists annexa"
# Kept on purpose (packaging/README.md): Debian does not remove system users.
in_root getent passwd annexa-collector >/dev/null || fail "the annexa-collector user went away"
echo "purge left only the annexa-collector system user"
echo "install test: passed (annexa $version in a debootstrap minbase bookworm root)"
