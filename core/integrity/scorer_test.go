package integrity

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

func openTestStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Database(t), store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.MigrateAll(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// toSignals turns records into stored signals; duplicates (same ts) differ
// in an attribute so that both are stored.
func toSignals(dev string, recs []Record) []signal.Signal {
	var out []signal.Signal
	seen := map[time.Time]int{}
	for _, r := range recs {
		s := signal.New(dev, r.TS)
		s.Recv, s.Lat, s.Lon, s.Valid, s.Protocol = r.Recv, r.Lat, r.Lon, r.Valid, "test"
		if math.IsNaN(r.Lat) {
			s.Lat = math.NaN()
		}
		s.SetAttr("copy", seen[r.TS])
		seen[r.TS]++
		out = append(out, s)
	}
	return out
}

func TestIntegrationScorerMatchesPureCoreAndPublishes(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st := openTestStore(t)
	fleet := syntheticFleet()
	for _, s := range fleet {
		// Write in two halves, newest first, with a scoring round between:
		// the stored result must not depend on arrival order.
		sigs := toSignals(s.name, s.recs)
		half := len(sigs) / 2
		if _, err := st.WriteSignals(ctx, withPath(sigs[half:])); err != nil {
			t.Fatal(err)
		}
	}
	// Rule statistics of the broken_gps device, as the rules scheduler
	// writes them.
	p := DefaultParams()
	for _, s := range fleet {
		if s.rules == nil {
			continue
		}
		for _, w := range windowsOf(s, p) {
			for _, c := range w.Rules {
				if _, err := st.Pool().Exec(ctx, `INSERT INTO rule_stats VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,0)`,
					s.name, w.Stats.Hour, c.Check, c.Version, c.Dimension, c.Applicable, c.Passed, c.Warned, c.Failed); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	log := hclog.NewNullLogger()
	sc := NewScorer(st.Pool(), p, log)
	if _, err := sc.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range fleet {
		sigs := toSignals(s.name, s.recs)
		if _, err := st.WriteSignals(ctx, withPath(sigs[:len(sigs)/2])); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := sc.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Devices != len(fleet) {
		t.Fatalf("scored %d devices, want %d", rs.Devices, len(fleet))
	}
	for _, s := range fleet {
		var score int64
		var lossesJSON []byte
		if err := st.Pool().QueryRow(ctx, `SELECT score, losses FROM device_scores WHERE device_id = $1`, s.name).Scan(&score, &lossesJSON); err != nil {
			t.Fatal(err)
		}
		if score != s.score {
			t.Errorf("%s: stored score %s, want %s", s.name, FormatCenti(score), FormatCenti(s.score))
		}
		want := Compute(p, s.name, windowsOf(s, p))
		var losses []Loss
		if err := json.Unmarshal(lossesJSON, &losses); err != nil {
			t.Fatal(err)
		}
		if len(losses) != len(want.Losses) || (len(losses) > 0 && losses[0].Reason != want.Losses[0].Reason) {
			t.Errorf("%s: stored losses %+v, want %+v", s.name, losses, want.Losses)
		}
		rows, err := st.Pool().Query(ctx, `SELECT kind FROM alerts WHERE device_id = $1 AND state = 'open' ORDER BY kind`, s.name)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for rows.Next() {
			var k string
			rows.Scan(&k)
			kinds = append(kinds, k)
		}
		rows.Close()
		if len(kinds) != len(s.kinds) {
			t.Errorf("%s: open alerts %v, want %v", s.name, kinds, s.kinds)
		}
	}

	// Idempotent: a full recomputation changes nothing and opens nothing.
	var events int
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM alert_events`).Scan(&events)
	for _, s := range fleet {
		if err := sc.Rescore(ctx, s.name); err != nil {
			t.Fatal(err)
		}
	}
	var events2, open int
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM alert_events`).Scan(&events2)
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM alerts WHERE state = 'open'`).Scan(&open)
	if events2 != events || open != 7 {
		t.Fatalf("after rescoring: %d events (was %d), %d open alerts (want 7)", events2, events, open)
	}

	// The outbox reaches a topic exchange.
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
	broker := NewAMQPBroker([]string{vhost}, "fleetcore.alerts", 5*time.Second, log)
	defer broker.Close()
	pub := NewPublisher(st.Pool(), broker, "", log)
	if err := pub.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := pub.Counts(); n != uint64(events) {
		t.Fatalf("published %d events, want %d", n, events)
	}
	got := map[string]bool{}
	for i := 0; i < 2; i++ {
		d, ok, err := ch.Get(q.Name, true)
		if err != nil || !ok {
			t.Fatalf("getting message %d: ok=%v err=%v", i, ok, err)
		}
		var e Event
		if err := json.Unmarshal(d.Body, &e); err != nil {
			t.Fatal(err)
		}
		if d.RoutingKey != "gps_broken."+e.DeviceID || e.State != "open" || d.DeliveryMode != amqp.Persistent {
			t.Fatalf("message %+v key %s mode %d", e, d.RoutingKey, d.DeliveryMode)
		}
		got[e.DeviceID] = true
	}
	if !got["broken_gps"] || !got["junk"] {
		t.Fatalf("gps_broken messages for %v", got)
	}
	// Nothing is published twice.
	if err := pub.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := ch.Get(q.Name, true); ok {
		t.Fatal("an event was published twice")
	}
}

func withPath(s []signal.Signal) []signal.Signal {
	for i := range s {
		s[i].Path = signal.PathDirect
	}
	return s
}
