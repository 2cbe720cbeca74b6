// Package faulttest holds the durability fault suite: integration tests
// that drive simulated Teltonika devices (resend until acked) against a
// fleetcore node while Postgres, RabbitMQ, the spool's disk or fleetcore
// itself fail, and then check that every acked record is stored exactly
// once. It has no non-test code; it lives outside core/ because it speaks a
// device protocol, which core never imports.
//
// Run it with: go test -v -run TestIntegrationFault ./internal/faulttest/
package faulttest
