package store_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

// TestIntegrationRejectedRecordOfTheVersion1Codec: a rejected_records row
// an older build wrote (testdata/record_v1.hex: one record in the version 1
// codec, before decoder_version, written by that build) still lists whole
// after the upgrade, without a decoder version; one written now keeps its
// version.
func TestIntegrationRejectedRecordOfTheVersion1Codec(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st := openStore(t)
	text, err := os.ReadFile("testdata/record_v1.hex")
	if err != nil {
		t.Fatal(err)
	}
	v1, err := hex.DecodeString(string(bytes.TrimSpace(text)))
	if err != nil || len(v1) < 4 || v1[3] != 1 {
		t.Fatalf("fixture is not a version 1 batch (%v)", err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO rejected_records (record_key, device_id, device_id_len, ts, ts_us, protocol,
		path, acked, record_hash, sqlstate, reason, record)
		VALUES ('\x01', 'old-device', 10, '2026-03-01T12:00:00Z', 1772366400000000, 'teltonika', 'failover', true, 0, '22000', 'old', $1)`, v1); err != nil {
		t.Fatal(err)
	}
	now := signal.New("new-device", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	now.Protocol, now.Path, now.DecoderVersion = "acme_wat", signal.PathDirect, "1.0.0+sha256:0123456789ab"
	recs := store.RefusedRecords([]signal.Signal{now}, []store.Refusal{{Index: 0, SQLState: "22000", Message: "test"}}, false)
	if err := st.QuarantineRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	got := map[string]*signal.Signal{}
	if err := st.RejectedRecords(ctx, store.RejectedFilter{Limit: 10}, func(r store.RejectedRow) error {
		if r.DecodeErr != "" {
			t.Errorf("row %d (%s): %s", r.ID, r.DeviceID, r.DecodeErr)
		}
		got[r.DeviceID] = r.Signal
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	old, fresh := got["old-device"], got["new-device"]
	if old == nil || fresh == nil {
		t.Fatalf("listed %v, want both rows decoded", got)
	}
	if old.DecoderVersion != "" || old.Lat != 54.68 || old.Attrs["io239"] != int64(1) || string(old.Frame) != "\x01\x02\x03" {
		t.Errorf("version 1 record: %+v", old)
	}
	if fresh.DecoderVersion != now.DecoderVersion {
		t.Errorf("record written now: decoder version %q, want %q", fresh.DecoderVersion, now.DecoderVersion)
	}
}
