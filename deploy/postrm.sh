#!/bin/sh
# fleetcore postrm: purge removes the state folder (spool, compile caches)
# and the system user; remove keeps both.
set -e
if [ "$1" = purge ]; then
  rm -rf /var/lib/fleetcore /etc/fleetcore
  if getent passwd fleetcore >/dev/null; then
    deluser --system fleetcore >/dev/null 2>&1 || userdel fleetcore || true
  fi
  if getent group fleetcore >/dev/null; then
    delgroup --system fleetcore >/dev/null 2>&1 || groupdel fleetcore || true
  fi
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
