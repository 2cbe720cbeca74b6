#!/usr/bin/env bash
# Measures the time from `fleetcore serve` starting to /healthz 200 and to
# /readyz 200, cold (empty compile cache, new database) and warm (the same
# state directory and database again), RUNS times each; prints a Markdown
# table. Usage: benchmarks/startup/measure.sh [BIN] [RUNS]
# Needs the local Postgres (127.0.0.1:5432, user postgres) and curl; uses a
# private database and a temporary state directory, removed at the end.
# RULES_DIR (default checks-wasm/build/rules, "" for the embedded built-ins)
# is the rule folder the node serves. DECODERS_DIR (default "": none) is a
# drop-in decoder folder, e.g. protocols/wasm/build/decoders (`make
# decoders`): the node then also has the default config's listeners of its
# decoders (wialon over TCP and UDP, watch), and a cold start also has an
# empty decoder compile cache.
set -euo pipefail
bin=${1:-bin/fleetcore}
runs=${2:-3}
rules_dir=${RULES_DIR-$PWD/checks-wasm/build/rules}
decoders_dir=${DECODERS_DIR:-}
[ -n "$decoders_dir" ] && decoders_dir=$(cd "$decoders_dir" && pwd)
work=$(mktemp -d)
db="fleetcore_startup_$$"
pid=""
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# one run: prints "healthz_ms readyz_ms"
run_once() {
  local api start h="" r="" t
  api=$(freeport)
  cat >"$work/fleetcore.hcl" <<HCL
log_level = "info"
database { url = "postgres://postgres@127.0.0.1:5432/$db?sslmode=disable" }
spool { dir = "$work/state/spool" }
rules {
  dir       = "${rules_dir:-$work/no-rules}"
  cache_dir = "$work/state/wasm-cache"
}
api { address = "127.0.0.1:$api" }
listener "jsonl" { address = "127.0.0.1:0" }
listener "teltonika" { address = "127.0.0.1:0" }
HCL
  if [ -n "$decoders_dir" ]; then
    cat >>"$work/fleetcore.hcl" <<HCL
decoders {
  dir       = "$decoders_dir"
  cache_dir = "$work/state/wasm-cache/decoders"
}
listener "wialon" { address = "127.0.0.1:0" }
listener "wialon_udp" {
  protocol  = "wialon"
  transport = "udp"
  address   = "127.0.0.1:0"
}
listener "watch" { address = "127.0.0.1:0" }
HCL
  fi
  start=$(now_ms)
  "$bin" serve -config "$work/fleetcore.hcl" >>"$work/log" 2>&1 &
  pid=$!
  while :; do
    t=$(now_ms)
    if [ -z "$h" ] && curl -fs -o /dev/null -m 1 "http://127.0.0.1:$api/healthz"; then h=$((t - start)); fi
    if [ -n "$h" ] && curl -fs -o /dev/null -m 1 "http://127.0.0.1:$api/readyz"; then r=$((t - start)); break; fi
    kill -0 "$pid" 2>/dev/null || { echo "fleetcore exited; log:" >&2; cat "$work/log" >&2; exit 1; }
    [ $((t - start)) -gt 300000 ] && { echo "not ready within 300 s" >&2; exit 1; }
    sleep 0.05
  done
  kill -TERM "$pid"; wait "$pid" || true; pid=""
  echo "$h $r"
}

echo "| start | run | to /healthz 200 | to /readyz 200 |"
echo "|---|---|---|---|"
for i in $(seq 1 "$runs"); do
  rm -rf "$work/state"
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  read -r h r < <(run_once)
  printf '| cold | %d | %.2f s | %.2f s |\n' "$i" "$(echo "$h/1000" | bc -l)" "$(echo "$r/1000" | bc -l)"
done
for i in $(seq 1 "$runs"); do
  read -r h r < <(run_once)
  printf '| warm | %d | %.2f s | %.2f s |\n' "$i" "$(echo "$h/1000" | bc -l)" "$(echo "$r/1000" | bc -l)"
done
