package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/plugins"
)

// validateCase is one config mistake: the file, the problems validate must
// print (line, then a fragment of the message), and the file fixed.
type validateCase struct {
	name  string
	file  string
	want  []problem
	fixed string
}

type problem struct {
	line int
	text string
}

// knownProtocols is the registry's list as validate prints it, so adding
// a decoder does not change this file.
var knownProtocols = strings.Join(plugins.Decoders.Names(), ", ")

// validateCases hold every mistake of issue 12 that validate used to
// print "valid" for, and the older semantic checks, each with its line.
var validateCases = []validateCase{
	{
		name:  "listener label is no protocol",
		file:  "listener \"nosuch\" {\n  address = \"127.0.0.1:0\"\n}\n",
		want:  []problem{{1, `listener "nosuch": unknown protocol "nosuch" (known: ` + knownProtocols + `; without a protocol attribute the label names it)`}},
		fixed: "listener \"nosuch\" {\n  protocol = \"jsonl\"\n  address = \"127.0.0.1:0\"\n}\n",
	},
	{
		name:  "misspelt protocol",
		file:  "listener \"t\" {\n  address  = \"127.0.0.1:0\"\n  protocol = \"teltonka\"\n}\n",
		want:  []problem{{3, `listener "t": unknown protocol "teltonka" (known: ` + knownProtocols + `)`}},
		fixed: "listener \"t\" {\n  address  = \"127.0.0.1:0\"\n  protocol = \"teltonika\"\n}\n",
	},
	{
		name: "bad option values",
		file: "listener \"h02\" {\n  address = \"127.0.0.1:0\"\n  options = {\n    ack = \"of\"\n    binary_length = \"abc\"\n  }\n}\n",
		want: []problem{
			{4, `listener "h02": option "ack": "of" is not one of on, off`},
			{5, `listener "h02": option "binary_length": "abc" is not a whole number`},
		},
		fixed: "listener \"h02\" {\n  address = \"127.0.0.1:0\"\n  options = {\n    ack = \"off\"\n    binary_length = \"45\"\n  }\n}\n",
	},
	{
		name:  "option out of range",
		file:  "listener \"h02\" {\n  address = \"127.0.0.1:0\"\n  options = { binary_length = \"16\" }\n}\n",
		want:  []problem{{3, `listener "h02": option "binary_length": 16 is outside 32–1024`}},
		fixed: "listener \"h02\" {\n  address = \"127.0.0.1:0\"\n  options = { binary_length = \"32\" }\n}\n",
	},
	{
		name:  "unknown option key",
		file:  "listener \"teltonika\" {\n  address = \"127.0.0.1:0\"\n  options = {\n    extnded = \"true\"\n  }\n}\n",
		want:  []problem{{4, `listener "teltonika": option "extnded": unknown option (teltonika takes extended)`}},
		fixed: "listener \"teltonika\" {\n  address = \"127.0.0.1:0\"\n  options = {\n    extended = \"true\"\n  }\n}\n",
	},
	{
		name:  "option on a protocol with none",
		file:  "listener \"jsonl\" {\n  address = \"127.0.0.1:0\"\n  options = { speed_unit = \"kmh\" }\n}\n",
		want:  []problem{{3, `listener "jsonl": option "speed_unit": unknown option: protocol jsonl takes no options`}},
		fixed: "listener \"jsonl\" {\n  address = \"127.0.0.1:0\"\n}\n",
	},
	{
		name:  "osmand unit",
		file:  "listener \"osmand\" {\n  address = \"127.0.0.1:0\"\n  options = { speed_unit = \"knots\" }\n}\n",
		want:  []problem{{3, `listener "osmand": option "speed_unit": "knots" is not one of kn, kmh, mps, mph`}},
		fixed: "listener \"osmand\" {\n  address = \"127.0.0.1:0\"\n  options = { speed_unit = \"kn\" }\n}\n",
	},
	{
		name:  "transport the protocol lacks",
		file:  "listener \"gt06\" {\n  address   = \"127.0.0.1:0\"\n  transport = \"udp\"\n}\n",
		want:  []problem{{3, `listener "gt06": protocol gt06 does not support transport udp (it supports tcp)`}},
		fixed: "listener \"gt06\" {\n  address   = \"127.0.0.1:0\"\n  transport = \"tcp\"\n}\n",
	},
	{
		name:  "unknown transport",
		file:  "listener \"jsonl\" {\n  address   = \"127.0.0.1:0\"\n  transport = \"http\"\n}\n",
		want:  []problem{{3, `listener "jsonl": transport "http" is not tcp or udp`}},
		fixed: "listener \"jsonl\" {\n  address   = \"127.0.0.1:0\"\n}\n",
	},
	{
		name:  "duplicate address",
		file:  "listener \"jsonl\" {\n  address = \"127.0.0.1:%PORT%\"\n}\nlistener \"other\" {\n  protocol = \"jsonl\"\n  address  = \":%PORT%\"\n}\n",
		want:  []problem{{6, `listener "other": address tcp :%PORT% is also used by listener "jsonl" (%FILE%:2)`}},
		fixed: "listener \"jsonl\" {\n  address = \"127.0.0.1:%PORT%\"\n}\nlistener \"other\" {\n  protocol = \"jsonl\"\n  address  = \"127.0.0.1:0\"\n}\n",
	},
	{
		name:  "address without port",
		file:  "listener \"jsonl\" {\n  address = \"5099\"\n}\n",
		want:  []problem{{2, `listener "jsonl": address "5099": missing port in address`}},
		fixed: "listener \"jsonl\" {\n  address = \"127.0.0.1:0\"\n}\n",
	},
	{
		name:  "port out of range",
		file:  "listener \"jsonl\" {\n  address = \":70000\"\n}\n",
		want:  []problem{{2, `listener "jsonl": address ":70000": port 70000 is outside 0–65535`}},
		fixed: "listener \"jsonl\" {\n  address = \"127.0.0.1:0\"\n}\n",
	},
	{
		name:  "listener duration",
		file:  "listener \"jsonl\" {\n  address = \"127.0.0.1:0\"\n  read_timeout = \"10\"\n}\n",
		want:  []problem{{3, `listener "jsonl": read_timeout: "10" is not a duration`}},
		fixed: "listener \"jsonl\" {\n  address = \"127.0.0.1:0\"\n  read_timeout = \"10s\"\n}\n",
	},
	{
		name:  "block attribute",
		file:  "ingest {\n  writers = 1\n  batch_max_age = \"soon\"\n}\n",
		want:  []problem{{3, `ingest.batch_max_age: "soon" is not a duration`}},
		fixed: "ingest {\n  writers = 1\n  batch_max_age = \"10ms\"\n}\n",
	},
	{
		name:  "top-level attribute",
		file:  "log_format = \"yaml\"\n",
		want:  []problem{{1, `log_format: "yaml" is not text or json`}},
		fixed: "log_format = \"json\"\n",
	},
	{
		name:  "bad database URL",
		file:  "database {\n  url = \"postgres://db:54x2/fleet\"\n}\n",
		want:  []problem{{2, `database.url`}},
		fixed: "",
	},
	{
		name:  "bad api address",
		file:  "api {\n  address = \"localhost\"\n}\n",
		want:  []problem{{2, `api.address: "localhost": missing port in address`}},
		fixed: "api {\n  address = \"127.0.0.1:0\"\n}\n",
	},
	{
		name: "every problem at once",
		file: "listener \"nosuch\" {\n  address = \"127.0.0.1:0\"\n}\nlistener \"h02\" {\n  address = \"x\"\n  options = { ack = \"of\" }\n}\nlog_level = \"loud\"\n",
		want: []problem{
			{1, `unknown protocol "nosuch"`},
			{5, `listener "h02": address "x"`},
			{6, `option "ack"`},
			{8, `log_level: "loud" is not one of`},
		},
		fixed: "listener \"jsonl\" {\n  address = \"127.0.0.1:0\"\n}\nlistener \"h02\" {\n  address = \"127.0.0.1:0\"\n  options = { ack = \"off\" }\n}\nlog_level = \"warn\"\n",
	},
}

// trailer keeps a case's node small and local; it goes after the case's
// text, so the case's line numbers stay as written.
const trailer = `
rules {
  enabled = false
}
spool {
  dir = "%SPOOL%"
}
api {
  enabled = false
}
`

// caseFile writes text (with %PORT%, %SPOOL% and %FILE% filled in) and
// the trailer to a fresh file and returns its path.
func caseFile(t *testing.T, text string, port int) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "fleet.hcl")
	body := text
	if !strings.Contains(text, "api {") {
		body += trailer
	} else {
		body += strings.Replace(trailer, "api {\n  enabled = false\n}\n", "", 1)
	}
	body = fill(body, port, path)
	body = strings.ReplaceAll(body, "%SPOOL%", filepath.Join(dir, "spool"))
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func fill(s string, port int, path string) string {
	return strings.NewReplacer("%PORT%", fmt.Sprint(port), "%FILE%", path).Replace(s)
}

var problemLine = regexp.MustCompile(`^(.+):(\d+): (.*)$`)

// TestValidateReportsEveryMistake: validate exits non-zero and prints one
// line per problem, each with the file and the line of the offending key.
func TestValidateReportsEveryMistake(t *testing.T) {
	t.Setenv("FLEETCORE_DATABASE_URL", "")
	t.Setenv("FLEETCORE_AMQP_URL", "")
	t.Setenv("FLEETCORE_API_TOKEN", "")
	for _, tc := range validateCases {
		t.Run(tc.name, func(t *testing.T) {
			port := testenv.FreePort(t)
			path := caseFile(t, tc.file, port)
			var stdout, stderr bytes.Buffer
			if code := validateFile(path, &stdout, &stderr); code == 0 {
				t.Fatalf("validate exited 0: %s", stdout.String())
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			summary := lines[len(lines)-1]
			lines = lines[:len(lines)-1]
			if want := fmt.Sprintf("fleetcore: %s: %d problem(s)", path, len(tc.want)); summary != want {
				t.Errorf("last line %q, want %q", summary, want)
			}
			if len(lines) != len(tc.want) {
				t.Fatalf("%d problems, want %d:\n%s", len(lines), len(tc.want), stderr.String())
			}
			for i, w := range tc.want {
				m := problemLine.FindStringSubmatch(lines[i])
				if m == nil || m[1] != path || m[2] != fmt.Sprint(w.line) || !strings.Contains(m[3], fill(w.text, port, path)) {
					t.Errorf("problem %d = %q, want %s:%d: …%s…", i, lines[i], path, w.line, fill(w.text, port, path))
				}
			}
			if tc.fixed == "" {
				return
			}
			stderr.Reset()
			if code := validateFile(caseFile(t, tc.fixed, port), &stdout, &stderr); code != 0 {
				t.Errorf("the fixed config is refused:\n%s", stderr.String())
			}
		})
	}
}

// TestIntegrationValidAndServeAgree: serve refuses, before it opens a
// port, the configs validate refuses, with the same problems; and every
// config validate accepts (the fixed cases and configs/fleetcore.hcl)
// starts a node, which then stops cleanly.
func TestIntegrationValidAndServeAgree(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	t.Setenv("FLEETCORE_DATABASE_URL", "")
	t.Setenv("FLEETCORE_AMQP_URL", "")
	t.Setenv("FLEETCORE_API_TOKEN", "")
	for _, tc := range validateCases {
		t.Run(tc.name, func(t *testing.T) {
			port := testenv.FreePort(t)
			bad, err := config.LoadUnvalidated(caseFile(t, tc.file, port))
			if err != nil {
				t.Fatal(err)
			}
			// The bad config as is: serve refuses it before it connects.
			want := node.Check(bad, plugins.Decoders)
			if want == nil {
				t.Fatal("node.Check accepts the bad config")
			}
			if err := startStop(t, bad); err == nil || err.Error() != want.Error() {
				t.Errorf("serve's error %v is not validate's %v", err, want)
			}
			if tc.fixed == "" {
				return
			}
			path := caseFile(t, tc.fixed, port)
			if code := validateFile(path, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
				t.Fatal("validate refuses the fixed config")
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Database.URL = db // the test's own database
			if err := startStop(t, cfg); err != nil {
				t.Fatalf("validate accepts the fixed config, serve does not: %v", err)
			}
		})
	}
	t.Run("configs/fleetcore.hcl", func(t *testing.T) {
		path := "../../configs/fleetcore.hcl"
		if code := validateFile(path, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
			t.Fatal("validate refuses the default config")
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		// Free ports, no shared broker queue, a private spool, and the
		// rules left out (they are another test's): the rest as shipped.
		for _, l := range cfg.Listeners {
			l.Address = "127.0.0.1:0"
		}
		cfg.API.Address = "127.0.0.1:0"
		cfg.Database.URL = db
		cfg.AMQP.URL = ""
		cfg.Spool.Dir = t.TempDir()
		off := false
		cfg.Rules.Enabled = &off
		if err := startStop(t, cfg); err != nil {
			t.Fatalf("validate accepts the default config, serve does not: %v", err)
		}
	})
}

// startStop runs a node on cfg until it is ready, then stops it; it
// returns the node's error (an early one, or the one stopping gave).
func startStop(t *testing.T, cfg *config.Config) error {
	t.Helper()
	n := node.New(cfg, plugins.Decoders, hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-done:
		return err
	case <-time.After(2 * time.Minute):
		t.Fatal("node not ready after 2 minutes")
	}
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("node did not stop within a minute")
	}
	return nil
}
