# annexa-agent %post ($1: 1 install, 2 upgrade)
install -d -m 0700 -o root -g root /var/lib/annexa
install -d -m 0755 /etc/annexa/checks.d
# SELinux: directories made by a scriptlet get the labels the policy gives
# their paths (var_lib_t, etc_t), as systemd would for its own.
if command -v restorecon >/dev/null 2>&1; then
    restorecon -R /var/lib/annexa /etc/annexa >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable --now annexa.service >/dev/null 2>&1 || :
    else
        systemctl try-restart annexa.service >/dev/null 2>&1 || :
    fi
fi
if [ ! -e /var/lib/annexa/enrollment.json ]; then
    echo "annexa-agent: not enrolled yet; the service waits. Enroll with:"
    echo "  annexa enroll --server https://COLLECTOR:8443 --token-file TOKEN --ca-fingerprint SHA256:..."
fi
