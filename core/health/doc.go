// Package health runs a node's service checks. Each stage says how it is
// through a Checker (ingest tiers, the Postgres breaker, failover, spool,
// the organizer's jobs, the rules); this package only runs them on the
// organizer's "health" schedule, keeps their latest results for /readyz,
// /api/health and the dashboard, logs each change of status once, and
// writes fleetcore_service_check_state.
package health
