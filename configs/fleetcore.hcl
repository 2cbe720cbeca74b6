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
}

# One block per endpoint; the label names it and, unless `protocol` says
# otherwise, picks the decoder. Each protocol's README lists its options.
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

listener "jsonl" {
  address = ":5099"
}
