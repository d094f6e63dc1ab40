# annexa-collector %preun ($1: 0 erase, 1 upgrade)
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now annexa-collector.service >/dev/null 2>&1 || :
fi
