package api

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strings"
	"time"
)

// deviceFindings and deviceRejected bound the device page's lists (the
// API pages through all of them).
const (
	deviceFindings = 100
	deviceRejected = 20
	// deviceOBDScan is how many of the newest records are searched for
	// the latest value of each OBD field.
	deviceOBDScan = 500
	// deviceRangeDefault is the track's time range when none is given:
	// this long before the device's newest record.
	deviceRangeDefault = 24 * time.Hour
)

// obdValue is the latest value of one OBD field and its device time.
type obdValue struct {
	Name, Value string
	TS          time.Time
}

type devicePageData struct {
	DeviceID   string
	Path       string // /devices/{escaped id}
	APIPath    string // /api/devices/{escaped id}
	Node       string
	Generated  time.Time
	Detail     *DeviceDetail // nil: not scored yet
	Protocol   string
	LastTS     *time.Time
	Signals    bool // the device has stored signals
	Chart      template.HTML
	Findings   []Finding
	Rejected   []Rejected
	OBD        []obdValue
	DTCs       []string
	DTCTime    *time.Time
	From, To   string // the track's range, as datetime-local values (UTC)
	RangeError string
	MapTiles   string
	MapCredit  string
	EnterBelow int64
}

// datetimeLocal is the layout of an <input type="datetime-local"> value,
// read and written as UTC.
const datetimeLocal = "2006-01-02T15:04"

// pageTime reads a time of the device page: RFC 3339, Unix seconds or a
// datetime-local value taken as UTC.
func pageTime(v string) (time.Time, error) {
	if t, err := time.Parse(datetimeLocal, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05", v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (YYYY-MM-DDTHH:MM in UTC, or RFC 3339)", v)
}

func (s *Server) devicePage(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		_, err = params(r, "from", "to")
	}
	if err != nil {
		s.htmlError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	d := devicePageData{DeviceID: id, Path: devicePath(id), APIPath: "/api" + devicePath(id), Node: s.deps.NodeID,
		Generated: time.Now().UTC(), MapTiles: s.opts.MapTiles, MapCredit: s.opts.MapAttribution, EnterBelow: s.enterBelow()}
	found, err := s.loadDevicePage(ctx, &d)
	if err != nil {
		s.log.Error("loading device page", "device", id, "error", err)
		s.htmlError(w, http.StatusServiceUnavailable, "database unavailable (details in the server log)")
		return
	}
	if !found {
		s.htmlError(w, http.StatusNotFound, "no device "+id+": it has no score, no stored signal and no rejected frame")
		return
	}
	// The track's range: from the query, else the day before the newest record.
	to := time.Now().UTC()
	if d.LastTS != nil {
		to = *d.LastTS
	}
	to = to.Truncate(time.Minute).Add(time.Minute)
	from := to.Add(-deviceRangeDefault)
	q := r.URL.Query()
	var bad []string
	if v := q.Get("to"); v != "" {
		if t, err := pageTime(v); err == nil {
			to = t
		} else {
			bad = append(bad, "to: "+err.Error())
		}
	}
	if v := q.Get("from"); v != "" {
		if t, err := pageTime(v); err == nil {
			from = t
		} else {
			bad = append(bad, "from: "+err.Error())
		}
	} else if q.Get("to") != "" {
		from = to.Add(-deviceRangeDefault)
	}
	if from.After(to) {
		bad = append(bad, "from is after to: swapped")
		from, to = to, from
	}
	d.RangeError = strings.Join(bad, "; ")
	d.From, d.To = from.Format(datetimeLocal), to.Format(datetimeLocal)
	s.pageHeaders(w)
	if err := dashboardTmpl.ExecuteTemplate(w, "device.html", d); err != nil {
		s.log.Error("rendering device page", "error", err)
	}
}

// htmlError answers a page request with a short HTML error.
func (s *Server) htmlError(w http.ResponseWriter, status int, msg string) {
	s.pageHeaders(w)
	w.WriteHeader(status)
	if err := dashboardTmpl.ExecuteTemplate(w, "error.html", map[string]any{"Status": status, "Text": http.StatusText(status), "Message": msg}); err != nil {
		s.log.Debug("rendering error page", "error", err)
	}
}

// loadDevicePage reads everything the device page shows but the track
// and the trips (the page's script fetches them for the chosen range).
// found is false when nothing at all is known of the device.
func (s *Server) loadDevicePage(ctx context.Context, d *devicePageData) (found bool, err error) {
	det, err := s.loadDevice(ctx, d.DeviceID)
	switch {
	case errors.Is(err, errNotFound):
	case err != nil:
		return false, err
	default:
		d.Detail = det
		d.Chart = scoreChart(det.History, d.EnterBelow*100)
	}
	if err := s.loadLatestOBD(ctx, d); err != nil {
		return false, err
	}
	rows, err := s.deps.DB.Query(ctx, `SELECT id, signal_id, ts, rule, rule_version, dimension, severity, status,
		reason, reason_text, created FROM findings WHERE device_id = $1 ORDER BY ts DESC, id DESC LIMIT $2`, d.DeviceID, deviceFindings)
	if err != nil {
		return false, fmt.Errorf("listing findings: %w", err)
	}
	for rows.Next() {
		var f Finding
		if err := rows.Scan(&f.ID, &f.SignalID, &f.TS, &f.Rule, &f.RuleVersion, &f.Dimension, &f.Severity, &f.Status,
			&f.Reason, &f.ReasonText, &f.Created); err != nil {
			rows.Close()
			return false, fmt.Errorf("listing findings: %w", err)
		}
		f.TS, f.Created = f.TS.UTC(), f.Created.UTC()
		d.Findings = append(d.Findings, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("listing findings: %w", err)
	}
	rows, err = s.deps.DB.Query(ctx, `SELECT `+rejectedColumns+`, substring(raw FROM 1 FOR 48), octet_length(raw), coalesce(raw_length, octet_length(raw))
		FROM rejected_frames WHERE device_id = $1 ORDER BY id DESC LIMIT $2`, d.DeviceID, deviceRejected)
	if err != nil {
		return false, fmt.Errorf("listing rejected frames: %w", err)
	}
	for rows.Next() {
		x, err := scanRejected(rows)
		if err != nil {
			rows.Close()
			return false, err
		}
		d.Rejected = append(d.Rejected, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("listing rejected frames: %w", err)
	}
	return d.Detail != nil || d.Signals || len(d.Rejected) > 0, nil
}

// loadLatestOBD finds, in the device's newest records, the latest value
// of each OBD field and the latest DTC list, and the protocol and device
// time of the newest record.
func (s *Server) loadLatestOBD(ctx context.Context, d *devicePageData) error {
	rows, err := s.deps.DB.Query(ctx, `SELECT ts, protocol, rpm, speed, coolant, fuel, voltage, odometer, engine_load, throttle, dtcs
		FROM signals WHERE device_id = $1 ORDER BY ts DESC LIMIT $2`, d.DeviceID, deviceOBDScan)
	if err != nil {
		return fmt.Errorf("loading the latest OBD values: %w", err)
	}
	defer rows.Close()
	fields := []struct{ name, unit, format string }{
		{"rpm", "rpm", "%.0f"}, {"speed", "km/h", "%.1f"}, {"coolant", "°C", "%.1f"}, {"fuel", "%", "%.1f"},
		{"voltage", "V", "%.2f"}, {"odometer", "km", "%.1f"}, {"engine load", "%", "%.1f"}, {"throttle", "%", "%.1f"},
	}
	latest := make([]*obdValue, len(fields))
	for rows.Next() {
		var ts time.Time
		var proto string
		var f [8]*float64
		var dtcs []string
		if err := rows.Scan(&ts, &proto, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &dtcs); err != nil {
			return fmt.Errorf("loading the latest OBD values: %w", err)
		}
		ts = ts.UTC()
		if !d.Signals {
			d.Signals, d.Protocol, d.LastTS = true, proto, &ts
		}
		for i, v := range f {
			if latest[i] == nil && v != nil && !math.IsNaN(*v) {
				latest[i] = &obdValue{Name: fields[i].name, Value: fmt.Sprintf(fields[i].format+" %s", *v, fields[i].unit), TS: ts}
			}
		}
		if d.DTCTime == nil && dtcs != nil {
			d.DTCs, d.DTCTime = dtcs, &ts
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("loading the latest OBD values: %w", err)
	}
	for _, v := range latest {
		if v != nil {
			d.OBD = append(d.OBD, *v)
		}
	}
	return nil
}

// scoreChart draws the hourly score history as an SVG line chart with the
// alert threshold, a 0–100 axis and the first and last hour.
func scoreChart(h []HistoryPoint, threshold int64) template.HTML {
	const w, ht, left, right, top, bottom = 640.0, 170.0, 34.0, 8.0, 8.0, 22.0
	if len(h) == 0 {
		return ""
	}
	pw, ph := w-left-right, ht-top-bottom
	y := func(c int64) float64 { return top + ph*(1-float64(c)/10000) }
	x := func(i int) float64 {
		if len(h) == 1 {
			return left + pw/2
		}
		return left + pw*float64(i)/float64(len(h)-1)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" width="100%%" viewBox="0 0 %.0f %.0f" role="img" aria-label="hourly score history">`, w, ht)
	for _, v := range []int64{0, 5000, 10000} {
		fmt.Fprintf(&b, `<line class="axis" x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f"/><text x="%.0f" y="%.1f" text-anchor="end">%d</text>`,
			left, w-right, y(v), y(v), left-4, y(v)+3, v/100)
	}
	fmt.Fprintf(&b, `<line class="thr" x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f"/>`, left, w-right, y(threshold), y(threshold))
	var pts []string
	for i, p := range h {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(int64(p.Score))))
	}
	if len(pts) > 1 {
		fmt.Fprintf(&b, `<polyline class="ln" points="%s"/>`, strings.Join(pts, " "))
	}
	for i, p := range h {
		fmt.Fprintf(&b, `<circle class="pt %s" cx="%.1f" cy="%.1f" r="3"><title>%s UTC: %s</title></circle>`,
			scoreClass(int64(p.Score)), x(i), y(int64(p.Score)), p.Hour.Format("2006-01-02 15:04"), p.Score)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s</text>`, left, ht-6, h[0].Hour.Format("01-02 15:04"))
	if len(h) > 1 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">%s UTC</text>`, w-right, ht-6, h[len(h)-1].Hour.Format("01-02 15:04"))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and fixed formats only
}
