package config_test

import (
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/core/config"
)

// TestRulesCheckBlocks: check blocks of the rules block decode, compile and
// report their mistakes with the config file's line and column.
func TestRulesCheckBlocks(t *testing.T) {
	src := `rules {
  check "speed.limit" {
    dimension = "validity"
    fail_if   = "speed > 200"
  }
}
`
	c, err := config.Parse("fleet.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rules.Checks) != 1 || c.Rules.Checks[0].Name != "speed.limit" {
		t.Fatalf("checks %+v", c.Rules.Checks)
	}
	m, err := c.Rules.Checks[0].Compile()
	if err != nil || m.Name != "speed.limit" || len(m.Wasm) == 0 {
		t.Fatalf("compile: %v %v", m, err)
	}

	for _, tc := range []struct{ name, src, want string }{
		{"unknown field", `rules {
  check "speed.limit" {
    dimension = "validity"
    fail_if   = "sped > 200"
  }
}
`, `fleet.hcl:4:18: rules.check["speed.limit"]: fail_if: unknown field "sped"`},
		{"unknown key", `rules {
  check "a" {
    dimension = "validity"
    fail_if   = "speed > 1"
    mostly    = 0.9
  }
}
`, `fleet.hcl:5:5: rules.check["a"]: Unsupported argument`},
		{"twice", `rules {
  check "a" {
    dimension = "validity"
    fail_if   = "speed > 1"
  }
  check "a" {
    dimension = "validity"
    fail_if   = "speed > 2"
  }
}
`, `fleet.hcl:6: rules.check["a"]: defined twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("fleet.hcl", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
