// Package node assembles one fleetcore server from its configuration: the
// store (database created and migrated on start), the durability chain, the
// ingest batcher, the gateway listeners and the asynchronous stages, and
// runs them with an orderly shutdown (cancel → listeners stop accepting →
// in-flight batches flush → acks sent → close).
//
// Decoders come in as a registry, so core never imports a protocol.
package node
