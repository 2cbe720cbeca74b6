// Package plugins holds fleetcore's plugin contracts and their registries:
// protocol decoders (this file's Decoder, Session and Registry) and the
// WebAssembly quality-rule host (subpackage wasmrule).
//
// The stream transports have one framing loop, Framer (frames.go): the
// gateway's TCP connections, the conformance suite (plugintest) and replay
// (`fleetcore decode`) all run it, so the suite tests the loop a device
// meets. It owns the read buffer and asks the session's Frame for each
// frame; a session of a line protocol may also implement EOFFramer so
// that the end of an input ends its last frame.
//
// A decoder registers itself by name from its package's init with Register;
// protocols/all imports every built-in decoder. The gateway in core/gateway
// knows only this contract, never a protocol.
package plugins
