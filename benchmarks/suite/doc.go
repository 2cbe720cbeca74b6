// Package suite runs fleetcore's benchmark scenarios: it creates a fresh
// database, measures the machine's own references (ceiling: pgx COPY from
// memory; naive: one INSERT and COMMIT per signal), starts a fleetcore
// node in-process on free ports, drives it with the load generator
// (benchmarks/loadgen) over real sockets, checks every acknowledged record
// against the database, and writes JSON and a Markdown report with an SVG
// chart.
package suite
