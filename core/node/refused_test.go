package node_test

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/core/recovery"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

// TestIntegrationRefusedOnReplayIsAlertedAndCounted: a spooled (acked)
// batch in which Postgres refuses one record is replayed by the node: the
// good records are stored, the refused one is kept, the device gets a
// record_refused alert with its event in the outbox, and
// fleetcore_store_records_refused_total{acked="true"} counts it.
func TestIntegrationRefusedOnReplayIsAlertedAndCounted(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	cfg, err := config.Parse("node.hcl", []byte(`
spool { dir = "`+filepath.Join(t.TempDir(), "spool")+`" }
organizer { replay_interval = "1h" }
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = db
	cfg.API.Address = "127.0.0.1:0"
	n, ctx := runNode(t, cfg)
	if _, err := n.Store().Pool().Exec(ctx, `ALTER TABLE signals ADD CONSTRAINT poison CHECK (device_id NOT LIKE 'poison%')`); err != nil {
		t.Fatal(err)
	}
	var batch []signal.Signal
	for i := 0; i < 50; i++ {
		dev := fmt.Sprintf("good-%d", i%5)
		if i == 20 {
			dev = "poison-truck"
		}
		s := signal.New(dev, time.Date(2026, 6, 1, 0, 0, i, 0, time.UTC))
		s.Protocol = "test"
		batch = append(batch, s)
	}
	if err := n.Spool().Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := n.Organizer().RunNow(ctx, recovery.JobReplaySpool); err != nil {
		t.Fatal(err)
	}
	var stored, kept, open int
	if err := n.Store().Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM signals),
		(SELECT count(*) FROM rejected_records WHERE acked AND device_id = 'poison-truck'),
		(SELECT count(*) FROM alerts WHERE device_id = 'poison-truck' AND kind = $1 AND state = 'open')`,
		integrity.KindRecordRefused).Scan(&stored, &kept, &open); err != nil {
		t.Fatal(err)
	}
	if stored != 49 || kept != 1 || open != 1 {
		t.Fatalf("%d stored, %d kept, %d open record_refused alerts; want 49, 1, 1", stored, kept, open)
	}
	if st := n.Spool().Stats(); st.Segments != 0 || st.DeadBacklog != 0 {
		t.Fatalf("spool %+v", st)
	}
	// Still open while the record is kept; cleared once it is gone.
	countOpen := func() int {
		t.Helper()
		var c int
		if err := n.Store().Pool().QueryRow(ctx, `SELECT count(*) FROM alerts WHERE device_id = 'poison-truck' AND kind = $1 AND state = 'open'`,
			integrity.KindRecordRefused).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := n.Organizer().RunNow(ctx, node.JobRecordAlerts); err != nil || countOpen() != 1 {
		t.Fatalf("alert cleared while the record is kept (%v)", err)
	}
	if _, err := n.Store().Pool().Exec(ctx, `DELETE FROM rejected_records WHERE device_id = 'poison-truck'`); err != nil {
		t.Fatal(err)
	}
	if err := n.Organizer().RunNow(ctx, node.JobRecordAlerts); err != nil || countOpen() != 0 {
		t.Fatalf("alert not cleared once the record is gone (%v)", err)
	}
	resp, err := http.Get("http://" + n.APIAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `fleetcore_store_records_refused_total{acked="true"} 1`+"\n") {
		t.Fatalf("metric missing:\n%s", grepLines(string(body), "refused"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
