// Package testenv gives integration tests isolated resources on the real
// services: a fresh Postgres database per test (dropped at cleanup), a
// RabbitMQ vhost per test, and an in-process TCP proxy that can cut and
// restore a connection path to simulate outages.
//
// When a service is missing, tests fail when CI is set and skip otherwise,
// as STYLE.md asks.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresURL is the shared test server (override with FLEETCORE_TEST_PG).
func PostgresURL() string {
	if u := os.Getenv("FLEETCORE_TEST_PG"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// AMQPURL is the shared broker (override with FLEETCORE_TEST_AMQP).
func AMQPURL() string {
	if u := os.Getenv("FLEETCORE_TEST_AMQP"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// Unique returns a short random name with the prefix, safe for database,
// vhost and queue names.
func Unique(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b) //nolint:errcheck // crypto/rand never fails on Linux
	return prefix + "_" + hex.EncodeToString(b)
}

func missing(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI: %v", what, err)
	}
	t.Skipf("%s not available: %v", what, err)
}

// Database creates a fresh database and returns its URL; it is dropped when
// the test ends.
func Database(t testing.TB) string {
	t.Helper()
	Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, PostgresURL())
	if err != nil {
		missing(t, "PostgreSQL", err)
	}
	defer admin.Close(context.Background())
	name := Unique("fctest")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, PostgresURL())
		if err != nil {
			t.Logf("dropping test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dropping test database %s: %v", name, err)
		}
	})
	u, _ := url.Parse(PostgresURL())
	u.Path = "/" + name
	return u.String()
}

// VHost creates a fresh RabbitMQ vhost (through the management-less
// rabbitmqctl-free path: the HTTP API is not assumed, so it uses
// rabbitmqctl) and returns the AMQP URL for it; deleted at cleanup.
func VHost(t testing.TB) string {
	t.Helper()
	Integration(t)
	name := Unique("fctest")
	if err := rabbitmqctl("add_vhost", name); err != nil {
		missing(t, "RabbitMQ (rabbitmqctl add_vhost)", err)
	}
	if err := rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*"); err != nil {
		t.Fatalf("setting vhost permissions: %v", err)
	}
	t.Cleanup(func() {
		if err := rabbitmqctl("delete_vhost", name); err != nil {
			t.Logf("deleting vhost %s: %v", name, err)
		}
	})
	u, _ := url.Parse(AMQPURL())
	u.Path = "/" + name
	return u.String()
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// HostPort returns host:port of a postgres:// or amqp:// URL.
func HostPort(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	h := u.Host
	if !strings.Contains(h, ":") {
		if u.Scheme == "amqp" {
			h += ":5672"
		} else {
			h += ":5432"
		}
	}
	return h
}

// WithHost returns rawURL with its host:port replaced.
func WithHost(rawURL, hostport string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(fmt.Sprintf("testenv: bad url %q", rawURL))
	}
	u.Host = hostport
	return u.String()
}

// Integration marks a test that needs the real services (Postgres,
// RabbitMQ, a built binary, seconds of load): under `go test -short`, the
// developers' quick loop, it skips; `make test` (what CI runs) and
// `make test-integration` run it. Every TestIntegration… test calls it
// first.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped under -short (make test-integration runs it)")
	}
}
