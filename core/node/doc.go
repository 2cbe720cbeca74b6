// Package node assembles one fleetcore server from its configuration: the
// store (database created and migrated on start), the durability chain, the
// ingest batcher, the gateway listeners and the asynchronous stages, and
// runs them with an orderly shutdown (cancel → listeners stop accepting →
// in-flight batches flush → acks sent → close).
//
// It only wires: config → each stage's config, start and stop order, and
// which stage's collector, service check and readiness probe the API and
// the health job get. The SQL, the metric families and the check texts
// belong to the stages (each stage's observe.go); a Node hands its stages
// out through read-only accessors, valid once Ready is closed.
//
// Decoders come in as a registry, so core never imports a protocol.
package node
