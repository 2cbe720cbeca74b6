package config_test

import (
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/core/config"
)

func TestQuarantineDefaults(t *testing.T) {
	c, err := config.Parse("empty.hcl", nil)
	if err != nil {
		t.Fatal(err)
	}
	q := c.Quarantine
	if q.MaxRawBytes != 4096 || q.PerSourceRate != 60 || q.PerSourceBurst != 20 || q.Rate != 6000 || q.Burst != 1000 ||
		q.Queue != 4096 || q.Retention != "720h" || *q.MaxRows != 1_000_000 {
		t.Fatalf("quarantine defaults %+v (max_rows %d)", q, *q.MaxRows)
	}
	c, err = config.Parse("keep.hcl", []byte(`quarantine {
  retention = "0s"
  max_rows  = 0
}`))
	if err != nil {
		t.Fatal(err)
	}
	if config.Duration(c.Quarantine.Retention) != 0 || *c.Quarantine.MaxRows != 0 {
		t.Fatalf("retention %q, max_rows %d: want both off", c.Quarantine.Retention, *c.Quarantine.MaxRows)
	}
}

func TestQuarantineValidation(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"raw cap", `quarantine { max_raw_bytes = -1 }`, "quarantine.max_raw_bytes"},
		{"raw cap too large", `quarantine { max_raw_bytes = 33554432 }`, "quarantine.max_raw_bytes"},
		{"rate", `quarantine { per_source_rate = -5 }`, "per_source_rate"},
		{"queue", `quarantine { queue = -1 }`, "quarantine.queue"},
		{"retention", `quarantine { retention = "30d" }`, "quarantine.retention"},
		{"row cap", `quarantine { max_rows = -1 }`, "quarantine.max_rows"},
		{"unknown key", `quarantine { max_raw = 10 }`, "max_raw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("q.hcl", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}
