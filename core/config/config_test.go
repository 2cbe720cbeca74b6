package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/core/config"
)

func TestDefaultsFromEmptyFile(t *testing.T) {
	t.Setenv("FLEETCORE_DATABASE_URL", "")
	t.Setenv("FLEETCORE_AMQP_URL", "")
	c, err := config.Parse("empty.hcl", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.URL != config.DefaultDatabaseURL || c.Ingest.BatchMaxSignals != 4096 || c.AMQP.URL != "" || c.API.Address != "127.0.0.1:8080" {
		t.Fatalf("defaults: %+v %+v", c.Database, c.Ingest)
	}
}

func TestUnknownKeyNamesFileAndLine(t *testing.T) {
	src := "log_level = \"info\"\n\ndatabase {\n  url = \"postgres://x/y\"\n  max_conn = 3\n}\n"
	_, err := config.Parse("fleet.hcl", []byte(src))
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err %v, want *config.Error", err)
	}
	if !strings.Contains(err.Error(), "fleet.hcl:5") || !strings.Contains(err.Error(), "max_conn") {
		t.Fatalf("error %q does not name fleet.hcl:5 and the key", err)
	}
}

func TestValidationReportsEveryProblem(t *testing.T) {
	src := `
log_format = "xml"
ingest { batch_max_age = "soon" }
listener "a" { address = "127.0.0.1:5027" }
listener "b" { address = "127.0.0.1:5027" }
listener "c" {
  address = "nope"
  transport = "sctp"
}
`
	_, err := config.Parse("bad.hcl", []byte(src))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"log_format", "batch_max_age", "also used by listener", `transport "sctp"`, `address "nope"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestEnvironmentOverridesURLs(t *testing.T) {
	t.Setenv("FLEETCORE_DATABASE_URL", "postgres://other:5432/db")
	t.Setenv("FLEETCORE_AMQP_URL", "amqp://u:p@broker:5672/")
	c, err := config.Parse("x.hcl", []byte(`database { url = "postgres://here/db" }`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.URL != "postgres://other:5432/db" || c.AMQP.URL != "amqp://u:p@broker:5672/" {
		t.Fatalf("got %q %q", c.Database.URL, c.AMQP.URL)
	}
}

func TestListenerDefaults(t *testing.T) {
	c, err := config.Parse("x.hcl", []byte(`listener "teltonika" { address = ":5027" }`))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Listeners[0]
	if l.Protocol != "teltonika" || l.Transport != "tcp" || l.MaxFrame != 65536 {
		t.Fatalf("%+v", l)
	}
}

func TestShippedConfigsAreValid(t *testing.T) {
	for _, f := range []string{"../../configs/fleetcore.hcl"} {
		if _, err := config.Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestGatewayLimits(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		c, err := config.Parse("x.hcl", []byte(`listener "jsonl" { address = ":5099" }`))
		if err != nil {
			t.Fatal(err)
		}
		l := c.Listeners[0]
		if l.FrameTimeout != "30s" || l.MaxConnectionsPerIP != 1000 || c.Gateway.MaxConnections != 100000 || c.Gateway.MaxBufferedBytes != 32<<20 ||
			l.MaxFramesInFlight != 1024 || l.MaxBytesInFlight != 1<<20 {
			t.Fatalf("listener %+v, gateway %+v", l, c.Gateway)
		}
	})
	for _, tc := range []struct {
		name, src, want string
	}{
		{"frame_timeout_zero", `listener "a" {
  address = ":1"
  frame_timeout = "0s"
}`, `listener "a": frame_timeout must be positive`},
		{"frame_timeout_garbage", `listener "a" {
  address = ":1"
  frame_timeout = "soon"
}`, `frame_timeout: "soon" is not a duration`},
		{"per_ip_negative", `listener "a" {
  address = ":1"
  max_connections_per_ip = -1
}`, "max_connections_per_ip must be positive"},
		{"frames_in_flight_negative", `listener "a" {
  address = ":1"
  max_frames_in_flight = -1
}`, "max_frames_in_flight must be between 1 and 1048576"},
		{"bytes_in_flight_huge", `listener "a" {
  address = ":1"
  max_bytes_in_flight = 4294967296
}`, "max_bytes_in_flight must be between 1 and 1073741824"},
		{"proxy_protocol_udp", `listener "a" {
  address = ":1"
  transport = "udp"
  proxy_protocol = true
}`, `x.hcl:4: listener "a": proxy_protocol needs transport tcp`},
		{"amqp_url_and_urls", `amqp {
  url  = "amqp://a:5672/"
  urls = ["amqp://b:5672/", "amqp://c:5672/"]
}`, "amqp.urls: set amqp.url or amqp.urls, not both"},
		{"amqp_urls_bad", `amqp {
  urls = ["amqp://b:5672/", "http://c/"]
}`, "amqp.urls: [1]:"},
		{"gateway_max_connections", `gateway { max_connections = -5 }`, "gateway.max_connections: must be positive"},
		{"budget_below_max_frame", `gateway { max_buffered_bytes = 1000 }
listener "a" { address = ":1" }`, "more than gateway.max_buffered_bytes"},
		{"unknown_gateway_key", `gateway {
  max_conns = 5
}`, "x.hcl:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("x.hcl", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
