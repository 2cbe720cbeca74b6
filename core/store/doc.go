// Package store owns fleetcore's PostgreSQL schema and writes: versioned
// migrations embedded in the binary (applied in one transaction under an
// advisory lock, so several nodes may start at once), batched idempotent
// signal writes (COPY, with an INSERT … ON CONFLICT DO NOTHING fallback for
// batches that repeat stored records), the raw frame table and the
// quarantine of rejected frames.
package store
