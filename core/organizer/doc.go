// Package organizer is fleetcore's asynchronous scheduler: named jobs, each
// on its own interval, on goroutines bounded by a shared concurrency limit,
// with contexts for cancellation. Replays of the failover tiers, quality
// rule runs, score folding and service checks are jobs. A job never runs
// twice at once; a slow job delays only itself; a failing job is retried at
// its next tick and its state changes are logged once.
package organizer
