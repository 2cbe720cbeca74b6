package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/internal/testenv"
)

// leakText is what a failing probe says: a user, a host and an error
// text that must reach only a caller with the token.
const leakText = "failed to connect to `user=fleetuser database=fleet`: db.internal.example:5432: password authentication failed"

func probeServer(t *testing.T, sd *seeded, token string, ok bool) *Server {
	t.Helper()
	probes := []ReadyProbe{
		{Name: "postgres", Check: func(context.Context) error {
			if ok {
				return nil
			}
			return errors.New(leakText)
		}},
		{Name: "failover", Check: func(context.Context) error { return errors.New("amqp://fleetuser@mq.internal.example down") }},
	}
	deps := storeDeps(sd.st)
	deps.Health, deps.NodeID, deps.Ready = testHealth(t, sd.st), "node-on-db.internal.example", probes
	s, err := New(Options{Address: "127.0.0.1:0", Token: token}, deps, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serve runs one request through the handler as if from remote.
func serve(s *Server, path, remote, token string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestIntegrationProbesShowDetailsOnlyWithTheToken(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	secretish := []string{"fleetuser", "internal.example", "password", "SQLSTATE", "paths", "checks", "uptime"}
	cases := []struct {
		name, token, remote, send string
		ready, details            bool
	}{
		{"token set, none sent", testToken, "203.0.113.7:4000", "", false, false},
		{"token set, wrong one", testToken, "203.0.113.7:4000", "0123456789abcdef-wrong-token", false, false},
		{"token set, none sent, loopback peer", testToken, "127.0.0.1:4000", "", false, false},
		{"token set and sent", testToken, "203.0.113.7:4000", testToken, false, true},
		{"no token, remote peer", "", "203.0.113.7:4000", "", false, false},
		{"no token, loopback peer", "", "127.0.0.1:4000", "", false, true},
		{"ready, token set, none sent", testToken, "203.0.113.7:4000", "", true, false},
		{"ready, token set and sent", testToken, "203.0.113.7:4000", testToken, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := probeServer(t, sd, tc.token, tc.ready)
			code, body := serve(s, "/readyz", tc.remote, tc.send)
			var got struct {
				Status string          `json:"status"`
				Ready  bool            `json:"ready"`
				Failed []string        `json:"failed"`
				Paths  json.RawMessage `json:"paths"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("readyz body %q: %v", body, err)
			}
			wantCode, wantStatus := http.StatusServiceUnavailable, "not ready"
			if tc.ready {
				wantCode, wantStatus = http.StatusOK, "ready"
			}
			if code != wantCode || got.Status != wantStatus || got.Ready != tc.ready {
				t.Fatalf("readyz %d %s, want %d %q", code, body, wantCode, wantStatus)
			}
			wantFailed := "postgres,failover"
			if tc.ready {
				wantFailed = "failover"
			}
			if strings.Join(got.Failed, ",") != wantFailed {
				t.Fatalf("failed %v, want %s", got.Failed, wantFailed)
			}
			hcode, hbody := serve(s, "/healthz", tc.remote, tc.send)
			if hcode != http.StatusOK || !strings.Contains(hbody, `"alive"`) {
				t.Fatalf("healthz %d %s", hcode, hbody)
			}
			for _, b := range []string{body, hbody} {
				if tc.details {
					continue
				}
				for _, w := range secretish {
					if strings.Contains(b, w) {
						t.Fatalf("probe body without the token shows %q:\n%s", w, b)
					}
				}
			}
			if tc.details {
				if len(got.Paths) == 0 || !strings.Contains(body, `"checks"`) || !strings.Contains(hbody, "node-on-db.internal.example") {
					t.Fatalf("details missing for an authorised caller:\n%s\n%s", body, hbody)
				}
				if !tc.ready && !strings.Contains(body, "password authentication failed") {
					t.Fatalf("probe error text missing for an authorised caller:\n%s", body)
				}
			}
		})
	}
}

func cursorOf(c map[string]string) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestIntegrationParametersAreCheckedBeforeAnyQuery sends bad parameters
// to every endpoint: each gets 400 with a message, never a database error.
func TestIntegrationParametersAreCheckedBeforeAnyQuery(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	ts, _ := newTestServer(t, sd, "")
	sig := "/api/devices/" + devHealthy + "/signals"
	fnd := "/api/devices/" + devNoFix + "/findings"
	cases := []struct{ path, want string }{
		{sig + "?from=-99999999999999", "from must lie between"},
		{sig + "?to=99999999999999", "to must lie between"},
		{sig + "?from=99999999999999999999999", "from must lie between"},
		{sig + "?from=-62135596801", "from must lie between"},
		{sig + "?from=2026-03-01T10:00:00Z&to=2026-03-01T09:00:00Z", "from must not be after to"},
		{sig + "?from=yesterday", "RFC 3339"},
		{sig + "?cursor=" + cursorOf(map[string]string{"v": "not a time", "i": "1"}), "cursor"},
		{sig + "?cursor=" + cursorOf(map[string]string{"v": "99999-01-01T00:00:00Z", "i": "1"}), "cursor"},
		{sig + "?cursor=" + cursorOf(map[string]string{"v": "2026-01-01T00:00:00Z", "i": "-5"}), "cursor"},
		{sig + "?cursor=" + cursorOf(map[string]string{"v": "2026-01-01T00:00:00Z", "i": "99999999999999999999"}), "cursor"},
		{sig + "?cursor=!!!", "cursor"},
		{sig + "?limit=1001", "limit"},
		{sig + "?offset=5", "unknown parameter"},
		{fnd + "?from=-99999999999999", "from must lie between"},
		{fnd + "?offset=-1", "offset"},
		{fnd + "?offset=99999999999999999999", "offset"},
		{fnd + "?offset=1000001", "offset"},
		{fnd + "?rule=%00", "control characters"},
		{"/api/devices?cursor=" + cursorOf(map[string]string{"s": "score", "v": "abc", "i": "x"}) + "&sort=score", "cursor"},
		{"/api/devices?cursor=" + cursorOf(map[string]string{"s": "score", "v": "99999999999", "i": "x"}) + "&sort=score", "cursor"},
		{"/api/devices?cursor=" + cursorOf(map[string]string{"s": "last_seen", "v": "garbage", "i": "x"}) + "&sort=last_seen", "cursor"},
		{"/api/devices?cursor=" + cursorOf(map[string]string{"s": "device_id", "v": "", "i": "a\x00b"}) + "&sort=device_id", "cursor"},
		{"/api/devices?cursor=" + cursorOf(map[string]string{"s": "score", "v": "1", "i": "x", "extra": "1"}), "cursor"},
		{"/api/devices?cursor=" + cursorOf(map[string]string{"s": "score", "v": "1", "i": "x"}) + "&sort=-score", "another sort order"},
		{"/api/devices?cursor=" + strings.Repeat("A", 5000), "cursor is"},
		{"/api/devices?sort=worst", "sort must be one of"},
		{"/api/devices?limit=0", "limit"},
		{"/api/devices?limit=abc", "limit"},
		{"/api/devices?limit=1&limit=1000", "given 2 times"},
		{"/api/devices?sortt=score", "unknown parameter"},
		{"/api/devices?sort=%zz", "does not parse"},
		{"/api/devices/%00", "control characters"},
		{"/api/devices/%ff%fe", "not valid UTF-8"},
		{"/api/devices/" + strings.Repeat("x", 1025), "at most 1024"},
		{"/api/alerts?device=%00", "control characters"},
		{"/api/alerts?kind=%ff", "not valid UTF-8"},
		{"/api/alerts?state=maybe", "state must be open or cleared"},
		{"/api/rejected?device=%00", "control characters"},
		{"/api/rejected?limit=1000000", "limit"},
		{"/api/rejected/abc", "positive integer"},
		{"/api/rejected/-1", "positive integer"},
		{"/api/rejected/99999999999999999999", "positive integer"},
		{"/api/rules?x=1", "unknown parameter"},
		{"/api/health?x=1", "unknown parameter"},
	}
	for _, tc := range cases {
		t.Run(tc.path[:min(len(tc.path), 90)], func(t *testing.T) {
			body := string(get(t, ts.URL, tc.path, "", http.StatusBadRequest, nil))
			if !strings.Contains(body, tc.want) {
				t.Fatalf("body %s lacks %q", body, tc.want)
			}
			for _, leak := range []string{"SQLSTATE", "ERROR", "database unavailable"} {
				if strings.Contains(body, leak) {
					t.Fatalf("body %s shows %q", body, leak)
				}
			}
		})
	}
	// Good parameters at the edges still answer.
	for _, path := range []string{
		sig + "?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z",
		sig + "?from=-62135596800&to=253402300799",
		fnd + "?offset=1000000",
		"/api/devices?sort=last_seen&cursor=" + cursorOf(map[string]string{"s": "last_seen", "v": "1970-01-01 00:00:00+00", "i": ""}),
		"/api/rejected?limit=1000",
	} {
		get(t, ts.URL, path, "", http.StatusOK, nil)
	}
}

// lockedBuffer collects log output written from handler goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestIntegrationQueryErrorsStayInTheLog breaks the schema under the API
// and then closes its pool: responses say 500 or 503 with a generic text,
// the log has the SQL error.
func TestIntegrationQueryErrorsStayInTheLog(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	logs := &lockedBuffer{}
	s, err := New(Options{Address: "127.0.0.1:0"}, storeDeps(sd.st),
		hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs}))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	ctx := context.Background()
	for _, tbl := range []string{"alerts", "rejected_frames", "findings"} {
		if _, err := sd.st.Pool().Exec(ctx, "ALTER TABLE "+tbl+" RENAME TO "+tbl+"_gone"); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{"/api/alerts", "/api/rejected", "/api/rejected/1", "/api/devices/" + devNoFix + "/findings", "/api/devices/" + devNoFix} {
		body := string(get(t, ts.URL, path, "", http.StatusInternalServerError, nil))
		if strings.Contains(body, "SQLSTATE") || strings.Contains(body, "does not exist") || !strings.Contains(body, "internal error") {
			t.Fatalf("%s: body %s", path, body)
		}
	}
	if !strings.Contains(logs.String(), "SQLSTATE 42P01") {
		t.Fatalf("the log lacks the SQL error:\n%s", logs)
	}
	sd.st.Pool().Close()
	for _, path := range []string{"/api/devices", "/api/rules", "/api/devices/" + devHealthy + "/signals"} {
		body := string(get(t, ts.URL, path, "", http.StatusServiceUnavailable, nil))
		if body != "{\n  \"error\": \"database unavailable\"\n}\n" {
			t.Fatalf("%s: body %q", path, body)
		}
	}
}

// TestIntegrationRejectedListingIsBounded stores 1,000 frames of 64 KiB:
// the listing of all of them carries 4 KiB of each, streamed; one frame's
// endpoint has all its bytes.
func TestIntegrationRejectedListingIsBounded(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	ts, _ := newTestServer(t, sd, "")
	ctx := context.Background()
	if _, err := sd.st.Pool().Exec(ctx, `INSERT INTO rejected_frames (recv, remote_addr, listener, protocol, device_id, reason, raw)
		SELECT now(), '198.51.100.1:4000', 'jsonl', 'jsonl', 'big-' || g, 'line too long',
			decode(repeat(lpad(to_hex(g % 256), 2, '0'), 65536), 'hex') FROM generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(ts.URL + "/api/rejected?limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	if len(body) > 10<<20 {
		t.Fatalf("listing of 1000 frames is %d bytes; want at most 10 MiB", len(body))
	}
	var page struct {
		Rejected []Rejected `json:"rejected"`
		Limit    int        `json:"limit"`
		Offset   int        `json:"offset"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("listing is not JSON: %v", err)
	}
	if len(page.Rejected) != 1000 || page.Limit != 1000 {
		t.Fatalf("%d rows, limit %d", len(page.Rejected), page.Limit)
	}
	var big *Rejected
	for i := range page.Rejected {
		x := &page.Rejected[i]
		if x.DeviceID == nil || !strings.HasPrefix(*x.DeviceID, "big-") {
			continue
		}
		if x.Bytes != 65536 || x.FrameBytes != 65536 || !x.RawTruncated || len(x.RawHex) != 2*maxRawListed {
			t.Fatalf("row %d: bytes %d, truncated %v, %d hex digits", x.ID, x.Bytes, x.RawTruncated, len(x.RawHex))
		}
		big = x
	}
	if big == nil {
		t.Fatal("no big frame listed")
	}
	var one Rejected
	get(t, ts.URL, fmt.Sprintf("/api/rejected/%d", big.ID), "", 200, &one)
	raw, err := hex.DecodeString(one.RawHex)
	if err != nil || len(raw) != 65536 || one.RawTruncated || one.Bytes != 65536 || !strings.HasPrefix(one.RawHex, big.RawHex) {
		t.Fatalf("one frame: %d bytes decoded (%v), truncated %v", len(raw), err, one.RawTruncated)
	}
	get(t, ts.URL, "/api/rejected/999999", "", 404, nil)
	// The small seeded frame is listed whole.
	get(t, ts.URL, "/api/rejected?device=&protocol=teltonika&limit=5", "", 200, &page)
	if len(page.Rejected) != 1 || page.Rejected[0].RawTruncated || page.Rejected[0].Bytes != 12 {
		t.Fatalf("small frame %+v", page.Rejected)
	}
	// A frame the quarantine cut to quarantine.max_raw_bytes says how long
	// it was.
	if _, err := sd.st.Pool().Exec(ctx, `INSERT INTO rejected_frames (recv, remote_addr, listener, protocol, device_id, reason, raw, raw_length)
		VALUES (now(), '198.51.100.2:4000', 'jsonl', 'cut', 'cut-1', 'line too long', '\x0102', 70000)`); err != nil {
		t.Fatal(err)
	}
	get(t, ts.URL, "/api/rejected?protocol=cut", "", 200, &page)
	if len(page.Rejected) != 1 || page.Rejected[0].Bytes != 2 || page.Rejected[0].FrameBytes != 70000 || page.Rejected[0].RawTruncated {
		t.Fatalf("cut frame %+v", page.Rejected)
	}
}
