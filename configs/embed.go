// Package configs embeds the default configuration, configs/fleetcore.hcl,
// into the fleetcore binary: `fleetcore config default` prints it, and
// `fleetcore serve` without -config runs on it when configs/fleetcore.hcl
// is not in the working directory.
package configs

import _ "embed"

// DefaultPath is the file Default is, relative to the checkout (and the
// default of every -config flag).
const DefaultPath = "configs/fleetcore.hcl"

// Default is configs/fleetcore.hcl as built into the binary. Its relative
// paths are relative to its folder, configs/: loaded as DefaultPath from a
// working directory, state goes to ./var and rules are read from
// ./checks-wasm/build/rules (the built-in rules embedded in the binary
// while that folder is missing).
//
//go:embed fleetcore.hcl
var Default []byte
