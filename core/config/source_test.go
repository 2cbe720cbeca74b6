package config

import (
	"errors"
	"strings"
	"testing"
)

// TestSemanticErrorsNameTheLine: Validate's problems name the line of the
// offending attribute (or its block), and listeners tell where their keys
// and option keys are.
func TestSemanticErrorsNameTheLine(t *testing.T) {
	t.Setenv("FLEETCORE_DATABASE_URL", "")
	t.Setenv("FLEETCORE_AMQP_URL", "")
	t.Setenv("FLEETCORE_API_TOKEN", "")
	src := `log_level = "loud"
ingest {
  writers = 1

  batch_max_age = "soon"
}
integrity {
  enter_below = 90
  clear_above = 80
}
listener "a" {
  address = "127.0.0.1:5000"
  options = {
    x = "1"
  }
}
listener "b" {
  protocol = "a"
  address  = ":5000"
  read_timeout = "never"
}
`
	c, err := ParseUnvalidated("f.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		`f.hcl:1: log_level: "loud"`,
		`f.hcl:5: ingest.batch_max_age: "soon"`,
		`f.hcl:7: integrity: need`,
		`f.hcl:19: listener "b": address tcp :5000 is also used by listener "a" (f.hcl:12)`,
		`f.hcl:20: listener "b": read_timeout: "never"`,
	}
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error %v is not a *config.Error", err)
	}
	got := cerr.Problems
	if len(got) != len(want) {
		t.Fatalf("%d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
	a, b := c.Listeners[0], c.Listeners[1]
	for _, tc := range []struct{ got, want string }{
		{a.Where(""), "f.hcl:11"}, {a.Where("protocol"), "f.hcl:11"}, {a.Where("address"), "f.hcl:12"},
		{a.OptionWhere("x"), "f.hcl:14"}, {a.OptionWhere("nosuch"), "f.hcl:13"},
		{b.Where("protocol"), "f.hcl:18"}, {b.OptionWhere("x"), "f.hcl:17"},
	} {
		if tc.got != tc.want {
			t.Errorf("where = %q, want %q", tc.got, tc.want)
		}
	}
}
