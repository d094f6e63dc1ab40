#!/usr/bin/env bash
# The release binaries every benchmark runs, built as one set so that the
# scripts share one build (a different set of packages would unify the
# dependencies' features differently and build them again).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo build --release -q --locked \
  -p annexa-agent -p annexa-collector -p annexa-bench -p annexa-tests --bins
