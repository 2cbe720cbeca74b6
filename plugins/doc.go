// Package plugins holds fleetcore's plugin contracts and their registries:
// protocol decoders (this file's Decoder, Session and Registry) and the
// WebAssembly quality-rule host (subpackage wasmrule).
//
// A decoder registers itself by name from its package's init with Register;
// protocols/all imports every built-in decoder. The gateway in core/gateway
// knows only this contract, never a protocol.
package plugins
