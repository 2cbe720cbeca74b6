// Package recovery moves batches that were made durable in a failover
// tier (the RabbitMQ failover queue, the disk spool) back into Postgres,
// idempotently, acking a message or deleting a segment only after COMMIT;
// records Postgres refuses on the way are kept in rejected_records, never
// dead-lettered in bulk. A Replayer exposes its Jobs for the organizer to
// schedule.
//
// (The package is not called replay: plugins/replay is the engine behind
// `fleetcore decode`, feeding captured frames through a decoder.)
package recovery
