// Package checklang is fleetcore's declarative check language: a `check`
// block (in a NAME.check.hcl file of the rules folder or in the config's
// rules block) with conditions over the canonical fields of the rule ABI,
// compiled by fleetcore itself, without any external tool, into a
// WebAssembly module of the public rule ABI (checks-wasm/ABI.md). The
// module goes through the same host, sandbox, limits, self-tests,
// scheduling and replay as a hand-written rule.
//
// The package owns the language (parser, types, limits, the reference
// interpreter Check.Eval) and a small WebAssembly binary encoder; it knows
// nothing of the host. plugins/wasmrule loads check files through
// CompileFile. The language reference is README.md.
package checklang
