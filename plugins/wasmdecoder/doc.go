// Package wasmdecoder runs protocol decoders compiled to WebAssembly (the
// decoder ABI v1 of protocols/wasm/ABI.md) on wazero, as plugins.Decoder
// values a listener names like a built-in decoder.
//
// A Host owns the compilation cache and the limits (memory pages per
// instance, a time budget per call, the caps on an output). Host.Load
// compiles a module, checks its exports, imports and metadata, and runs the
// metadata's self-tests through the real session path before anything else
// sees the module. A Module is one loaded version: it keeps a small pool of
// instances shared by all its sessions, and a Session keeps only the
// connection's state blob and device id, so an idle connection costs a few
// hundred bytes, not an instance.
//
// A guest that traps, runs past its budget, exhausts its memory or breaks
// the ABI costs the one frame it was called for (the error wraps ErrGuest;
// the gateway quarantines the frame and closes that connection); after
// Config.MaxFailures such failures in a row the module disables itself and
// tells its OnFailure callback, so the folder loader can restore the
// previous version.
package wasmdecoder
