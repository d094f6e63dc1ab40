# annexa-agent %postun ($1: 0 erase, 1 upgrade). RPM has no purge: the
# state directory (key, spool, receipts) stays after an erase; remove
# /var/lib/annexa by hand to forget this host's chain.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
