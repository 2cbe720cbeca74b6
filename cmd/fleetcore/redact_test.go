package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCaptured runs the command line in-process and returns its exit code
// and what it printed to stdout and stderr.
func runCaptured(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	code := run(args)
	os.Stdout, os.Stderr = oldOut, oldErr
	w.Close()
	return code, <-done
}

// TestCommandsDoNotPrintPasswords runs validate and migrate with database
// and AMQP URLs the clients cannot parse, from the file and from the
// environment: each fails naming the key, and nothing printed holds the
// password or a piece of it.
func TestCommandsDoNotPrintPasswords(t *testing.T) {
	cases := []struct {
		name, file, env, envVal, want string
	}{
		{"database url in file", "database {\n  url = \"postgres://fleet:s3cr/3tPW@127.0.0.1:5432/fleet\"\n}\n", "", "", "fleet.hcl:2: database.url"},
		{"database url bad port", "database { url = \"postgres://fleet:s3cr3tPW@127.0.0.1:54x2/fleet\" }\n", "", "", "fleet.hcl:1: database.url"},
		{"database url in env", "", "FLEETCORE_DATABASE_URL", "postgres://fleet:s3cr3tPW%zz@127.0.0.1/fleet", "FLEETCORE_DATABASE_URL: database.url"},
		{"amqp url in env", "", "FLEETCORE_AMQP_URL", "amqp://guest:s3cr/3tPW@127.0.0.1:5672/", "FLEETCORE_AMQP_URL: amqp.url"},
		{"sslmode the client refuses", "database { url = \"postgres://fleet:s3cr3tPW@127.0.0.1:5432/fleet?sslmode=bogus\" }\n", "", "", "sslmode is invalid"},
		{"short token", "api {\n  address = \"0.0.0.0:8080\"\n  token = \"s3cr3tPW\"\n}\n", "", "", "fleet.hcl:3: api.token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FLEETCORE_DATABASE_URL", "")
			t.Setenv("FLEETCORE_AMQP_URL", "")
			t.Setenv("FLEETCORE_API_TOKEN", "")
			if tc.env != "" {
				t.Setenv(tc.env, tc.envVal)
			}
			path := filepath.Join(t.TempDir(), "fleet.hcl")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []string{"validate", "migrate", "serve"} {
				code, out := runCaptured(t, cmd, "-config", path)
				if code == 0 {
					t.Fatalf("%s exited 0:\n%s", cmd, out)
				}
				if !strings.Contains(out, tc.want) {
					t.Fatalf("%s does not name %s:\n%s", cmd, tc.want, out)
				}
				for _, frag := range []string{"s3cr3tPW", "s3cr", "3tPW"} {
					if strings.Contains(out, frag) {
						t.Fatalf("%s printed %q:\n%s", cmd, frag, out)
					}
				}
			}
		})
	}
}
