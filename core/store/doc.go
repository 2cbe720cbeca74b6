// Package store owns fleetcore's PostgreSQL schema and writes: versioned
// migrations embedded in the binary (applied in one transaction under an
// advisory lock, so several nodes may start at once), batched idempotent
// signal writes (COPY, with an INSERT … ON CONFLICT DO NOTHING fallback for
// batches that repeat stored records; records Postgres refuses are isolated
// and the rest committed), raw frames, the quarantine of rejected frames
// and of refused records (rejected_records), and the one classification of
// Postgres errors (DataError, Unavailable, Unreachable).
package store
