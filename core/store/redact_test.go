package store

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/internal/testenv"
)

// TestIntegrationOpenErrorsHideThePassword opens the store with URLs that
// the clients cannot parse or that Postgres refuses, and checks that no
// error quotes the password.
func TestIntegrationOpenErrorsHideThePassword(t *testing.T) {
	testenv.Integration(t)
	const pw = "s3cr3tPW"
	hp := testenv.HostPort(testenv.PostgresURL())
	cases := []struct{ name, url string }{
		{"unescaped slash", "postgres://fleet:s3cr/3tPW@" + hp + "/fleet"},
		{"bad port", "postgres://fleet:" + pw + "@127.0.0.1:54x2/fleet"},
		{"bad escape", "postgres://fleet:" + pw + "%zz@" + hp + "/fleet"},
		{"bad sslmode", "postgres://fleet:" + pw + "@" + hp + "/fleet?sslmode=bogus"},
		{"key=value", "host=127.0.0.1 port=x user=fleet password=" + pw},
		{"unknown role", "postgres://nosuchrole_fc:" + pw + "@" + hp + "/fleet?sslmode=disable"},
		{"closed port", "postgres://fleet:" + pw + "@127.0.0.1:" + itoa(testenv.FreePort(t)) + "/fleet?sslmode=disable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, eerr := EnsureDatabase(ctx, tc.url)
			st, oerr := Open(ctx, tc.url, Options{ConnectTimeout: 2 * time.Second})
			var perr error
			if oerr == nil {
				perr = st.Ping(ctx)
				st.Close()
			}
			if eerr == nil && oerr == nil && perr == nil {
				t.Fatal("no error at all")
			}
			for _, err := range []error{eerr, oerr, perr} {
				if err == nil {
					continue
				}
				for _, frag := range []string{pw, "s3cr", "3tPW"} {
					if strings.Contains(err.Error(), frag) {
						t.Fatalf("error quotes the password (%q): %v", frag, err)
					}
				}
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
