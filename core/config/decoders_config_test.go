package config_test

import (
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/core/config"
)

func TestDecodersBlock(t *testing.T) {
	cases := []struct {
		name    string
		src     string
		problem string // "" = valid
		want    config.Decoders
	}{
		{"absent: no folder, defaults", ``, "", config.Decoders{
			CacheDir: "var/wasm-cache/decoders", Budget: "50ms", MemoryLimitMiB: 32, MaxFailures: 5, Poll: "2s"}},
		{"every key", `decoders {
  dir              = "protocols/wasm/build/decoders"
  cache_dir        = "var/cache2"
  budget           = "20ms"
  memory_limit_mib = 8
  max_failures     = 3
  poll             = "500ms"
}`, "", config.Decoders{Dir: "protocols/wasm/build/decoders", CacheDir: "var/cache2",
			Budget: "20ms", MemoryLimitMiB: 8, MaxFailures: 3, Poll: "500ms"}},
		{"bad budget", `decoders { budget = "fast" }`, "decoders.budget", config.Decoders{}},
		{"budget too long", `decoders { budget = "1m" }`, "decoders.budget: must be between", config.Decoders{}},
		{"zero poll", `decoders { poll = "0s" }`, "decoders.poll: must be positive", config.Decoders{}},
		{"memory", `decoders { memory_limit_mib = 5000 }`, "decoders.memory_limit_mib", config.Decoders{}},
		{"failures", `decoders { max_failures = -1 }`, "decoders.max_failures", config.Decoders{}},
		{"unknown key", `decoders { folder = "x" }`, "folder", config.Decoders{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse("decoders.hcl", []byte(tc.src))
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("err %v, want a problem naming %s", err, tc.problem)
				}
				if !strings.Contains(err.Error(), "decoders.hcl:") {
					t.Errorf("problem does not name the file and line: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *c.Decoders != tc.want {
				t.Errorf("decoders = %+v, want %+v", *c.Decoders, tc.want)
			}
		})
	}
}
