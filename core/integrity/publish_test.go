package integrity

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	amqp "github.com/rabbitmq/amqp091-go"

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

// The alert broker goes through the failover tier's link: when the broker
// connection is cut, Drain fails and the event stays in the outbox; once
// the broker is back the link reconnects (after its backoff) and a later
// Drain delivers the event.
func TestIntegrationAlertBrokerReconnectsThroughLink(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st := openTestStore(t)
	vhost := testenv.VHost(t)
	conn, err := amqp.Dial(vhost)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("fleetcore.alerts", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "gps_broken.#", "fleetcore.alerts", false, nil); err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, testenv.HostPort(vhost))
	broker := NewAMQPBroker([]string{testenv.WithHost(vhost, proxy.Addr())}, "fleetcore.alerts", 2*time.Second, hclog.NewNullLogger())
	defer broker.Close()
	pub := NewPublisher(st.Pool(), broker, "", hclog.NewNullLogger())
	event := func(dev string) {
		t.Helper()
		if _, err := st.Pool().Exec(ctx, `WITH a AS (INSERT INTO alerts (device_id, kind, state, reason)
			VALUES ($1, 'gps_broken', 'open', 'r') RETURNING id, device_id, kind, state, reason)
			INSERT INTO alert_events (alert_id, device_id, kind, state, reason) SELECT * FROM a`, dev); err != nil {
			t.Fatal(err)
		}
	}
	event("d1")
	if err := pub.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	event("d2")
	if err := pub.Drain(ctx); err == nil {
		t.Fatal("Drain succeeded with the broker cut off")
	}
	var pending int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM alert_events WHERE published IS NULL`).Scan(&pending); err != nil || pending != 1 {
		t.Fatalf("pending events %d (%v), want d2's", pending, err)
	}
	if _, failed := pub.Counts(); failed == 0 {
		t.Fatal("no publish failure counted")
	}
	proxy.Restore()
	deadline := time.Now().Add(20 * time.Second)
	for pub.Drain(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the alert broker did not reconnect")
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline: the link's backoff runs
	}
	if n, _ := pub.Counts(); n != 2 {
		t.Fatalf("published %d, want 2", n)
	}
	got := map[string]int{}
	for {
		d, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		var e Event
		if err := json.Unmarshal(d.Body, &e); err != nil {
			t.Fatal(err)
		}
		if d.RoutingKey != "gps_broken."+e.DeviceID {
			t.Fatalf("routing key %s for %s", d.RoutingKey, e.DeviceID)
		}
		got[e.DeviceID]++
	}
	if got["d1"] < 1 || got["d2"] < 1 {
		t.Fatalf("delivered %v, want d1 and d2", got)
	}
}
