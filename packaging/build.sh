#!/usr/bin/env bash
# Builds the four packages into target/packages/: annexa-agent and
# annexa-collector, each as .deb (cargo-deb) and .rpm (cargo-generate-rpm).
#
#   packaging/build.sh
#
# Installs cargo-deb and cargo-generate-rpm with `cargo install --locked`
# when they are missing. Man pages and shell completions are generated from
# the binaries' own CLI definitions into packaging/build/.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
for tool in cargo-deb cargo-generate-rpm; do
  if ! command -v "$tool" >/dev/null; then
    echo "installing $tool" >&2
    cargo install --locked --quiet "$tool"
  fi
done

cargo build --release --locked -p annexa-agent -p annexa-collector

build=packaging/build
rm -rf "$build"
for bin in annexa annexa-collector; do
  case $bin in annexa) kind=agent ;; *) kind=collector ;; esac
  mkdir -p "$build/man/$kind" "$build/completions" "$build/bin"
  # The .rpm ships a stripped copy (cargo-deb strips its own; rpmbuild's
  # brp scripts would, and rpmlint checks it).
  strip --strip-unneeded -o "$build/bin/$bin" "$target/release/$bin"
  "$target/release/$bin" manpages "$build/man/$kind"
  gzip -9n "$build/man/$kind"/*.1
  "$target/release/$bin" completions bash >"$build/completions/$bin.bash"
  "$target/release/$bin" completions zsh >"$build/completions/_$bin"
  "$target/release/$bin" completions fish >"$build/completions/$bin.fish"
done

out=$target/packages
rm -rf "$out"
mkdir -p "$out"
for crate in agent:annexa-agent collector-server:annexa-collector; do
  dir=${crate%%:*} pkg=${crate#*:}
  cargo deb --no-build --package "$pkg" --output "$out/" >/dev/null
  cargo generate-rpm --package "$dir" --target-dir "$target" --output "$out/" >/dev/null
done
ls -1 "$out"
