#!/usr/bin/env bash
# Installs the Debian package DEB on this machine (root), runs the unit's
# ExecStart as user fleetcore (systemd need not be PID 1) against a private
# database on free ports, sends simulated devices, reads /metrics and
# /readyz, reloads with SIGHUP (log level and an allow-list entry), stops
# it with SIGTERM (exit 0 expected) and purges the package. Leaves the
# machine as it found it, also on failure.
set -euo pipefail
deb=${1:?usage: test-package.sh fleetcore_VERSION_ARCH.deb}
[ "$(id -u)" = 0 ] || { echo "test-package: needs root (dpkg -i)" >&2; exit 1; }
if dpkg -s fleetcore >/dev/null 2>&1; then
  echo "test-package: a fleetcore package is already installed; not touching it" >&2; exit 1
fi
db="fleetcore_pkgtest_$$"
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  dpkg --purge fleetcore >/dev/null 2>&1 || true
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "test-package: FAIL: $*" >&2; echo "--- log:" >&2; cat "$work/log" >&2 || true; exit 1; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

dpkg -i "$deb" >/dev/null
getent passwd fleetcore >/dev/null || fail "postinst made no fleetcore user"
[ "$(stat -c %U /var/lib/fleetcore)" = fleetcore ] || fail "/var/lib/fleetcore is not fleetcore's"
exec_start=$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/fleetcore.service)
[ -n "$exec_start" ] || fail "no ExecStart in the unit"
for f in grafana/fleetcore.json prometheus/alerts.yml prometheus/legacy.yml; do
  [ -s "/usr/share/fleetcore/$f" ] || fail "the package lacks /usr/share/fleetcore/$f"
done

# The shipped config with a private database, no shared broker queue and
# free ports: listeners on port 0 (their addresses are read from the log).
conf=/etc/fleetcore/fleetcore.hcl
api=$(freeport)
sed -i -E -e "s|^(  address = )\"[^\"]*\"|\1\"127.0.0.1:0\"|" \
  -e "s|^(  url       = )\"postgres://[^\"]*\"|\1\"postgres://postgres@127.0.0.1:5432/$db?sslmode=disable\"|" \
  -e "s|^(  url               = )\"amqp://[^\"]*\"|\1\"\"|" "$conf"
# the api block's address
python3 - "$conf" "$api" <<'PY'
import re, sys
p, port = sys.argv[1], sys.argv[2]
s = open(p).read()
s = re.sub(r'(api \{\n  address = )"[^"]*"', r'\1"127.0.0.1:%s"' % port, s)
s = s.replace('listener "jsonl" {\n  address = "127.0.0.1:0"', 'listener "jsonl" {\n  address = "127.0.0.1:0"\n  allow_devices = ["sim-allowed"]')
open(p, 'w').write(s)
PY
grep -q 'allow_devices = \["sim-allowed"\]' "$conf" || fail "could not set the jsonl allow-list"

cd /var/lib/fleetcore
setpriv --reuid=fleetcore --regid=fleetcore --init-groups $exec_start >"$work/log" 2>&1 &
pid=$!
cd /
wait_for() { # wait_for SECONDS CMD… : until CMD succeeds
  local t=$1; shift
  for _ in $(seq 1 $((t * 10))); do "$@" && return 0; kill -0 "$pid" 2>/dev/null || return 1; sleep 0.1; done
  return 1
}
wait_for 120 curl -fs -o /dev/null "http://127.0.0.1:$api/readyz" || fail "/readyz not 200 within 120 s"
# The package ships no rule files: the rules embedded in the binary serve
# while /etc/fleetcore/rules is missing; /readyz is 200 only once they are live.
grep -q 'quality rules in service: .*rules=[1-9][0-9]* built_in=true' "$work/log" || fail "the built-in rules embedded in the binary are not served"
jsonl=$(sed -nE 's/.*listening: listener=jsonl protocol=jsonl transport=tcp address=([0-9.:]+).*/\1/p' "$work/log" | head -1)
tel=$(sed -nE 's/.*listening: listener=teltonika protocol=teltonika transport=tcp address=([0-9.:]+).*/\1/p' "$work/log" | head -1)
[ -n "$jsonl" ] && [ -n "$tel" ] || fail "listener addresses not in the log"

/usr/bin/fleetcore simulate -target "teltonika=$tel" -protocol teltonika -devices 5 -rate 5 -duration 3s -quiet \
  -verify-db "postgres://postgres@127.0.0.1:5432/$db?sslmode=disable" >"$work/sim" 2>&1 || { cat "$work/sim" >&2; fail "simulate"; }
curl -fsS "http://127.0.0.1:$api/metrics" >"$work/metrics" || fail "/metrics"
grep -q '^fleetcore_' "$work/metrics" || fail "/metrics has no fleetcore_ families"

line() { printf '{"device_id":"%s","ts":"2026-12-01T10:00:00Z","lat":1,"lon":2}\n' "$1"; }
jsonl_reply() { python3 - "$jsonl" "$(line "$1")" <<'PY'
import socket, sys
h, p = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((h, int(p)), timeout=10)
s.sendall((sys.argv[2] + "\n").encode())
print(s.makefile().readline().strip())
PY
}
jsonl_reply sim-other | grep -q '"ok"' && fail "a device off the allow-list was served"

# SIGHUP with another log level and one more allowed device.
sed -i -e 's/^log_level  = "info"/log_level  = "debug"/' \
  -e 's/allow_devices = \["sim-allowed"\]/allow_devices = ["sim-allowed", "sim-other"]/' "$conf"
kill -HUP "$pid"
wait_for 30 grep -q 'allow-list changed' "$work/log" || fail "SIGHUP: no allow-list change logged"
grep -q 'log level changed: from=info to=debug' "$work/log" || fail "SIGHUP: no log level change logged"
jsonl_reply sim-other | grep -q '"ok"' || fail "the device added on SIGHUP was not served"

kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
pid=""
[ "$rc" = 0 ] || fail "SIGTERM: exit $rc, want 0"
grep -q 'stopped' "$work/log" || fail "no clean stop in the log"

dpkg --purge fleetcore >/dev/null
getent passwd fleetcore >/dev/null && fail "purge left the fleetcore user"
[ -e /var/lib/fleetcore ] && fail "purge left /var/lib/fleetcore"
[ -e /usr/bin/fleetcore ] && fail "purge left /usr/bin/fleetcore"
echo "test-package: ok (installed, served, simulated, reloaded, stopped with exit 0, purged)"
