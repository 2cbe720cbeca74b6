// Package gateway owns fleetcore's device-facing listeners (TCP and UDP):
// per-connection sessions of a decoder plugin, framing with a cap on frame
// length (through plugins.Framer, the one framing loop that the
// conformance suite and replay run too; the gateway adds the hooks: its
// buffer budget on growth, panic recovery around Frame and Decode, and a
// pipeline per connection: reading and decoding go on while earlier frames
// wait for durability, up to listener bounds of frames and bytes in
// flight, and a writer acks them in frame order, coalescing the acks that
// are ready into one write), read deadlines and a whole-frame deadline, caps on connections
// (per listener, per source IP, across the gateway) and on buffered bytes
// (a budget across connections), and acks written only after the ingest
// core reports the frame's signals durable. A frame that fails to frame or
// decode is quarantined with its reason and raw bytes and closes only its
// own connection; so does a frame whose decoder panics (the panic is
// recovered per connection and per datagram, counted, and logged with its
// stack).
//
// Shutdown: listeners stop accepting, idle reads are interrupted, frames
// already read are committed and acked, then connections close.
package gateway
