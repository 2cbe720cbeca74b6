# fleetcore default configuration: what `make run` uses.
# Every key is optional unless marked; see README.md "Configuration" for all
# keys and their defaults. FLEETCORE_DATABASE_URL and FLEETCORE_AMQP_URL
# override the URLs below.

log_level  = "info"
log_format = "text" # or "json"

database {
  url       = "postgres://postgres@127.0.0.1:5432/fleetcore?sslmode=disable"
  max_conns = 8
}

ingest {
  batch_max_signals = 4096
  batch_max_age     = "10ms"
  writers           = 2
  # A batch is written while another write is in flight only once it holds
  # this many signals: fewer, larger COPYs cost Postgres less per row.
  parallel_min_signals = 1024
  breaker_probe     = "2s" # how often a failed Postgres is probed
}

# Durability chain: Postgres → RabbitMQ → disk spool; a frame is acked only
# once one of them has the batch (core/failover/README.md). Remove the url
# (or the block) and the chain is Postgres → spool.
amqp {
  url               = "amqp://guest:guest@127.0.0.1:5672/"
  queue             = "fleetcore.failover"
  dead_letter_queue = "fleetcore.failover.dead"
  queue_type        = "quorum" # classic is used if the broker refuses quorum
  confirm_timeout   = "5s"
  confirm_window    = 256
  prefetch          = 16
  max_redeliveries  = 20
  reconnect_max     = "10s"
}

spool {
  dir           = "../var/spool" # relative paths are relative to this file's folder
  max_bytes     = 1073741824 # at this size acks wait (backpressure), nothing is dropped
  segment_bytes = 16777216
}

organizer {
  replay_interval = "2s"  # replay of the failover queue and the spool into Postgres
  score_interval  = "30s" # integrity scores and alerts
  health_interval = "10s" # service checks behind /readyz and the dashboard
}

# Data-quality rules: WebAssembly modules and check files dropped into `dir` are picked up
# while running (see checks-wasm/README.md). `make rules` builds the
# built-in set into checks-wasm/build/rules.
rules {
  dir              = "../checks-wasm/build/rules"
  cache_dir        = "../var/wasm-cache" # compiled rules, kept across restarts
  interval         = "2s"   # when caught up; a run that was behind runs again at once
  batch_size       = 1024
  max_batch_size   = 8192   # batches grow up to this while the rules are behind
  timeout          = "2s" # per batch; a runaway rule is stopped
  memory_limit_mib = 64
  concurrency      = 1
  # intervals = { "dup.burst" = "5m" }    # per-rule schedule
  # sample    = { "gps.teleport" = 10 }   # evaluate 1 signal in 10
  # mode      = { "speed.limit" = "shadow" } # evaluate and store, left out of scores and alerts

  # Declarative checks, compiled to WebAssembly by fleetcore (also as
  # NAME.check.hcl files in `dir`; plugins/checklang/README.md). Left
  # commented so the default set of rules stays the built-in one:
  # check "speed.limit" {
  #   dimension = "validity"
  #   fail_if   = "speed > 200"
  #   warn_if   = "speed > 160"
  #   reason    = "speed {speed} km/h over the limit"
  # }
}

# Drop-in protocol decoders: WebAssembly modules (protocols/wasm/ABI.md) in
# `dir` are compiled, self-tested and served while running; a listener names
# one like a built-in protocol (README.md "Adding a device without
# rebuilding"). `make decoders` builds the examples into this folder.
decoders {
  dir              = "../protocols/wasm/build/decoders"
  cache_dir        = "../var/wasm-cache/decoders"
  budget           = "50ms" # per fc_frame / fc_decode call; over it = a guest failure
  memory_limit_mib = 32     # per instance
  max_failures     = 5      # guest failures in a row that disable a version (the previous one is restored)
  poll             = "2s"   # how often the folder is rescanned
}

# Per-device integrity scores and alerts (core/integrity/README.md).
integrity {
  enter_below       = 60 # score_low opens after enter_windows windows below this
  clear_above       = 75 # … and clears after clear_windows windows above this
  enter_windows     = 2
  clear_windows     = 2
  gps_broken_after  = "10m"
  clock_drift_limit = "2m"
  # expected_interval = "30s" # learned per device when not set
  # webhook = "https://ops.example/fleetcore-alerts"
}

# Rejected frames (bad CRC, garbage, refused records) are kept in
# rejected_frames, bounded: per row, per source IP, and in total
# (README.md "Quarantine of rejected frames").
quarantine {
  max_raw_bytes    = 4096    # raw bytes kept per frame (its full length is kept too)
  per_source_rate  = 60      # rows a minute per source IP, after a burst of
  per_source_burst = 20
  rate             = 6000    # rows a minute for all sources, after a burst of
  burst            = 1000
  queue            = 4096    # waiting for the database; beyond it dropped and counted
  retention        = "720h"  # 30 days ("0s": keep)
  max_rows         = 1000000 # 0: no cap
}

# Partitions of signals (by device time, UTC) and retention. The job
# partitions_retention keeps the current and partitions_ahead partitions
# created, keeps signals_default empty, drops whole signals partitions older
# than `signals`, deletes findings and cleared alerts in batches. ("0s": keep.)
retention {
  partition_months = 1
  partitions_ahead = 3
  signals          = "0s"
  findings         = "2160h" # 90 days
  alerts           = "8760h" # 365 days, cleared alerts only
  interval         = "1h"
  batch_rows       = 10000
}

# HTTP API, /metrics and the dashboard. Beyond loopback a bearer token is
# required: read_token (or FLEETCORE_API_READ_TOKEN) may read everything,
# admin_token (or FLEETCORE_API_ADMIN_TOKEN) may also change state and use
# /debug/pprof; token (FLEETCORE_API_TOKEN), the single token of earlier
# versions, is the admin token. Each is at least 16 bytes of printable ASCII
# without spaces, quotes, ";" or "\", e.g. the output of openssl rand -hex 32.
# A tls block serves https (files re-read on SIGHUP):
#   tls {
#     cert_file      = "/etc/fleetcore/tls/api.crt"
#     key_file       = "/etc/fleetcore/tls/api.key"
#     client_ca_file = "/etc/fleetcore/tls/clients.pem" # optional: require client certificates
#   }
# map_tiles is the dashboard map's tile URL template, e.g.
# "https://tile.openstreetmap.org/{z}/{x}/{y}.png", with map_attribution the
# provider's credit line; empty (the default): a plain background that needs
# no network beyond fleetcore.
api {
  address = "127.0.0.1:8080"
}

# Bounds across every listener: open TCP connections, and the bytes of
# partial frames buffered beyond each connection's initial 2 KiB (a
# connection that needs more than is left is closed without ack).
gateway {
  max_connections    = 100000
  max_buffered_bytes = 33554432 # 32 MiB
}

# One block per endpoint; the label names it and, unless `protocol` says
# otherwise, picks the decoder. Each protocol's README lists its options.
# Every listener also takes max_frame (65536), max_connections (50000),
# max_connections_per_ip (1000; raise it for fleets behind one NAT or a
# private APN), read_timeout ("10m", idle) and frame_timeout ("30s": from a
# frame's first byte to its last). A TCP listener with a tls block speaks TLS
# (same acks and quarantine; the handshake must finish within frame_timeout).
# Behind HAProxy (deploy/README.md), proxy_protocol = true reads the PROXY
# header HAProxy's send-proxy-v2 writes, so logs, quarantine and the per-IP
# cap see the device's address; connections without one are refused.
# A tls block looks like:
#   tls {
#     cert_file      = "/etc/fleetcore/tls/devices.crt"
#     key_file       = "/etc/fleetcore/tls/devices.key"
#     client_ca_file = "/etc/fleetcore/tls/devices-ca.pem" # optional: mutual TLS
#   }
listener "teltonika" {
  address = ":5027"
}

listener "teltonika_udp" {
  protocol  = "teltonika"
  transport = "udp"
  address   = ":5027"
}

listener "gt06" {
  address = ":5023"
}

listener "freematics" {
  address = ":5170"
}

listener "freematics_udp" {
  protocol  = "freematics"
  transport = "udp"
  address   = ":5170"
}

listener "gl200" {
  address = ":5004"
}

listener "gl200_udp" {
  protocol  = "gl200"
  transport = "udp"
  address   = ":5004"
}

listener "h02" {
  address = ":5013"
}

listener "h02_udp" {
  protocol  = "h02"
  transport = "udp"
  address   = ":5013"
}

listener "jt808" {
  address = ":5015"
}

listener "ulbotech" {
  address = ":5072"
}

listener "gps103" {
  address = ":5001"
}

listener "gps103_udp" {
  protocol  = "gps103"
  transport = "udp"
  address   = ":5001"
}

listener "tk103" {
  address = ":5002"
}

listener "tk103_udp" {
  protocol  = "tk103"
  transport = "udp"
  address   = ":5002"
}

listener "castel" {
  address = ":5086"
}

listener "castel_udp" {
  protocol  = "castel"
  transport = "udp"
  address   = ":5086"
}

listener "navis" {
  address = ":5019"
}

# Wialon IPS 1.1/2.0, served by the WASM decoder wialon.wasm of the
# decoder folder (protocols/wasm/decoders/wialon, built by `make decoders`).
listener "wialon" {
  address = ":5039"
}

listener "wialon_udp" {
  protocol  = "wialon"
  transport = "udp"
  address   = ":5039"
}

listener "obddongle" {
  address = ":5093"
}

# OsmAnd / Traccar Client phone apps: HTTP, answered 200 after the fix is
# stored, 400 with the reason for bad input.
listener "osmand" {
  address = ":5055"
}

# JSON lines with the canonical field names (simulators, custom devices).
listener "jsonl" {
  address = ":5099"
}

# Meitrack MVT/T/TC/P series: $$ text and CCC/CCE binary reports, acked
# with the record count (protocols/meitrack/README.md).
listener "meitrack" {
  address = ":5020"
}

listener "meitrack_udp" {
  protocol  = "meitrack"
  transport = "udp"
  address   = ":5020"
}

# Suntech ST300/ST340/ST4xx/ST500/ST600/ST9xx/SA200: ';' text reports and
# binary 0x81/0x82/0x02. Devices with HBM or other layout settings need
# their options (protocols/suntech/README.md).
listener "suntech" {
  address = ":5011"
}

listener "suntech_udp" {
  protocol  = "suntech"
  transport = "udp"
  address   = ":5011"
}

# Meiligao VT300/VT310/VT400/GT30/GT60/TK218: $$ + length + BCD id +
# command + CRC-16; login and heartbeat answered.
listener "meiligao" {
  address = ":5009"
}

listener "meiligao_udp" {
  protocol  = "meiligao"
  transport = "udp"
  address   = ":5009"
}

# Ruptela FM trackers: records, extended records, DTCs; CRC-16/Kermit.
listener "ruptela" {
  address = ":5046"
}

# Galileosky tag packets (CRC-16/Modbus, acked with the checksum).
listener "galileo" {
  address = ":5034"
}

# ATrack @P reports in the standard layout; a fleet with a custom report
# format gets its own listener with options = { custom = "true" }.
listener "atrack" {
  address = ":5044"
}

listener "atrack_udp" {
  protocol  = "atrack"
  transport = "udp"
  address   = ":5044"
}

# Kids' and elderly watches ([SG*id*len*...]), served by the WASM decoder
# watch.wasm of the decoder folder (protocols/wasm/decoders/watch, built by
# `make decoders`). Traccar's port 5093 is obddongle's here, so 5193.
listener "watch" {
  address = ":5193"
}
