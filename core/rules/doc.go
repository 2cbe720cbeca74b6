// Package rules is fleetcore's quality rule engine over stored signals:
// each rule version keeps a watermark in Postgres and is evaluated, in
// batches up to the safe frontier of signal ids, by the WASM rule host
// (plugins/wasmrule); the findings, hourly statistics and watermark
// advance of a batch commit in one transaction, under a lease (FOR UPDATE
// SKIP LOCKED on the watermark rows), so any number of organizers evaluate
// each signal exactly once per rule version. A Runner registers its jobs
// (one per rule interval) with a Scheduler, the organizer; RULES.md says
// how scheduling and exactly-once work.
//
// One batch goes lease → fetch → evaluate → write → account (batch.go):
// evaluate is pure (verdicts from the host, findings and per-(device,
// hour) statistics from the verdicts) and is tested without Postgres.
package rules
