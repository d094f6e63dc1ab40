#!/usr/bin/env bash
# Checks the README's test command where a newcomer runs it: a fresh
# Debian 12 root (debootstrap minbase) that has only the Rust toolchain
# (this machine's stable rustup toolchain, copied in) and a clone of the
# repository's HEAD, in a network namespace of its own, so that nothing
# this machine runs (its PostgreSQL on 127.0.0.1, its packages) is seen.
# Inside, `tests/run.sh` installs what the tests need, starts PostgreSQL
# and runs the whole suite.
#
#   sudo tests/fresh-machine.sh               # root in /var/tmp/annexa-fresh
#   sudo tests/fresh-machine.sh DIR           # another root (reused if it has one)
#
# Needs root, debootstrap, iproute2 and iptables (NAT for the namespace's
# access to the package registries), and network access to Debian's
# archive (debootstrap's default mirror) and the crate registry. Takes the
# time of a whole build from nothing plus the suite (about 30 minutes on 2
# cores). The log is DIR/fresh-machine.log.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=$(realpath -m "${1:-/var/tmp/annexa-fresh}")
ns=annexa-fresh
fail() { echo "fresh-machine: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot, network namespaces)"
for tool in debootstrap ip iptables; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
toolchain=$(rustup default | awk '{print $1}')
[ -n "$toolchain" ] || fail "no default rustup toolchain"
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_home=${CARGO_HOME:-$HOME/.cargo}

if [ ! -x "$root/bin/bash" ]; then
    echo "== debootstrap --variant=minbase bookworm $root"
    debootstrap --variant=minbase bookworm "$root" >"$root.debootstrap.log" 2>&1 ||
        fail "debootstrap failed (log: $root.debootstrap.log)"
fi

echo "== the Rust toolchain ($toolchain) and a clone of HEAD"
mkdir -p "$root/root/.rustup/toolchains" "$root/root/.cargo/bin"
cp -a "$rustup_home/toolchains/$toolchain" "$root/root/.rustup/toolchains/"
printf 'default_toolchain = "%s"\nprofile = "minimal"\nversion = "12"\n' "$toolchain" \
    >"$root/root/.rustup/settings.toml"
cp -a "$cargo_home/bin/rustup" "$root/root/.cargo/bin/"
for proxy in cargo rustc rustdoc cargo-fmt cargo-clippy clippy-driver rustfmt; do
    ln -sf rustup "$root/root/.cargo/bin/$proxy"
done
# A root used before keeps its build directory (target/), nothing else.
if [ -d "$root/src/.git" ]; then
    git -C "$root/src" fetch -q "$repo" HEAD
    git -C "$root/src" reset -q --hard FETCH_HEAD
    git -C "$root/src" clean -qfdx -e target
else
    git clone -q --no-hardlinks "$repo" "$root/src"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The site's own trust anchors (a network egress proxy's CA, say) are part
# of any machine here: ca-certificates picks them up when tests/run.sh
# installs it.
if [ -d /usr/local/share/ca-certificates ]; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi

# Its own network: a veth pair to this host, NAT to the outside.
# What the root started (PostgreSQL) ends with the run: a server left in a
# namespace that is gone would hold the cluster's pid file.
stop_root_processes() {
    local p pids=()
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && pids+=("${p#/proc/}")
    done
    if [ ${#pids[@]} -gt 0 ]; then
        kill "${pids[@]}" 2>/dev/null || true
        sleep 2
        kill -9 "${pids[@]}" 2>/dev/null || true
    fi
}
cleanup() {
    stop_root_processes
    umount -R -l "$root" 2>/dev/null || true
    iptables -t nat -D POSTROUTING -s 10.213.0.0/30 -j MASQUERADE 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    ip link del af0 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add "$ns"
ip link add af0 type veth peer name af1
ip link set af1 netns "$ns"
ip addr add 10.213.0.1/30 dev af0
ip link set af0 up
ip netns exec "$ns" ip addr add 10.213.0.2/30 dev af1
ip netns exec "$ns" ip link set af1 up
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip route add default via 10.213.0.1
sysctl -qw net.ipv4.ip_forward=1
iptables -t nat -A POSTROUTING -s 10.213.0.0/30 -j MASQUERADE

# The root is a mount point of its own, as on a machine: what the kernel
# lists in /proc/mounts inside it (the capacity checks read it) is what is
# mounted under it.
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --rbind /dev "$root/dev"

echo "== tests/run.sh in the fresh root (log: $root/fresh-machine.log)"
set +e
ip netns exec "$ns" chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c 'cd /src && tests/run.sh' >"$root/fresh-machine.log" 2>&1
rc=$?
set -e
grep -E '^test result:|^== ' "$root/fresh-machine.log" | sort | uniq -c | sort -rn | head -20
tail -5 "$root/fresh-machine.log"
if [ $rc -ne 0 ]; then fail "tests/run.sh failed in the fresh root (exit $rc)"; fi
echo "fresh-machine: tests/run.sh passed in a fresh Debian 12 root"
