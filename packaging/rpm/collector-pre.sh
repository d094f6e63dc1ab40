# annexa-collector %pre: its own system user.
getent group annexa-collector >/dev/null || groupadd --system annexa-collector
getent passwd annexa-collector >/dev/null || useradd --system --gid annexa-collector \
    --home-dir /var/lib/annexa-collector --no-create-home --shell /sbin/nologin \
    --comment "annexa evidence collector" annexa-collector
