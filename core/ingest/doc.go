// Package ingest is fleetcore's group commit: sessions submit the signals of
// one frame and get a Ticket; a collector gathers submissions into batches
// (by size or age), writers push each batch down the durability chain
// (Postgres, then the failover tiers) and resolve every ticket of the batch
// only when a tier reports it durable. A ticket that resolves with an error
// means "not durable": the gateway must not ack that frame.
//
// Backpressure: the number of signals waiting or in flight is bounded;
// Submit blocks when the bound is reached, so a slow store delays acks
// instead of dropping data.
package ingest
