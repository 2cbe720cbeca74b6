// Package gateway owns fleetcore's device-facing listeners (TCP and UDP):
// per-connection sessions of a decoder plugin, framing with a cap on frame
// length and read deadlines, a cap on connections, and acks written only
// after the ingest core reports the frame's signals durable. A frame that
// fails to frame or decode is quarantined with its reason and raw bytes and
// closes only its own connection.
//
// Shutdown: listeners stop accepting, idle reads are interrupted, frames
// already read are committed and acked, then connections close.
package gateway
