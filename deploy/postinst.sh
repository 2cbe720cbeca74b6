#!/bin/sh
# fleetcore postinst: the system user, the state folder, the config's
# group (it may hold passwords), then the service when systemd runs.
set -e
if [ "$1" = configure ]; then
  if ! getent group fleetcore >/dev/null; then
    addgroup --system fleetcore >/dev/null
  fi
  if ! getent passwd fleetcore >/dev/null; then
    adduser --system --ingroup fleetcore --home /var/lib/fleetcore --no-create-home \
      --shell /usr/sbin/nologin --gecos "fleetcore server" fleetcore >/dev/null
  fi
  install -d -o fleetcore -g fleetcore -m 0750 /var/lib/fleetcore
  chgrp fleetcore /etc/fleetcore/fleetcore.hcl
  chmod 0640 /etc/fleetcore/fleetcore.hcl
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    systemctl enable fleetcore.service >/dev/null || true
    systemctl restart fleetcore.service || true
  fi
fi
exit 0
