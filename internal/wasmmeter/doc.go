// Package wasmmeter bounds the work of a WebAssembly call without
// wazero's WithCloseOnContextDone, which in wazero v1.12 leaves native code
// at every loop back-edge and starts a goroutine per call (17× the cost of
// a Go guest's frame).
//
// Instrument rewrites a module at load: every function entry and loop
// header adds one to a counter global and traps with `unreachable` when it
// reaches a limit global. The host sets the limit before each call
// (Meter.Start) and reads the counter after it (Meter.Stop): a runaway
// loop or recursion ends after the same number of units on every machine.
// A timer that sets the limit to zero is the wall-clock backstop for what
// the units do not bound (long straight-line code), and a context can stop
// a call the same way.
package wasmmeter
