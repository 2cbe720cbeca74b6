package store_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

// kindOfUDT is the signal.Limits kind each Postgres type of the signals
// table must have.
var kindOfUDT = map[string]signal.Kind{
	"text":        signal.KindText,
	"timestamptz": signal.KindTime,
	"float8":      signal.KindNumber,
	"bool":        signal.KindFlag,
	"_text":       signal.KindTextList,
	"jsonb":       signal.KindAttrs,
	"bytea":       signal.KindBytes,
	"int8":        signal.KindInt,
}

// fill returns exactly n bytes of valid UTF-8 that is not plain ASCII:
// two-byte runes, padded with one ASCII byte when n is odd.
func fill(n int) string {
	s := strings.Repeat("é", n/2)
	if n%2 == 1 {
		s += "x"
	}
	return s
}

// atEveryCap is a record at every cap of signal.Limits at once: the longest
// device id, protocol, DTC list and frame, numbers at their domain's max,
// attributes at their key, string and count caps, with the escapes the
// store writes, and the latest time.
func atEveryCap() signal.Signal {
	s := signal.New(fill(signal.MaxDeviceIDBytes), signal.EndTime.Add(-time.Microsecond))
	s.Recv = signal.EndTime.Add(-time.Microsecond)
	s.Protocol = fill(signal.MaxProtocolBytes)
	s.DecoderVersion = fill(signal.MaxDecoderVersionBytes)
	s.Path = signal.PathFailover
	s.Valid = signal.True
	for f := signal.FieldLat; f <= signal.FieldThrottle; f++ {
		d, _ := signal.DomainOf(f)
		s.SetNumber(f, d.Max)
	}
	s.DTCs = make([]string, signal.MaxDTCs)
	for i := range s.DTCs {
		s.DTCs[i] = fill(signal.MaxDTCBytes)
	}
	s.Attrs = map[string]any{}
	// One string at the string cap, with every character class the store
	// escapes, and one of each other value type at its extreme.
	odd := "\"\\\n\t\x01<>&\u2028é𝄞"
	s.Attrs[attrKey(0)] = odd + strings.Repeat("v", signal.MaxAttrStringBytes-len(odd))
	s.Attrs[attrKey(1)] = math.MaxFloat64
	s.Attrs[attrKey(2)] = -math.SmallestNonzeroFloat64
	s.Attrs[attrKey(3)] = int64(math.MinInt64)
	s.Attrs[attrKey(4)] = int64(math.MaxInt64)
	s.Attrs[attrKey(5)] = false
	s.Attrs[attrKey(6)] = nil
	for i := 7; i < signal.MaxAttrs; i++ {
		s.Attrs[attrKey(i)] = "v"
	}
	s.Frame = make([]byte, signal.MaxFrameBytes)
	for i := range s.Frame {
		s.Frame[i] = byte(i * 7)
	}
	return s
}

// atEveryMin is a record at the other end of every range.
func atEveryMin() signal.Signal {
	s := signal.New("m", signal.MinTime)
	s.Recv = signal.MinTime
	s.Protocol = "p"
	s.Path = signal.PathDirect
	s.Valid = signal.False
	for f := signal.FieldLat; f <= signal.FieldThrottle; f++ {
		d, _ := signal.DomainOf(f)
		s.SetNumber(f, d.Min)
	}
	return s
}

// attrKey is the i-th attribute name of atEveryCap.
func attrKey(i int) string {
	k := fmt.Sprintf("%04d", i)
	return k + fill(signal.MaxAttrKeyBytes-len(k))
}

// swapAttr replaces one of atEveryCap's plain attributes, keeping the count
// at its cap.
func swapAttr(s *signal.Signal, k string, v any) {
	delete(s.Attrs, attrKey(7))
	s.Attrs[k] = v
}

// past is one step past a cap and the refusal Check must give.
type past struct {
	mod  func(*signal.Signal)
	want string
}

// beyond lists, by column, records one step past a cap. Every column that
// a decoder fills (and path) has at least one entry; numbers are walked
// over their domains.
var beyond = map[string][]past{
	"device_id": {
		{func(s *signal.Signal) { s.DeviceID += "x" }, "device_id of 129 bytes exceeds 128"},
		{func(s *signal.Signal) { s.DeviceID = "" }, "no device id"},
		{func(s *signal.Signal) { s.DeviceID = "a\x00" }, "device_id \"a\\x00\" contains a NUL character"},
	},
	"ts": {
		{func(s *signal.Signal) { s.TS = signal.EndTime }, "ts 2100-01-01T00:00:00Z outside"},
		{func(s *signal.Signal) { s.TS = signal.MinTime.Add(-time.Microsecond) }, "ts 1969-12-31T23:59:59.999999Z outside"},
	},
	"recv": {
		{func(s *signal.Signal) { s.Recv = signal.EndTime }, "recv 2100-01-01T00:00:00Z outside"},
		{func(s *signal.Signal) { s.Recv = signal.MinTime.Add(-time.Microsecond) }, "recv 1969-12-31T23:59:59.999999Z outside"},
	},
	"valid":    {{func(s *signal.Signal) { s.Valid = 3 }, "valid is 3"}},
	"protocol": {{func(s *signal.Signal) { s.Protocol += "x" }, "protocol of 65 bytes exceeds 64"}},
	"path":     {{func(s *signal.Signal) { s.Path = "failover2" }, "path \"failover2\" is not"}},
	"decoder_version": {
		{func(s *signal.Signal) { s.DecoderVersion += "x" }, "decoder_version of 129 bytes exceeds 128"},
		{func(s *signal.Signal) { s.DecoderVersion = "1.0\x00" }, "decoder_version \"1.0\\x00\" contains a NUL character"},
	},
	"dtcs": {
		{func(s *signal.Signal) { s.DTCs = append(s.DTCs, "P0301") }, "257 dtcs exceed 256"},
		{func(s *signal.Signal) { s.DTCs[0] += "x" }, "dtcs[0] of 33 bytes exceeds 32"},
	},
	"attrs": {
		{func(s *signal.Signal) { s.SetAttr("one more", 1) }, "1025 attrs exceed 1024"},
		{func(s *signal.Signal) { swapAttr(s, fill(signal.MaxAttrKeyBytes+1), 1) }, "attrs key of 65 bytes exceeds 64"},
		{func(s *signal.Signal) { swapAttr(s, "k\x00", 1) }, "attrs key \"k\\x00\" contains a NUL character"},
		{func(s *signal.Signal) { s.Attrs[attrKey(0)] = s.Attrs[attrKey(0)].(string) + "v" }, "of 131073 bytes exceeds 131072"},
		{func(s *signal.Signal) { s.Attrs[attrKey(1)] = math.Inf(1) }, "is +Inf: JSON holds only finite numbers"},
		{func(s *signal.Signal) { s.Attrs[attrKey(1)] = []int{1} }, "is a []int: want float64, int64, string, bool or nil"},
		{func(s *signal.Signal) {
			s.Attrs = map[string]any{"a": fill(signal.MaxAttrStringBytes), "b": fill(signal.MaxAttrStringBytes), "c": "x"}
		}, "attrs of 262168 bytes as JSON exceed 262144"},
	},
	"frame": {{func(s *signal.Signal) { s.Frame = append(s.Frame, 0) }, "frame of 16777217 bytes exceeds 16777216"}},
}

// TestIntegrationLimitsCoverTheSchema walks the signals table of a freshly
// migrated database: every column must have an entry in signal.Limits of
// the kind its type needs, a record at every cap must be stored by
// Postgres, and one step past every cap must be refused by Check. A new
// column without a limit, or a cap Postgres refuses, fails here.
func TestIntegrationLimitsCoverTheSchema(t *testing.T) {
	testenv.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st := openStore(t)

	rows, err := st.Pool().Query(ctx, `SELECT column_name, udt_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'signals' ORDER BY ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	columns := map[string]string{}
	for rows.Next() {
		var name, udt string
		if err := rows.Scan(&name, &udt); err != nil {
			t.Fatal(err)
		}
		columns[name] = udt
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(columns) == 0 {
		t.Fatal("no columns for table signals")
	}
	for name, udt := range columns {
		l, ok := signal.Limits[name]
		if !ok {
			t.Errorf("column signals.%s (%s) has no entry in signal.Limits: declare its cap in signal/limits.go and enforce it in Check", name, udt)
			continue
		}
		want, ok := kindOfUDT[udt]
		if !ok {
			t.Errorf("column signals.%s has type %s, which no signal.Kind stands for", name, udt)
			continue
		}
		if l.Kind != want {
			t.Errorf("signal.Limits[%q] is of kind %s, but the column is %s (kind %s)", name, l.Kind, udt, want)
		}
		if l.SetBy == "" || name == "path" {
			if len(beyond[name]) == 0 && l.Kind != signal.KindNumber {
				t.Errorf("column signals.%s: no case one step past its cap in this test", name)
			}
		}
	}
	for name := range signal.Limits {
		if _, ok := columns[name]; !ok {
			t.Errorf("signal.Limits has %q, which is no column of signals", name)
		}
	}
	for _, c := range store.SignalColumns {
		if _, ok := signal.Limits[c]; !ok {
			t.Errorf("store.SignalColumns has %q without a limit", c)
		}
	}

	// At every cap: accepted by Check, then by Postgres.
	top, bottom := atEveryCap(), atEveryMin()
	for _, s := range []*signal.Signal{&top, &bottom} {
		if err := s.Check(); err != nil {
			t.Fatalf("a record at the caps fails Check: %v", err)
		}
	}
	res, err := st.WriteSignals(ctx, []signal.Signal{top, bottom})
	if err != nil {
		t.Fatalf("Postgres refused the records at the caps: %v", err)
	}
	if res.Inserted != 2 {
		t.Fatalf("stored %+v, want 2 inserted", res)
	}
	var devLen, protoLen, dtcs, keys, frameLen, verLen int
	var lat, ts float64
	err = st.Pool().QueryRow(ctx, `SELECT octet_length(device_id), octet_length(protocol), cardinality(dtcs),
		(SELECT count(*) FROM jsonb_object_keys(attrs)), octet_length(frame), lat, extract(epoch FROM ts),
		octet_length(decoder_version)
		FROM signals WHERE device_id = $1`, top.DeviceID).Scan(&devLen, &protoLen, &dtcs, &keys, &frameLen, &lat, &ts, &verLen)
	if err != nil {
		t.Fatal(err)
	}
	if devLen != signal.MaxDeviceIDBytes || protoLen != signal.MaxProtocolBytes || dtcs != signal.MaxDTCs ||
		keys != signal.MaxAttrs || frameLen != signal.MaxFrameBytes || lat != 90 ||
		ts != float64(signal.EndTime.Add(-time.Microsecond).UnixMicro())/1e6 || verLen != signal.MaxDecoderVersionBytes {
		t.Fatalf("stored device_id %d B, protocol %d B, %d dtcs, %d attrs, frame %d B, lat %g, ts %f, decoder_version %d B: not the record at the caps",
			devLen, protoLen, dtcs, keys, frameLen, lat, ts, verLen)
	}

	// One step past: refused by Check, naming the column.
	for col, cases := range beyond {
		for i, tc := range cases {
			t.Run(fmt.Sprintf("%s/%d", col, i), func(t *testing.T) {
				s := atEveryCap()
				tc.mod(&s)
				err := s.Check()
				if err == nil || !errors.Is(err, signal.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Check() = %v, want an ErrInvalid with %q", err, tc.want)
				}
			})
		}
	}
	for f := signal.FieldLat; f <= signal.FieldThrottle; f++ {
		d, _ := signal.DomainOf(f)
		for _, v := range []float64{math.Nextafter(d.Max, math.Inf(1)), math.Nextafter(d.Min, math.Inf(-1)), math.Inf(1)} {
			s := atEveryCap()
			s.SetNumber(f, v)
			if err := s.Check(); err == nil || !strings.Contains(err.Error(), f.String()+" ") {
				t.Errorf("%s = %g: Check() = %v, want a refusal naming %s", f, v, err, f)
			}
		}
	}
}

// TestIntegrationDeviceIDCapFitsTheIndex shows why device_id is capped:
// Postgres refuses an incompressible 6 000-byte id in the idempotency index
// (SQLSTATE 54000, the failure of issue 11) and stores one of
// MaxDeviceIDBytes random bytes with a wide margin to the 2704-byte limit.
func TestIntegrationDeviceIDCapFitsTheIndex(t *testing.T) {
	testenv.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := openStore(t)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	random := func(n int) string {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = alphabet[int(b[i])%len(alphabet)]
		}
		return string(b)
	}
	insert := `INSERT INTO signals (device_id, ts, recv, protocol, path, record_hash) VALUES ($1, now(), now(), 'jsonl', 'direct', 0)`
	_, err := st.Pool().Exec(ctx, insert, random(6000))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "54000" {
		t.Fatalf("inserting a 6000-byte device id: %v, want SQLSTATE 54000 (the btree limit the cap guards)", err)
	}
	long := random(signal.MaxDeviceIDBytes)
	if _, err := st.Pool().Exec(ctx, insert, long); err != nil {
		t.Fatalf("inserting a device id of %d random bytes: %v", signal.MaxDeviceIDBytes, err)
	}
	s := signal.New(long, time.Now())
	if err := s.Check(); err != nil {
		t.Fatalf("Check refuses the id Postgres stores: %v", err)
	}
	s.DeviceID = random(6000)
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), "device_id of 6000 bytes exceeds 128") {
		t.Fatalf("Check() = %v, want device_id of 6000 bytes exceeds 128", err)
	}
}
