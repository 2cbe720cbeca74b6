package testenv

import (
	"os/exec"
	"testing"
)

// Promtool returns the path of promtool (Debian's prometheus package,
// installed by `make test-tools`); the test fails without it when CI is
// set and is skipped otherwise.
func Promtool(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		missing(t, "promtool (make test-tools installs it)", err)
	}
	return bin
}
