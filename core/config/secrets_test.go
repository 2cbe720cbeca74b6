package config_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/core/config"
)

const secret = "s3cr3tPW"

func TestRedactURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"postgres://fleet:" + secret + "@db:5432/fleet?sslmode=require", "postgres://fleet:xxxxx@db:5432/fleet?sslmode=require"},
		{"postgresql://fleet:" + secret + "@db/fleet", "postgresql://fleet:xxxxx@db/fleet"},
		{"amqp://guest:" + secret + "@mq:5672/fleet", "amqp://guest:xxxxx@mq:5672/fleet"},
		{"postgres://fleet@db/fleet", "postgres://fleet@db/fleet"},
		{"postgres://db/fleet?user=fleet&password=" + secret + "&sslmode=disable", "postgres://db/fleet?user=fleet&password=xxxxx&sslmode=disable"},
		{"postgres://fleet:x@db/fleet?sslpassword=" + secret, "postgres://fleet:xxxxx@db/fleet?sslpassword=xxxxx"},
		{"host=db user=fleet password=" + secret + " dbname=fleet", "host=db user=fleet password=xxxxx dbname=fleet"},
		{"host=db password='" + secret + " with \\' quote' dbname=fleet", "host=db password=xxxxx dbname=fleet"},
		// Unparseable: the password holds an unescaped / or @, or a bad port.
		{"postgres://fleet:s3/cr3tPW@db/fleet", "postgres://fleet:xxxxx@db/fleet"},
		{"amqp://guest:s3@cr3tPW@mq:56x2/", "amqp://guest:xxxxx@mq:56x2/"},
		{"postgres://fleet:" + secret + "@db:54x2/fleet", "postgres://fleet:xxxxx@db:54x2/fleet"},
		{"postgres://fleet:p%40ss" + secret + "@db/fleet", "postgres://fleet:xxxxx@db/fleet"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := config.RedactURL(tc.in); got != tc.want {
				t.Fatalf("RedactURL = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRedactErrorOfParseFailures feeds real net/url parse failures (as the
// Postgres and AMQP clients return them, wrapped) through RedactError.
func TestRedactErrorOfParseFailures(t *testing.T) {
	for _, raw := range []string{
		"postgres://fleet:" + secret + "@db:54x2/fleet",
		"postgres://fleet:s3cr/3tPW@db/fleet",
		"amqp://guest:" + secret + "%zz@mq/",
		"amqp://guest:s3cr3t\"PW@mq:x/",
		"postgres://fleet:" + secret + "@db/fl\x7fet",
	} {
		t.Run(raw, func(t *testing.T) {
			_, perr := url.Parse(raw)
			if perr == nil {
				t.Fatalf("%q parses", raw)
			}
			wrapped := fmt.Errorf("connecting: %w (hint)", perr)
			err := config.RedactError(wrapped, raw)
			msg := err.Error()
			for _, frag := range []string{secret, "s3cr", "3tPW", `s3cr3t\"PW`} {
				if strings.Contains(msg, frag) {
					t.Fatalf("redacted error %q still contains %q", msg, frag)
				}
			}
			if !strings.Contains(msg, "xxxxx") || !strings.HasPrefix(msg, "connecting: ") || !strings.HasSuffix(msg, "(hint)") {
				t.Fatalf("redacted error %q lost its context", msg)
			}
			var ue *url.Error
			if !errors.As(err, &ue) {
				t.Fatalf("errors.As lost the cause")
			}
		})
	}
	if config.RedactError(nil, "postgres://a:b@c/d") != nil {
		t.Fatal("RedactError(nil) != nil")
	}
}

func TestValidateNamesBadURLsWithoutThePassword(t *testing.T) {
	cases := []struct {
		name, src, env, envVal, where, key string
	}{
		{"database unescaped slash", "\ndatabase {\n  url = \"postgres://fleet:s3cr/3tPW@db/fleet\"\n}\n", "", "", "fleet.hcl:3", "database.url"},
		{"database bad port", "database {\n  url = \"postgres://fleet:" + secret + "@db:54x2/fleet\"\n}\n", "", "", "fleet.hcl:2", "database.url"},
		{"database bad escape", "database { url = \"postgres://fleet:" + secret + "%zz@db/fleet\" }\n", "", "", "fleet.hcl:1", "database.url"},
		{"amqp bad port", "\n\namqp { url = \"amqp://guest:" + secret + "@mq:56x2/\" }\n", "", "", "fleet.hcl:3", "amqp.url"},
		{"amqp from env", "", "FLEETCORE_AMQP_URL", "amqp://guest:s3cr/3tPW@mq/", "FLEETCORE_AMQP_URL", "amqp.url"},
		{"database from env", "", "FLEETCORE_DATABASE_URL", "postgres://fleet:" + secret + "@db:x/fleet", "FLEETCORE_DATABASE_URL", "database.url"},
		{"database wrong scheme", "database { url = \"mysql://fleet:" + secret + "@db/fleet\" }\n", "", "", "fleet.hcl:1", "database.url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FLEETCORE_DATABASE_URL", "")
			t.Setenv("FLEETCORE_AMQP_URL", "")
			if tc.env != "" {
				t.Setenv(tc.env, tc.envVal)
			}
			_, err := config.Parse("fleet.hcl", []byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.where+": "+tc.key+": ") {
				t.Fatalf("error does not name %s and %s:\n%s", tc.where, tc.key, msg)
			}
			for _, frag := range []string{secret, "s3cr", "3tPW"} {
				if strings.Contains(msg, frag) {
					t.Fatalf("error quotes the password (%q):\n%s", frag, msg)
				}
			}
		})
	}
}

func TestValidateToken(t *testing.T) {
	good := "0123456789abcdef0123456789abcdef"
	cases := []struct {
		name, token, env string
		ok               bool
		where            string
	}{
		{"one space", " ", "", false, "fleet.hcl:3"},
		{"spaces only", "                    ", "", false, "fleet.hcl:3"},
		{"short", "change-me", "", false, "fleet.hcl:3"},
		{"inner space", "0123456789 abcdef012345", "", false, "fleet.hcl:3"},
		{"trailing newline", good + "\n", "", false, "fleet.hcl:3"},
		{"tab", good + "\t", "", false, "fleet.hcl:3"},
		{"control", good + "\x01", "", false, "fleet.hcl:3"},
		{"semicolon", good + ";", "", false, "fleet.hcl:3"},
		{"non-ascii", good + "é", "", false, "fleet.hcl:3"},
		{"good", good, "", true, ""},
		{"exactly 16", good[:16], "", true, ""},
		{"env short", "", "shrt-tkn", false, "FLEETCORE_API_TOKEN"},
		{"env good", "", good, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FLEETCORE_API_TOKEN", tc.env)
			src := "api {\n  address = \"0.0.0.0:8080\"\n"
			if tc.token != "" {
				src += "  token = " + strings.ReplaceAll(fmt.Sprintf("%q", tc.token), `\x01`, `\u0001`) + "\n"
			}
			src += "}\n"
			c, err := config.Parse("fleet.hcl", []byte(src))
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if want := tc.token + tc.env; c.API.Token != want {
					t.Fatalf("token %q, want %q", c.API.Token, want)
				}
				return
			}
			if err == nil {
				t.Fatal("token accepted")
			}
			if !strings.Contains(err.Error(), tc.where+": api.token: ") {
				t.Fatalf("error does not name %s: api.token:\n%v", tc.where, err)
			}
			if strings.TrimSpace(tc.token+tc.env) != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.token+tc.env)) {
				t.Fatalf("error quotes the token:\n%v", err)
			}
		})
	}
	if p := config.TokenProblem(good); p != "" {
		t.Fatalf("TokenProblem(good) = %q", p)
	}
}

func TestValidateAcceptsWhatTheClientsRead(t *testing.T) {
	t.Setenv("FLEETCORE_DATABASE_URL", "")
	t.Setenv("FLEETCORE_AMQP_URL", "")
	for _, u := range []string{
		"postgres://fleet:p%2Fss@db1:5432,db2:5433/fleet?target_session_attrs=read-write",
		"postgres:///fleet?host=/var/run/postgresql",
		"postgresql://fleet@[::1]:5432/fleet?sslmode=disable",
	} {
		t.Run(u, func(t *testing.T) {
			src := fmt.Sprintf("database { url = %q }\namqp { url = \"amqp://guest:p%%2Fss@mq:5672/fleet\" }\n", u)
			if _, err := config.Parse("x.hcl", []byte(src)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
