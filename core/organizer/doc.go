// Package organizer is fleetcore's asynchronous scheduler: named jobs, each
// on its own interval, on goroutines bounded by a shared concurrency limit,
// with contexts for cancellation. A job never runs twice at once; a slow
// job delays only itself; a failing job is retried at its next tick and
// its state changes are logged once; Status reports every job's runs,
// failures and timings.
//
// The organizer only schedules. The work comes from the stages that own
// it: failover replay (core/recovery), quality rules (core/rules), score
// folding and alert delivery (core/integrity), service checks and
// retention.
package organizer
