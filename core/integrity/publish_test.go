package integrity

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/internal/testenv"
)

func TestIntegrationWebhookRetriesThenGivesUp(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st := openTestStore(t)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := st.Pool().Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO alerts (device_id, kind, state, reason) VALUES ('d1', 'gps_broken', 'open', 'r1'), ('d2', 'clock_drift', 'open', 'r2')`)
	exec(`INSERT INTO alert_events (alert_id, device_id, kind, state, reason) SELECT id, device_id, kind, state, reason FROM alerts ORDER BY id`)

	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var e Event
		if err := json.Unmarshal(b, &e); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook body %s: %v", b, err)
		}
		mu.Lock()
		calls[e.DeviceID]++
		n := calls[e.DeviceID]
		mu.Unlock()
		switch {
		case e.DeviceID == "d1" && n < 3: // two failures, then accepted
			w.WriteHeader(http.StatusBadGateway)
		case e.DeviceID == "d2": // always refused
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	p := NewPublisher(st.Pool(), nil, srv.URL, hclog.NewNullLogger())
	for round := 1; round <= webhookGiveUp+1; round++ {
		if err := p.Drain(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["d1"] != 3 {
		t.Errorf("d1 delivered after %d calls, want 3 (two failures retried within one round)", calls["d1"])
	}
	if calls["d2"] != webhookTries*webhookGiveUp {
		t.Errorf("d2 tried %d times, want %d (bounded)", calls["d2"], webhookTries*webhookGiveUp)
	}
	var pending int
	var lastErr string
	st.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE webhooked IS NULL OR published IS NULL),
		max(last_error) FROM alert_events`).Scan(&pending, &lastErr)
	if pending != 0 || lastErr == "" {
		t.Fatalf("pending %d, last error %q", pending, lastErr)
	}
}
