# annexa-collector %post ($1: 1 install, 2 upgrade): a private data
# directory, and on first install the keys and private CA.
install -d -m 0700 -o annexa-collector -g annexa-collector /var/lib/annexa-collector
# SELinux: the data directory and what init writes into it get the labels
# the policy gives their paths (var_lib_t), not the scriptlet's context.
relabel() {
    if command -v restorecon >/dev/null 2>&1; then
        restorecon -R /var/lib/annexa-collector /etc/annexa >/dev/null 2>&1 || :
    fi
}
relabel
if [ ! -e /var/lib/annexa-collector/collector.key ]; then
    runuser -u annexa-collector -- /usr/bin/annexa-collector init \
        --config /etc/annexa/collector.toml --data /var/lib/annexa-collector || :
    relabel
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable --now annexa-collector.service >/dev/null 2>&1 || :
    else
        systemctl try-restart annexa-collector.service >/dev/null 2>&1 || :
    fi
fi
