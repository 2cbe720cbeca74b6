// Package plugintest is the conformance suite every protocol decoder runs
// from its own tests:
//
//	func TestConformance(t *testing.T) {
//		plugintest.Run(t, mydecoder.Decoder{}, plugintest.Cases{
//			Frames: [][]byte{login, position1, position2},
//		})
//	}
//
// Cases.Frames are valid frames in the order a device sends them, login
// frames included; each must be exactly one frame for the session's framer
// (TCP) or one datagram (UDP). Run then checks, each as a subtest:
//
//   - sequence: the frames decode in one session without error, the framer
//     frames each one exactly, at least one signal comes out, and every
//     signal carries DeviceID, the decoder's name as Protocol, the receive
//     time and its own copy of the frame (the input is scribbled over after
//     Decode to catch retained slices).
//   - stream (TCP): the frames concatenated and fed all at once, byte by
//     byte, and in random chunks through the gateway's own framing loop
//     (plugins.Framer, each chunk one read) give the same signals (same
//     keys, same canonical JSON) as the sequence.
//     A session that is a plugins.EOFFramer is also fed the chunks as a
//     whole input whose end ends the last frame (as replay does): the
//     same signals, nothing left; a quarter of the garbage inputs too.
//   - resend: the frames replayed in a fresh session, received later, give
//     the same idempotency keys (signal.Signal.Key): the receive time must
//     not enter a record.
//   - truncated: every strict prefix of a frame makes the framer ask for
//     more bytes or fail, never frame past the input; a truncated datagram
//     (UDP) or a truncated frame handed straight to Decode is an error or
//     yields nothing, never a panic.
//   - garbage: seeded random bytes never panic and never produce a signal;
//     the framer never keeps waiting once MaxFrame bytes are buffered; at
//     least one garbage input is refused with an error, and a refusal
//     (here and in oversized) names its step ("framing …", "decoding …")
//     once.
//   - oversized: frames whose first bytes are overwritten with 0xFF (where
//     length fields live) and the explicit Cases.Oversized inputs are
//     refused, or at least never make the decoder allocate what the length
//     field claims (allocation per call is measured); Cases.Oversized must
//     be refused with plugins.ErrTooLarge or plugins.ErrMalformed, and a
//     datagram larger than MaxFrame (UDP) with an error.
//   - gateway_panic: the decoder, wrapped so that its session panics on
//     the last frame on one connection (one source, UDP), runs in a real
//     gateway on 127.0.0.1:0 with a submitter that makes every batch
//     durable at once: the panicking frame is quarantined with the panic
//     as reason (plugins.ErrPanic), that connection is closed, the panic is
//     counted, and another connection opened before it has every frame
//     acked.
//
// The truncated, garbage and oversized checks run in sessions primed with
// the setup frames (those of Cases.Frames that yield no signals, such as a
// login) that precede the frame under test.
//
// The transport is Cases.Transport, or TCP when the decoder supports it,
// else UDP. HTTP decoders (framed over TCP by the decoder) and line-framed
// text protocols use the same TCP checks: their frames are whole requests
// or lines.
//
// Decoders whose records take their time from the receive clock (no device
// time in the frame) must leave such frames out of Cases.Frames, since the
// resend check receives the second copy later.
package plugintest
