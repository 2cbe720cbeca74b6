// Package faulttest holds the durability fault suite: integration tests
// that drive simulated Teltonika devices (resend until acked) against a
// fleetcore node while Postgres, RabbitMQ, the spool's disk or fleetcore
// itself fail, and then check that every acked record is stored exactly
// once. The poison faults (poison_test.go, panic_test.go, flood_test.go)
// send records no server may let cost anyone else's data (oversized ids,
// records Postgres refuses, frames a decoder panics on, id and garbage
// floods) next to good devices, and account for both. The cluster fault
// (cluster_test.go) runs three fleetcore processes behind HAProxy with a
// RabbitMQ cluster and a Postgres primary and standby, and loses one
// machine at a time. It has no non-test code; it lives outside core/
// because it speaks device protocols, which core never imports.
//
// Run it with: go test -v -run TestIntegrationFault ./internal/faulttest/
package faulttest
