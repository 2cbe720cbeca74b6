// Package api serves fleetcore's HTTP surface: /healthz and /readyz,
// /metrics (a client_golang registry: the Go runtime and the process, the
// stages' collectors, and fleet-wide database families from one node at a
// time), the JSON API under /api/ and the fleet dashboard, a
// server-rendered page with no build step and no external assets.
//
// It imports no stage: what it serves comes through the small interfaces
// of Deps (a Querier for its SQL, metrics.Collector for the stages'
// families, a HealthReporter, a JobLister, a RuleLister, a RecordLister),
// which the node fills in.
//
// It listens on 127.0.0.1:8080 by default and refuses to listen beyond
// loopback without a bearer token. See README.md for the endpoints.
package api
