#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine that has only the Rust
# toolchain: installs what the tests need (once; later runs install
# nothing), starts PostgreSQL if it is not running, then runs
# `cargo test --workspace` with any arguments given.
#
#   tests/run.sh                      # everything
#   tests/run.sh -p annexa-checks     # one crate (arguments go to cargo test)
#
# ANNEXA_TEST_POSTGRES names another PostgreSQL server's maintenance
# database (postgres://user@host:port/postgres); each PostgreSQL test makes
# a database of its own there and drops it (tests/src/lib.rs, PgScratch).
set -euo pipefail
cd "$(dirname "$0")/.."

# The build needs a C compiler and linker (ring, SQLite) and the crate
# registry's certificates; report_e2e loads the rendered HTML in headless
# Chromium; the gate tests validate JUnit XML with xmllint; the PostgreSQL
# store's tests need a server and psql; the fault-injection test mounts a
# tmpfs (util-linux); the RHEL-family fixture roots are made with rpm's own
# tools (an rpm database written by rpm, dnf's cache by createrepo_c).
tests/ensure-tools.sh \
    cc:build-essential \
    rpmbuild:rpm \
    createrepo_c:createrepo-c \
    update-ca-certificates:ca-certificates \
    chromium:chromium \
    xmllint:libxml2-utils \
    pg_ctlcluster:postgresql \
    psql:postgresql-client \
    mount:mount

if [ -z "${ANNEXA_TEST_POSTGRES:-}" ]; then
    version=$(ls /etc/postgresql | sort -V | tail -1)
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        echo "== starting PostgreSQL"
        # A fresh install has its cluster; a machine that lost it gets one.
        [ -d "/etc/postgresql/$version/main" ] || pg_createcluster "$version" main
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
    if ! psql postgres://postgres@127.0.0.1:5432/postgres -qAtc 'SELECT 1' >/dev/null 2>&1; then
        # Debian's default asks TCP clients for a password: let the local
        # test user in without one, on 127.0.0.1 only.
        hba=/etc/postgresql/$version/main/pg_hba.conf
        if [ -w "$hba" ] && ! grep -q '^# annexa tests' "$hba"; then
            echo "== letting user postgres in from 127.0.0.1 without a password (annexa tests)"
            printf '# annexa tests\nhost all postgres 127.0.0.1/32 trust\n' | cat - "$hba" >"$hba.new"
            mv "$hba.new" "$hba"
            chown postgres:postgres "$hba"
            pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        fi
    fi
    if ! psql postgres://postgres@127.0.0.1:5432/postgres -qAtc 'SELECT 1' >/dev/null; then
        echo "PostgreSQL on 127.0.0.1:5432 does not let user postgres in without a password;" >&2
        echo "allow it (pg_hba.conf: host all postgres 127.0.0.1/32 trust) or set ANNEXA_TEST_POSTGRES" >&2
        exit 2
    fi
fi

echo "== cargo test --workspace $*"
cargo test --workspace "$@"
