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
//
// Lifecycle of a listener's decoder: the decoder declares its options in
// Info.Options (typed: BoolOption, IntOption, EnumOption, …, each with its
// default and doc; Register panics on a malformed declaration); when the
// listener is configured, DecodeOptions turns the raw config strings into
// typed Options once (unknown keys and bad values are errors) and runs the
// decoder's OptionsValidator; every session then reads them with the
// option's Get. core/node's Check runs this for every listener before any
// port opens, and `fleetcore validate` is that same check.
package plugins
