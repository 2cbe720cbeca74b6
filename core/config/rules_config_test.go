package config_test

import (
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/core/config"
)

func TestRulesSchedulingKeys(t *testing.T) {
	cases := []struct {
		name    string
		src     string
		problem string // "" = valid
		check   func(t *testing.T, r *config.Rules)
	}{
		{"defaults", ``, "", func(t *testing.T, r *config.Rules) {
			if !*r.Backfill || len(r.Sample) != 0 || len(r.Intervals) != 0 || r.Concurrency != 1 {
				t.Fatalf("defaults: %+v", r)
			}
		}},
		{"per rule interval, sample and no backfill", `rules {
  intervals = { "dup.burst" = "5m" }
  sample    = { "gps.teleport" = 10 }
  backfill  = false
}`, "", func(t *testing.T, r *config.Rules) {
			if r.Intervals["dup.burst"] != "5m" || r.Sample["gps.teleport"] != 10 || *r.Backfill {
				t.Fatalf("decoded %+v", r)
			}
		}},
		{"bad interval", `rules { intervals = { "x" = "soon" } }`, `rules.intervals["x"]`, nil},
		{"sample zero", `rules { sample = { "x" = 0 } }`, `rules.sample["x"]`, nil},
		{"shadow mode", `rules { mode = { "speed.limit" = "shadow", "gps.range" = "active" } }`, "", func(t *testing.T, r *config.Rules) {
			if r.Mode["speed.limit"] != "shadow" || r.Mode["gps.range"] != "active" {
				t.Fatalf("decoded %+v", r)
			}
		}},
		{"bad mode", `rules { mode = { "x" = "dry-run" } }`, `rules.mode["x"]`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse("rules.hcl", []byte(tc.src))
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("err %v, want a problem naming %s", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c.Rules)
		})
	}
}
