// Package signal defines the Signal, fleetcore's one record type, its
// idempotency key and the canonical field names and indexes shared by every
// stage (decoders, storage, failover encodings and the WASM rule ABI).
//
// Every package in fleetcore may import signal; signal imports nothing of
// fleetcore.
package signal
