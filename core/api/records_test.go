package api

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

type recordsPage struct {
	Records []RejectedRecord `json:"records"`
	Limit   int              `json:"limit"`
	Offset  int              `json:"offset"`
	Error   string           `json:"error"`
}

func TestIntegrationRejectedRecordsAPI(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Database(t), store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.MigrateAll(ctx); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 6000)
	var recs []store.RejectedRecord
	for i, dev := range []string{long, "bad\x00id", "dev-1", "dev-1"} {
		s := signal.New(dev, time.Date(2026, 4, 1, 0, 0, i, 0, time.UTC))
		s.Protocol, s.Path, s.Frame, s.Speed = "jsonl", signal.PathFailover, []byte("frame"), 42
		recs = append(recs, store.RejectedRecord{Signal: s, Acked: i != 3, SQLState: "54000", Reason: fmt.Sprintf("reason %d", i)})
	}
	if err := st.QuarantineRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Address: "127.0.0.1:0"}, func() Deps { d := storeDeps(st); d.NodeID = "test"; return d }(), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)

	var page recordsPage
	get(t, ts.URL, "/api/rejected/records", "", 200, &page)
	if len(page.Records) != 4 || page.Limit != 100 || page.Error != "" {
		t.Fatalf("page: %d records, limit %d, error %q", len(page.Records), page.Limit, page.Error)
	}
	first := page.Records[len(page.Records)-1] // oldest last
	if first.Record == nil || first.Record.DeviceID != long || first.DeviceIDLen != 6000 || len(first.DeviceID) > store.MaxPrintable ||
		!first.Acked || first.SQLState != "54000" || first.Record.Speed == nil || *first.Record.Speed != 42 || first.FrameBytes != 5 {
		t.Fatalf("oldest row: %+v", first)
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"?device=" + url.QueryEscape("dev-1"), 2},
		{"?device=" + url.QueryEscape("dev-1") + "&acked=false", 1},
		{"?acked=true", 3},
		{"?device=" + url.QueryEscape("bad\x00id"), 1}, // the raw ID
		{"?device=" + url.QueryEscape(`bad\x00id`), 1}, // its stored form
		{"?device=" + url.QueryEscape(long), 1},        // matched on its printable form
		{"?limit=1", 1},
		{"?limit=2&offset=3", 1},
	} {
		t.Run(tc.query, func(t *testing.T) {
			var p recordsPage
			get(t, ts.URL, "/api/rejected/records"+tc.query, "", 200, &p)
			if len(p.Records) != tc.want {
				t.Fatalf("%d rows, want %d", len(p.Records), tc.want)
			}
		})
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x", "?offset=-1", "?acked=maybe", "?nosuch=1", "?acked=true&acked=false"} {
		t.Run("bad "+q, func(t *testing.T) {
			get(t, ts.URL, "/api/rejected/records"+q, "", 400, nil)
		})
	}
}
