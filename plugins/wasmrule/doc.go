// Package wasmrule is the host of fleetcore's WebAssembly quality rules (rule
// ABI version 1, checks-wasm/ABI.md), built on wazero.
//
// A Host compiles rule modules (with an on-disk compilation cache so that
// restarts are fast), validates their exports and metadata, and returns a
// Rule: a pool of sandboxed instances with a memory limit and a time budget
// per batch. Rule.Check encodes a batch of signals into the guest's buffer,
// calls fc_check once and reads one Verdict per signal. A trap, timeout,
// memory exhaustion or malformed answer is an *Error meaning "not
// evaluated", never a failing verdict; after Config.MaxFailures consecutive
// failures the rule disables itself and reports an Alert.
//
// Dir watches a folder of .wasm files and declarative checks (.check.hcl,
// compiled by plugins/checklang to the same ABI) and hot-reloads them: a new or changed
// module runs its self-tests before it goes live, and a broken file is
// refused while the previous version keeps running.
//
// RunTest and Inspect are the engines of `fleetcore rules test` and
// `fleetcore rules inspect`.
package wasmrule
