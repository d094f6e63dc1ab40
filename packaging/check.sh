#!/usr/bin/env bash
# Builds the four packages (packaging/build.sh) and checks them without
# installing: lintian on the .deb files must report no error (the warnings
# left are justified in packaging/README.md), and the .rpm files must carry
# the binary, the unit, the configuration file marked as such, the man pages
# and completions, their scripts, and their dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
packaging/build.sh
out=$target/packages
fail() { echo "packaging check: $*" >&2; exit 1; }

echo "== lintian"
lintian --tag-display-limit 0 "$out"/*.deb | tee "$out/lintian.txt" || true
if grep -q '^E: ' "$out/lintian.txt"; then fail "lintian reported errors"; fi
expected='initial-upload-closes-no-bugs|non-standard-file-perm 0640 != 0644 \[etc/annexa/collector.toml\]|uses-dpkg-database-directly'
if grep '^W: ' "$out/lintian.txt" | grep -Evq "$expected"; then
  fail "a lintian warning not listed in packaging/README.md"
fi

echo "== rpmlint"
# packaging/rpmlint.toml sets the RHEL family's conventions and names the
# findings left, each justified in packaging/README.md; anything else fails.
rpmlint -c packaging/rpmlint.toml "$out"/*.rpm | tee "$out/rpmlint.txt" || true
if grep -Eq ': (E|W): ' "$out/rpmlint.txt"; then fail "rpmlint reported a finding not justified in packaging/README.md"; fi
grep -q '2 packages and 0 specfiles checked' "$out/rpmlint.txt" || fail "rpmlint did not check both .rpm files"

echo "== dpkg-deb contents"
# Captured first: grep -q closing a pipe early would fail the pipeline.
deb_agent=$(dpkg-deb -c "$out"/annexa-agent_*.deb)
for want in ./usr/bin/annexa ./etc/annexa/agent.toml ./usr/lib/systemd/system/annexa.service \
  ./usr/share/man/man1/annexa-run.1.gz ./usr/share/bash-completion/completions/annexa; do
  grep -q " $want\$" <<<"$deb_agent" || fail "annexa-agent .deb lacks $want"
done
grep -q libc6 <<<"$(dpkg-deb -f "$out"/annexa-agent_*.deb Depends)" || fail "annexa-agent .deb does not depend on libc6"
grep -qx /etc/annexa/agent.toml <<<"$(dpkg-deb -I "$out"/annexa-agent_*.deb conffiles)" || fail "agent.toml is not a conffile"
grep -qx /etc/annexa/collector.toml <<<"$(dpkg-deb -I "$out"/annexa-collector_*.deb conffiles)" || fail "collector.toml is not a conffile"
grep -q 'useradd --system' <<<"$(dpkg-deb -I "$out"/annexa-collector_*.deb postinst)" || fail "the collector's postinst does not create its user"

echo "== rpm contents, scripts, dependencies"
agent=$(ls "$out"/annexa-agent-*.rpm) collector=$(ls "$out"/annexa-collector-*.rpm)
agent_files=$(rpm -qlp "$agent") collector_files=$(rpm -qlp "$collector")
rpm -qip "$agent" "$collector" | grep -E '^(Name|Version|Release|Architecture|License|Summary)'
for want in /usr/bin/annexa /usr/lib/systemd/system/annexa.service /usr/share/man/man1/annexa.1.gz \
  /usr/share/bash-completion/completions/annexa /usr/share/zsh/site-functions/_annexa; do
  grep -qx "$want" <<<"$agent_files" || fail "annexa-agent .rpm lacks $want"
done
for want in /usr/bin/annexa-collector /usr/lib/systemd/system/annexa-collector.service \
  /usr/share/man/man1/annexa-collector-serve.1.gz; do
  grep -qx "$want" <<<"$collector_files" || fail "annexa-collector .rpm lacks $want"
done
grep -qx /etc/annexa/agent.toml <<<"$(rpm -qcp "$agent")" || fail "agent.toml is not %config in the .rpm"
grep -qx /etc/annexa/collector.toml <<<"$(rpm -qcp "$collector")" || fail "collector.toml is not %config in the .rpm"
grep -qx /etc/sysconfig/annexa <<<"$(rpm -qcp "$agent")" || fail "/etc/sysconfig/annexa is not %config in the agent .rpm"
grep -qx /etc/sysconfig/annexa-collector <<<"$(rpm -qcp "$collector")" || fail "/etc/sysconfig/annexa-collector is not %config in the collector .rpm"
grep -q 'restorecon -R /var/lib/annexa ' <<<"$(rpm -qp --scripts "$agent")" || fail "the agent .rpm does not relabel its directories for SELinux"
grep -q 'restorecon -R /var/lib/annexa-collector' <<<"$(rpm -qp --scripts "$collector")" || fail "the collector .rpm does not relabel its directories for SELinux"
grep -q 'useradd --system' <<<"$(rpm -qp --scripts "$collector")" || fail "the collector .rpm does not create its user"
grep -q 'install -d -m 0700 -o root -g root /var/lib/annexa' <<<"$(rpm -qp --scripts "$agent")" || fail "the agent .rpm does not make its state directory"
grep -qx shadow-utils <<<"$(rpm -qpR "$collector")" || fail "the collector .rpm does not require shadow-utils"
grep -q '^libc.so.6' <<<"$(rpm -qpR "$agent")" || fail "the agent .rpm does not require libc"

echo "== systemd-analyze security (offline)"
for unit in packaging/systemd/*.service; do
  systemd-analyze security --offline=true "$unit" | tail -1
done
echo "packaging check: ok"
