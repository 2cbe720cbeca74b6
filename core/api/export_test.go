package api

import (
	"context"
	"encoding/csv"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
)

func TestIntegrationExports(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	ts, _ := newTestServer(t, sd, "")
	end := sd.base.Add(5 * time.Hour)
	rng := fmt.Sprintf("from=%d&to=%d", sd.base.Unix(), end.Unix())

	// CSV: a header, then every stored signal of the device, oldest first,
	// the same values as /signals.
	body := get(t, ts.URL, "/api/devices/"+devDuplicate+"/signals.csv?"+rng, "", 200, nil)
	recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != strings.Join(exportColumns, ",") || len(recs) != 1+600 {
		t.Fatalf("csv: header %v, %d lines", recs[0], len(recs))
	}
	var page struct {
		Signals []struct {
			ID    int64     `json:"id"`
			TS    time.Time `json:"ts"`
			Lat   float64   `json:"lat"`
			Speed float64   `json:"speed"`
		} `json:"signals"`
	}
	get(t, ts.URL, "/api/devices/"+devDuplicate+"/signals?limit=3&"+rng, "", 200, &page)
	for i, s := range page.Signals {
		r := recs[1+i]
		if r[0] != fmt.Sprint(s.ID) || r[1] != devDuplicate || r[2] != s.TS.Format(time.RFC3339Nano) ||
			r[4] != fmt.Sprint(s.Lat) || r[7] != fmt.Sprint(s.Speed) || r[11] != "true" || r[21] != "teltonika" || r[22] != "direct" ||
			r[23] != "builtin:test" || r[6] != "" {
			t.Fatalf("csv row %d %v, signal %+v", i, r, s)
		}
	}

	// GeoJSON: a FeatureCollection of Points (lon, lat).
	var fc struct {
		Type     string `json:"type"`
		Features []struct {
			Type     string `json:"type"`
			Geometry *struct {
				Type        string    `json:"type"`
				Coordinates []float64 `json:"coordinates"`
			} `json:"geometry"`
			Properties map[string]any `json:"properties"`
		} `json:"features"`
	}
	get(t, ts.URL, "/api/devices/"+devNoFix+"/signals.geojson?"+rng, "", 200, &fc)
	if fc.Type != "FeatureCollection" || len(fc.Features) != 300 {
		t.Fatalf("geojson: %s with %d features", fc.Type, len(fc.Features))
	}
	f0 := fc.Features[0]
	if f0.Type != "Feature" || f0.Geometry == nil || f0.Geometry.Type != "Point" || len(f0.Geometry.Coordinates) != 2 ||
		f0.Geometry.Coordinates[0] != 25.28 || f0.Geometry.Coordinates[1] != 54.68 ||
		f0.Properties["device_id"] != devNoFix || f0.Properties["speed"] != 42.0 || f0.Properties["valid"] != true {
		t.Fatalf("geojson feature %+v %+v", f0, f0.Geometry)
	}

	// GPX: one track of the device's fixes.
	var gpx struct {
		XMLName xml.Name `xml:"gpx"`
		Version string   `xml:"version,attr"`
		Trk     struct {
			Name string `xml:"name"`
			Pts  []struct {
				Lat   float64   `xml:"lat,attr"`
				Lon   float64   `xml:"lon,attr"`
				Time  time.Time `xml:"time"`
				Sat   int       `xml:"sat"`
				Speed float64   `xml:"extensions>speed_kmh"`
			} `xml:"trkseg>trkpt"`
		} `xml:"trk"`
	}
	body = get(t, ts.URL, "/api/devices/"+devHealthy+"/signals.gpx", "", 200, nil)
	if err := xml.Unmarshal(body, &gpx); err != nil {
		t.Fatalf("gpx: %v\n%s", err, body[:200])
	}
	if gpx.Version != "1.1" || gpx.Trk.Name != devHealthy || len(gpx.Trk.Pts) != 300 {
		t.Fatalf("gpx: version %s, name %s, %d points", gpx.Version, gpx.Trk.Name, len(gpx.Trk.Pts))
	}
	if p := gpx.Trk.Pts[299]; p.Lon != 25.28 || p.Sat != 9 || p.Speed != 42 || !p.Time.Equal(sd.base.Add(299*time.Minute)) {
		t.Fatalf("gpx last point %+v", p)
	}

	// Fleet-wide CSV over one hour: every device's signals of that hour.
	from, to := sd.base.Add(time.Hour), sd.base.Add(2*time.Hour)
	body = get(t, ts.URL, fmt.Sprintf("/api/signals.csv?from=%d&to=%d", from.Unix(), to.Unix()), "", 200, nil)
	recs, err = csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var want int
	if err := sd.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM signals WHERE ts >= $1 AND ts < $2`, from, to).Scan(&want); err != nil {
		t.Fatal(err)
	}
	devices := map[string]bool{}
	for i, r := range recs[1:] {
		devices[r[1]] = true
		if i > 0 && r[2] < recs[i][2] {
			t.Fatalf("fleet csv out of order at %d: %s after %s", i, r[2], recs[i][2])
		}
	}
	if want < 300 || len(recs)-1 != want || len(devices) < 5 {
		t.Fatalf("fleet csv: %d rows of %d devices, want %d rows", len(recs)-1, len(devices), want)
	}

	// Headers, errors.
	resp, err := http.Get(ts.URL + "/api/devices/" + devJunk + "/signals.gpx")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct, cd := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"); ct != "application/gpx+xml" ||
		cd != `attachment; filename="FMB920-demo-07.gpx"` {
		t.Fatalf("headers %q %q", ct, cd)
	}
	for _, p := range []string{"signals.csv", "signals.geojson", "signals.gpx"} {
		get(t, ts.URL, "/api/devices/no-such-device/"+p, "", 404, nil)
	}
	for _, c := range []struct{ path, word string }{
		{"/api/signals.csv", "from"},
		{"/api/signals.csv?from=0", "to"},
		{"/api/signals.csv?from=10&to=5", "from"},
		{"/api/signals.csv?from=0&to=10&limit=abc", "limit"},
		{"/api/devices/" + devHealthy + "/signals.csv?to=abc", "to"},
		{"/api/devices/" + devHealthy + "/signals.gpx?kind=bogus", "kind"},
	} {
		body := get(t, ts.URL, c.path, "", 400, nil)
		if !strings.Contains(string(body), c.word) {
			t.Errorf("%s: %s does not name %s", c.path, body, c.word)
		}
	}
}

// bulkSignals inserts n signals of one device, one a second from base,
// in one statement (the export tests need volume, not the ingest path).
func bulkSignals(tb testing.TB, st *store.Store, device string, base time.Time, n int) {
	tb.Helper()
	_, err := st.Pool().Exec(context.Background(), `INSERT INTO signals (device_id, ts, recv, lat, lon, alt, speed, heading, sats, hdop, valid,
			rpm, coolant, voltage, odometer, attrs, protocol, path, record_hash, decoder_version)
		SELECT $1, $2::timestamptz + i * interval '1 second', $2::timestamptz + i * interval '1 second' + interval '2 seconds',
			54.68 + i * 1e-6, 25.28 + (i % 1000) * 1e-6, 112.5, 40 + i % 50, i % 360, 9, 0.9, true,
			1800 + i % 700, 88.5, 13.9, 120000 + i * 0.01, jsonb_build_object('io239', 1, 'ignition', true), 'teltonika', 'direct', i, 'builtin:test'
		FROM generate_series(1, $3::int) AS i`, device, base, n)
	if err != nil {
		tb.Fatal(err)
	}
}

// exportHeap exports path from a server over st, reading the body to the
// end, and returns the bytes exported and the peak heap in use while it
// ran (runtime.MemStats.HeapAlloc sampled every 2 ms, over the baseline
// before the request).
func exportHeap(tb testing.TB, st *store.Store, path string) (bytes int64, peak uint64) {
	tb.Helper()
	s, err := New(Options{Address: "127.0.0.1:0"}, Deps{DB: st.Pool(), Unavailable: store.Unreachable}, hclog.NewNullLogger())
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var max atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > base && m.HeapAlloc-base > max.Load() {
				max.Store(m.HeapAlloc - base)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		tb.Fatal(err)
	}
	bytes, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	close(done)
	wg.Wait()
	if err != nil || resp.StatusCode != 200 {
		tb.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
	}
	return bytes, max.Load()
}

// TestIntegrationExportFlatMemory exports 10 k and 100 k signals in each
// format: the export grows tenfold, the peak heap must not.
func TestIntegrationExportFlatMemory(t *testing.T) {
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
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const n = 100_000
	bulkSignals(t, st, "bulk-1", base, n)
	for _, format := range []string{"csv", "geojson", "gpx"} {
		small := fmt.Sprintf("/api/devices/bulk-1/signals.%s?from=%d&to=%d", format, base.Unix(), base.Add(n/10*time.Second).Unix())
		sb, sp := exportHeap(t, st, small)
		lb, lp := exportHeap(t, st, "/api/devices/bulk-1/signals."+format)
		t.Logf("%s: %d signals %.1f MB, peak heap %.2f MB; %d signals %.1f MB, peak heap %.2f MB",
			format, n/10, float64(sb)/1e6, float64(sp)/1e6, n, float64(lb)/1e6, float64(lp)/1e6)
		if lb < 9*sb || lb < 15e6 {
			t.Fatalf("%s: exports of %d and %d bytes", format, sb, lb)
		}
		// Flat: the large export's peak is bounded by a constant (pgx's
		// read buffers, the 64 KiB write buffer, the server), not by its
		// size: ten times the bytes may add at most a quarter of the extra
		// bytes to the peak (an export held in memory adds all of them;
		// what it does add is the GC's pacing over a longer run).
		if lp > 16<<20 || (lp > sp && lp-sp > uint64(lb-sb)/4) {
			t.Fatalf("%s: peak heap %d bytes for a %d-byte export (%d for %d bytes)", format, lp, lb, sp, sb)
		}
	}
}

// BenchmarkExport exports 1 M signals (100 k with -short) in each format
// and reports the peak heap in use during the export against its size.
// make bench-export runs it.
func BenchmarkExport(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Database(b), store.Options{MaxConns: 4})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	if _, err := st.MigrateAll(ctx); err != nil {
		b.Fatal(err)
	}
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	bulkSignals(b, st, "bulk-1", base, n)
	for _, sz := range []int{n / 10, n} {
		for _, format := range []string{"csv", "geojson", "gpx"} {
			path := fmt.Sprintf("/api/devices/bulk-1/signals.%s?from=%d&to=%d", format, base.Unix(), base.Add(time.Duration(sz+1)*time.Second).Unix())
			b.Run(fmt.Sprintf("%s/signals=%d", format, sz), func(b *testing.B) {
				var bytes int64
				var peak uint64
				for i := 0; i < b.N; i++ {
					by, p := exportHeap(b, st, path)
					bytes += by
					peak = max(peak, p)
				}
				b.SetBytes(bytes / int64(b.N))
				b.ReportMetric(float64(bytes/int64(b.N))/1e6, "export_MB")
				b.ReportMetric(float64(peak)/1e6, "peak_heap_MB")
			})
		}
	}
}
