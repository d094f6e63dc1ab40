#!/usr/bin/env bash
# Installs the Debian packages of the commands that are missing, once:
#
#   tests/ensure-tools.sh xmllint:libxml2-utils chromium:chromium
#
# Each argument is COMMAND:PACKAGE; a package is installed only when its
# command is not on PATH, so a second run installs nothing and needs no
# network. Uses sudo when not run as root.
set -euo pipefail
missing=()
for pair in "$@"; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1; then
        case " ${missing[*]:-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
echo "== installing ${missing[*]} (Debian packages)"
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
