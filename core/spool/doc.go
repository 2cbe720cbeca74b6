// Package spool is the last durability tier: a local, append-only journal
// of signal batches that ingest falls back to when Postgres and RabbitMQ
// are both unavailable, and that the organizer replays into Postgres.
//
// The journal is a directory of numbered segment files (0000000000000001.seg,
// …; never a name derived from a device id). Each record is
//
//	length u32 BE · CRC32C(payload) u32 BE · payload
//	payload = written-at (unix ns, u64 BE) · signal batch (signal.AppendBatch)
//
// Write returns only after the record is fsynced, so an acked batch
// survives a crash or power loss. A crash mid-write leaves a torn last
// record; Open finds it by its length or checksum, truncates it away, and
// since Write never returned, that batch was never acked (its devices
// resend).
//
// When the journal holds MaxBytes, Write waits (until its context ends)
// for replay to free space and then fails with ErrFull: the batch is not
// durable, the gateway leaves the frame unacked, and the device keeps it.
// Nothing acked is ever dropped.
//
// Replay hands sealed segments to a callback in order and deletes a segment
// only after the callback (a Postgres COMMIT) succeeded for all its
// records. A segment whose records pass their checksum but cannot be
// decoded is moved to the dead/ subdirectory, never deleted.
package spool
