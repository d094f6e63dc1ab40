# annexa-collector %postun ($1: 0 erase, 1 upgrade). RPM has no purge: the
# data directory (keys, CA, evidence store) and the user stay after an
# erase.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
