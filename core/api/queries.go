package api

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/signal"
)

// Centi renders a score in hundredths as a JSON number with two decimals.
type Centi int64

// String is 87.35 for 8735 (as integrity.FormatCenti writes it in alert
// reasons).
func (c Centi) String() string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

// MarshalJSON writes 87.35 for 8735.
func (c Centi) MarshalJSON() ([]byte, error) { return []byte(c.String()), nil }

// storedDimension is one element of device_scores.dimensions, as the
// scorer writes it (integrity.DimensionScore).
type storedDimension struct {
	Dimension string `json:"dimension"`
	Weight    int64  `json:"weight"`
	RateBP    int64  `json:"rate_bp"`
	LostCenti int64  `json:"lost_centi"`
	Evaluated int64  `json:"evaluated"`
}

// storedLoss is one element of device_scores.losses, as the scorer
// writes it (integrity.Loss).
type storedLoss struct {
	Dimension  string    `json:"dimension"`
	Check      string    `json:"check"`
	Version    string    `json:"version"`
	LostCenti  int64     `json:"lost_centi"`
	Failed     int64     `json:"failed"`
	Warned     int64     `json:"warned"`
	Applicable int64     `json:"applicable"`
	Since      time.Time `json:"since"`
	Reason     string    `json:"reason"`
}

// UnmarshalJSON reads 87.35 as 8735.
func (c *Centi) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("decoding score: %w", err)
	}
	*c = Centi(math.Round(f * 100))
	return nil
}

// DeviceSummary is one row of /api/devices.
type DeviceSummary struct {
	DeviceID   string     `json:"device_id"`
	Score      Centi      `json:"score"`
	LastSeen   *time.Time `json:"last_seen"` // server time of the newest record
	LastTS     *time.Time `json:"last_ts"`   // device time of the newest record
	Windows    int        `json:"windows"`
	OpenAlerts int        `json:"open_alerts"`
	Reason     string     `json:"reason,omitempty"` // the largest loss
}

var deviceSorts = map[string]struct{ expr, cast string }{
	"score":     {"d.score", "int"},
	"device_id": {"d.device_id", "text"},
	"last_seen": {"coalesce(d.last_recv, 'epoch'::timestamptz)", "timestamptz"},
}

// listDevices returns a page of devices sorted by sort (a key of
// deviceSorts, "-" prefix for descending), and the cursor of the next page.
func (s *Server) listDevices(ctx context.Context, sortBy string, limit, offset int, cur *cursor) ([]DeviceSummary, string, int, error) {
	desc := strings.HasPrefix(sortBy, "-")
	key := strings.TrimPrefix(sortBy, "-")
	sk, ok := deviceSorts[key]
	if !ok {
		return nil, "", 0, badRequest{"sort must be one of score, -score, device_id, -device_id, last_seen, -last_seen"}
	}
	dir, cmp := "ASC", ">"
	if desc {
		dir, cmp = "DESC", "<"
	}
	args := []any{limit, offset}
	where := ""
	if cur != nil {
		if cur.Sort != sortBy {
			return nil, "", 0, badRequest{"cursor belongs to another sort order"}
		}
		var v any
		switch key {
		case "score":
			n, err := strconv.ParseInt(cur.Value, 10, 32)
			if err != nil {
				return nil, "", 0, errBadCursor
			}
			v = n
		case "last_seen":
			t, err := cursorTime(cur.Value)
			if err != nil {
				return nil, "", 0, err
			}
			v = t
		}
		if key == "device_id" {
			where = "WHERE d.device_id " + cmp + " $3"
			args = append(args, cur.ID)
		} else {
			where = fmt.Sprintf("WHERE (%s, d.device_id) %s ($3::%s, $4)", sk.expr, cmp, sk.cast)
			args = append(args, v, cur.ID)
		}
	}
	q := fmt.Sprintf(`SELECT d.device_id, d.score, d.last_recv, d.last_ts, d.windows,
		(SELECT count(*) FROM alerts a WHERE a.device_id = d.device_id AND a.state = 'open'),
		coalesce(d.losses->0->>'reason', ''), %s::text
		FROM device_scores d %s ORDER BY %s %s, d.device_id %s LIMIT $1 OFFSET $2`, sk.expr, where, sk.expr, dir, dir)
	rows, err := s.deps.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, "", 0, fmt.Errorf("listing devices: %w", err)
	}
	defer rows.Close()
	var out []DeviceSummary
	var lastKey string
	for rows.Next() {
		var d DeviceSummary
		var score int64
		if err := rows.Scan(&d.DeviceID, &score, &d.LastSeen, &d.LastTS, &d.Windows, &d.OpenAlerts, &d.Reason, &lastKey); err != nil {
			return nil, "", 0, fmt.Errorf("listing devices: %w", err)
		}
		d.Score = Centi(score)
		d.LastSeen, d.LastTS = utcPtr(d.LastSeen), utcPtr(d.LastTS)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, "", 0, fmt.Errorf("listing devices: %w", err)
	}
	var total int
	if err := s.deps.DB.QueryRow(ctx, `SELECT count(*) FROM device_scores`).Scan(&total); err != nil {
		return nil, "", 0, fmt.Errorf("counting devices: %w", err)
	}
	next := ""
	if len(out) == limit {
		last := out[len(out)-1]
		if key == "last_seen" {
			lastKey = time.Unix(0, 0).UTC().Format(time.RFC3339Nano)
			if last.LastSeen != nil {
				lastKey = last.LastSeen.Format(time.RFC3339Nano)
			}
		}
		next = cursor{Sort: sortBy, Value: lastKey, ID: last.DeviceID}.encode()
	}
	return out, next, total, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (s *Server) devices(w http.ResponseWriter, r *http.Request) {
	q, err := params(r, "sort", "limit", "offset", "cursor")
	if err != nil {
		s.fail(w, err)
		return
	}
	limit, offset, err := limitOffset(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	cur, err := decodeCursor(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	sortBy := q.Get("sort")
	if sortBy == "" {
		sortBy = "score"
	}
	list, next, total, err := s.listDevices(r.Context(), sortBy, limit, offset, cur)
	if err != nil {
		s.fail(w, err)
		return
	}
	body := map[string]any{"devices": nonNil(list), "total": total, "sort": sortBy, "limit": limit, "offset": offset}
	if next != "" {
		body["next_cursor"] = next
	}
	writeJSON(w, http.StatusOK, body)
}

// Dimension is a dimension of a device's score.
type Dimension struct {
	Dimension string `json:"dimension"`
	Weight    int64  `json:"weight"`
	Rate      Centi  `json:"pass_rate"` // percent
	Lost      Centi  `json:"points_lost"`
	Evaluated int64  `json:"evaluated"`
}

// Reason is points lost to one check.
type Reason struct {
	Dimension  string    `json:"dimension"`
	Check      string    `json:"check"`
	Version    string    `json:"version"`
	Lost       Centi     `json:"points_lost"`
	Failed     int64     `json:"failed"`
	Warned     int64     `json:"warned"`
	Applicable int64     `json:"applicable"`
	Since      time.Time `json:"since"`
	Text       string    `json:"text"`
}

// HistoryPoint is the score as of one hour.
type HistoryPoint struct {
	Hour  time.Time `json:"hour"`
	Score Centi     `json:"score"`
}

// Alert is one alert.
type Alert struct {
	ID          int64      `json:"id"`
	DeviceID    string     `json:"device_id"`
	Kind        string     `json:"kind"`
	State       string     `json:"state"`
	Opened      time.Time  `json:"opened"`
	Cleared     *time.Time `json:"cleared,omitempty"`
	Since       *time.Time `json:"since,omitempty"`
	Reason      string     `json:"reason"`
	ClearReason string     `json:"clear_reason,omitempty"`
}

// DeviceDetail is /api/devices/{id}.
type DeviceDetail struct {
	DeviceID      string         `json:"device_id"`
	Score         Centi          `json:"score"`
	LastSeen      *time.Time     `json:"last_seen"`
	LastTS        *time.Time     `json:"last_ts"`
	Windows       int            `json:"windows"`
	IntervalMS    int64          `json:"interval_ms"`
	ClockOffsetMS int64          `json:"clock_offset_ms"`
	Computed      time.Time      `json:"computed"`
	Dimensions    []Dimension    `json:"dimensions"`
	Reasons       []Reason       `json:"reasons"`
	History       []HistoryPoint `json:"history"`
	OpenAlerts    []Alert        `json:"open_alerts"`
}

var errNotFound = errors.New("not found")

func (s *Server) loadDevice(ctx context.Context, id string) (*DeviceDetail, error) {
	d := &DeviceDetail{DeviceID: id}
	var score int64
	var dims, losses []byte
	err := s.deps.DB.QueryRow(ctx, `SELECT score, dimensions, losses, windows, last_ts, last_recv, interval_ms,
		clock_offset_ms, computed FROM device_scores WHERE device_id = $1`, id).
		Scan(&score, &dims, &losses, &d.Windows, &d.LastTS, &d.LastSeen, &d.IntervalMS, &d.ClockOffsetMS, &d.Computed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("loading device: %w", err)
	}
	d.Score, d.LastTS, d.LastSeen, d.Computed = Centi(score), utcPtr(d.LastTS), utcPtr(d.LastSeen), d.Computed.UTC()
	var ds []storedDimension
	var ls []storedLoss
	if err := json.Unmarshal(dims, &ds); err != nil {
		return nil, fmt.Errorf("decoding dimensions: %w", err)
	}
	if err := json.Unmarshal(losses, &ls); err != nil {
		return nil, fmt.Errorf("decoding losses: %w", err)
	}
	for _, x := range ds {
		d.Dimensions = append(d.Dimensions, Dimension{Dimension: x.Dimension, Weight: x.Weight, Rate: Centi(x.RateBP), Lost: Centi(x.LostCenti), Evaluated: x.Evaluated})
	}
	for _, l := range ls {
		d.Reasons = append(d.Reasons, Reason{Dimension: l.Dimension, Check: l.Check, Version: l.Version, Lost: Centi(l.LostCenti),
			Failed: l.Failed, Warned: l.Warned, Applicable: l.Applicable, Since: l.Since.UTC(), Text: l.Reason})
	}
	d.Reasons = nonNil(d.Reasons)
	rows, err := s.deps.DB.Query(ctx, `SELECT hour, score FROM (SELECT hour, score FROM score_history
		WHERE device_id = $1 ORDER BY hour DESC LIMIT 48) h ORDER BY hour`, id)
	if err != nil {
		return nil, fmt.Errorf("loading score history: %w", err)
	}
	for rows.Next() {
		var p HistoryPoint
		var sc int64
		if err := rows.Scan(&p.Hour, &sc); err != nil {
			rows.Close()
			return nil, fmt.Errorf("loading score history: %w", err)
		}
		p.Hour, p.Score = p.Hour.UTC(), Centi(sc)
		d.History = append(d.History, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading score history: %w", err)
	}
	d.History = nonNil(d.History)
	d.OpenAlerts, err = s.queryAlerts(ctx, "open", id, "", 100, 0)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (s *Server) device(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		_, err = params(r)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	d, err := s.loadDevice(r.Context(), id)
	if errors.Is(err, errNotFound) {
		writeError(w, http.StatusNotFound, "no score for device "+id+" (unknown device, or not scored yet)")
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) queryAlerts(ctx context.Context, state, device, kind string, limit, offset int) ([]Alert, error) {
	rows, err := s.deps.DB.Query(ctx, `SELECT id, device_id, kind, state, opened, cleared, since, reason, coalesce(clear_reason, '')
		FROM alerts WHERE ($1 = '' OR state = $1) AND ($2 = '' OR device_id = $2) AND ($3 = '' OR kind = $3)
		ORDER BY opened DESC, id DESC LIMIT $4 OFFSET $5`, state, device, kind, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("listing alerts: %w", err)
	}
	defer rows.Close()
	out := []Alert{}
	for rows.Next() {
		var a Alert
		if err := rows.Scan(&a.ID, &a.DeviceID, &a.Kind, &a.State, &a.Opened, &a.Cleared, &a.Since, &a.Reason, &a.ClearReason); err != nil {
			return nil, fmt.Errorf("listing alerts: %w", err)
		}
		a.Opened, a.Cleared, a.Since = a.Opened.UTC(), utcPtr(a.Cleared), utcPtr(a.Since)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing alerts: %w", err)
	}
	return out, nil
}

// AlertKinds are the alert kinds core/integrity opens (its Kind…
// constants; TestAlertKinds keeps the two lists equal).
var AlertKinds = []string{"clock_drift", "decoder_disabled", "duplicate_storm", "gps_broken", "record_refused",
	"reporting_gap", "rule_disabled", "score_low", "teleport"}

// checkAlertKind refuses a kind filter that names no alert kind: one of
// AlertKinds, or a kind some stored alert has (an older or newer version's).
func (s *Server) checkAlertKind(ctx context.Context, kind string) error {
	if kind == "" || slices.Contains(AlertKinds, kind) {
		return nil
	}
	var stored bool
	if err := s.deps.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM alerts WHERE kind = $1)`, kind).Scan(&stored); err != nil {
		return fmt.Errorf("checking alert kind: %w", err)
	}
	if !stored {
		return badf("kind %q is not an alert kind: one of %s", clip(kind), strings.Join(AlertKinds, ", "))
	}
	return nil
}

func (s *Server) alerts(w http.ResponseWriter, r *http.Request) {
	q, err := params(r, "state", "device", "kind", "limit", "offset")
	if err != nil {
		s.fail(w, err)
		return
	}
	limit, offset, err := limitOffset(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	state := q.Get("state")
	if state != "" && state != "open" && state != "cleared" {
		s.fail(w, badRequest{"state must be open or cleared"})
		return
	}
	if err := s.checkAlertKind(r.Context(), q.Get("kind")); err != nil {
		s.fail(w, err)
		return
	}
	list, err := s.queryAlerts(r.Context(), state, q.Get("device"), q.Get("kind"), limit, offset)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": list, "limit": limit, "offset": offset})
}

// SignalJSON is a stored signal in canonical field names with its row id.
type SignalJSON struct {
	ID int64 `json:"id"`
	signal.JSON
}

func fl(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func (s *Server) signals(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	if _, err := params(r, "from", "to", "limit", "cursor"); err != nil {
		s.fail(w, err)
		return
	}
	limit, _, err := limitOffset(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	from, to, err := timeRange(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	cur, err := decodeCursor(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	if !s.deviceOr404(w, r, id) {
		return
	}
	args := []any{id, from, to, limit}
	where := ""
	if cur != nil {
		ct, err1 := cursorTime(cur.Value)
		cid, err2 := strconv.ParseInt(cur.ID, 10, 64)
		if err1 != nil || err2 != nil || cid < 1 || cur.Sort != "" {
			s.fail(w, errBadCursor)
			return
		}
		where = "AND (ts, id) > ($5, $6)"
		args = append(args, ct, cid)
	}
	rows, err := s.deps.DB.Query(r.Context(), `SELECT id, device_id, ts, recv, lat, lon, alt, speed, heading, sats, hdop, valid,
		rpm, coolant, fuel, voltage, odometer, engine_load, throttle, dtcs, attrs, protocol, path, coalesce(decoder_version, '')
		FROM signals WHERE device_id = $1 AND ts >= $2 AND ts < $3 `+where+` ORDER BY ts, id LIMIT $4`, args...)
	if err != nil {
		s.fail(w, fmt.Errorf("listing signals: %w", err))
		return
	}
	defer rows.Close()
	out := []SignalJSON{}
	for rows.Next() {
		var rid int64
		sig := signal.Signal{}
		var f [14]*float64
		var valid *bool
		var attrs map[string]any
		if err := rows.Scan(&rid, &sig.DeviceID, &sig.TS, &sig.Recv, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &valid,
			&f[7], &f[8], &f[9], &f[10], &f[11], &f[12], &f[13], &sig.DTCs, &attrs, &sig.Protocol, &sig.Path, &sig.DecoderVersion); err != nil {
			s.fail(w, fmt.Errorf("listing signals: %w", err))
			return
		}
		sig.Lat, sig.Lon, sig.Alt, sig.Speed, sig.Heading, sig.Sats, sig.HDOP = fl(f[0]), fl(f[1]), fl(f[2]), fl(f[3]), fl(f[4]), fl(f[5]), fl(f[6])
		sig.RPM, sig.Coolant, sig.Fuel, sig.Voltage, sig.Odometer, sig.EngineLoad, sig.Throttle = fl(f[7]), fl(f[8]), fl(f[9]), fl(f[10]), fl(f[11]), fl(f[12]), fl(f[13])
		if valid != nil {
			sig.Valid = signal.FlagOf(*valid)
		}
		sig.Attrs = attrs
		out = append(out, SignalJSON{ID: rid, JSON: sig.ToJSON()})
	}
	if err := rows.Err(); err != nil {
		s.fail(w, fmt.Errorf("listing signals: %w", err))
		return
	}
	body := map[string]any{"device_id": id, "signals": out, "limit": limit}
	if len(out) == limit {
		last := out[len(out)-1]
		body["next_cursor"] = cursor{Value: last.TS.Format(time.RFC3339Nano), ID: strconv.FormatInt(last.ID, 10)}.encode()
	}
	writeJSON(w, http.StatusOK, body)
}

// Finding is one rule verdict that was not a pass.
type Finding struct {
	ID          int64     `json:"id"`
	SignalID    int64     `json:"signal_id"`
	TS          time.Time `json:"ts"`
	Rule        string    `json:"rule"`
	RuleVersion string    `json:"rule_version"`
	Dimension   string    `json:"dimension"`
	Severity    string    `json:"severity"`
	Status      string    `json:"status"`
	Reason      int       `json:"reason"`
	ReasonText  string    `json:"reason_text"`
	Created     time.Time `json:"created"`
}

func (s *Server) findings(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	q, err := params(r, "from", "to", "rule", "limit", "offset")
	if err != nil {
		s.fail(w, err)
		return
	}
	limit, offset, err := limitOffset(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	from, to, err := timeRange(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	if !s.deviceOr404(w, r, id) {
		return
	}
	rule := q.Get("rule")
	rows, err := s.deps.DB.Query(r.Context(), `SELECT id, signal_id, ts, rule, rule_version, dimension, severity, status,
		reason, reason_text, created FROM findings WHERE device_id = $1 AND ts >= $2 AND ts < $3 AND ($4 = '' OR rule = $4)
		ORDER BY ts DESC, id DESC LIMIT $5 OFFSET $6`, id, from, to, rule, limit, offset)
	if err != nil {
		s.fail(w, fmt.Errorf("listing findings: %w", err))
		return
	}
	defer rows.Close()
	out := []Finding{}
	for rows.Next() {
		var f Finding
		if err := rows.Scan(&f.ID, &f.SignalID, &f.TS, &f.Rule, &f.RuleVersion, &f.Dimension, &f.Severity, &f.Status,
			&f.Reason, &f.ReasonText, &f.Created); err != nil {
			s.fail(w, fmt.Errorf("listing findings: %w", err))
			return
		}
		f.TS, f.Created = f.TS.UTC(), f.Created.UTC()
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		s.fail(w, fmt.Errorf("listing findings: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": id, "findings": out, "limit": limit, "offset": offset})
}

// maxRawListed is how many of a frame's raw bytes /api/rejected shows;
// /api/rejected/{id} has them all.
const maxRawListed = 4096

// Rejected is one quarantined frame.
type Rejected struct {
	ID         int64     `json:"id"`
	Recv       time.Time `json:"recv"`
	RemoteAddr string    `json:"remote_addr"`
	Listener   string    `json:"listener"`
	Protocol   string    `json:"protocol"`
	DeviceID   *string   `json:"device_id"`
	Reason     string    `json:"reason"`
	// Bytes is the size of the stored frame; RawHex holds all of it, or in
	// the listing its first maxRawListed bytes with RawTruncated set.
	// FrameBytes is the frame's length as received: larger than Bytes when
	// quarantine.max_raw_bytes kept only its start.
	Bytes        int    `json:"bytes"`
	FrameBytes   int    `json:"frame_bytes"`
	RawHex       string `json:"raw_hex"`
	RawTruncated bool   `json:"raw_truncated"`
}

const rejectedColumns = `id, recv, remote_addr, listener, protocol, device_id, reason`

func scanRejected(rows pgx.Rows) (Rejected, error) {
	var x Rejected
	var raw []byte
	if err := rows.Scan(&x.ID, &x.Recv, &x.RemoteAddr, &x.Listener, &x.Protocol, &x.DeviceID, &x.Reason, &raw, &x.Bytes, &x.FrameBytes); err != nil {
		return x, fmt.Errorf("listing rejected frames: %w", err)
	}
	x.Recv, x.RawHex, x.RawTruncated = x.Recv.UTC(), hex.EncodeToString(raw), len(raw) < x.Bytes
	return x, nil
}

// rejected streams the listing: each row is encoded as it is scanned, and
// Postgres sends at most maxRawListed raw bytes per row, so memory stays
// bounded whatever the frames' sizes.
func (s *Server) rejected(w http.ResponseWriter, r *http.Request) {
	q, err := params(r, "device", "protocol", "limit", "offset")
	if err != nil {
		s.fail(w, err)
		return
	}
	limit, offset, err := limitOffset(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	rows, err := s.deps.DB.Query(r.Context(), `SELECT `+rejectedColumns+`, substring(raw FROM 1 FOR $5), octet_length(raw), coalesce(raw_length, octet_length(raw))
		FROM rejected_frames WHERE ($1 = '' OR device_id = $1) AND ($2 = '' OR protocol = $2)
		ORDER BY id DESC LIMIT $3 OFFSET $4`, q.Get("device"), q.Get("protocol"), limit, offset, maxRawListed)
	if err != nil {
		s.fail(w, fmt.Errorf("listing rejected frames: %w", err))
		return
	}
	defer rows.Close()
	// The first row decides the status: a query that fails at once still
	// gets a proper error response.
	more := rows.Next()
	if !more && rows.Err() != nil {
		s.fail(w, fmt.Errorf("listing rejected frames: %w", rows.Err()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	io.WriteString(w, `{"rejected": [`) //nolint:errcheck // a gone client shows in the next write
	for n := 0; more; n++ {
		x, err := scanRejected(rows)
		if err != nil {
			s.abort(r, err)
		}
		if n > 0 {
			io.WriteString(w, ",") //nolint:errcheck
		}
		if err := enc.Encode(x); err != nil {
			return // the client went away
		}
		more = rows.Next()
	}
	if err := rows.Err(); err != nil {
		s.abort(r, fmt.Errorf("listing rejected frames: %w", err))
	}
	fmt.Fprintf(w, `], "limit": %d, "offset": %d}`+"\n", limit, offset)
}

// abort ends a response whose status is already sent: the error is logged
// and the connection is cut, so the client sees a truncated body rather
// than a short list that looks complete.
func (s *Server) abort(r *http.Request, err error) {
	s.log.Error("api response aborted", "method", r.Method, "path", r.URL.Path, "error", err)
	panic(http.ErrAbortHandler)
}

// rejectedOne is one quarantined frame with all its raw bytes.
func (s *Server) rejectedOne(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		s.fail(w, badRequest{"id must be a positive integer (the id of an /api/rejected row)"})
		return
	}
	rows, err := s.deps.DB.Query(r.Context(), `SELECT `+rejectedColumns+`, raw, octet_length(raw), coalesce(raw_length, octet_length(raw))
		FROM rejected_frames WHERE id = $1`, id)
	if err != nil {
		s.fail(w, fmt.Errorf("loading rejected frame: %w", err))
		return
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			s.fail(w, fmt.Errorf("loading rejected frame: %w", err))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no rejected frame %d", id))
		return
	}
	x, err := scanRejected(rows)
	if err != nil {
		s.fail(w, err)
		return
	}
	rows.Close()
	writeJSON(w, http.StatusOK, x)
}

// RuleRow is a rule with its health and counts.
type RuleRow struct {
	Name         string     `json:"name"`
	Version      string     `json:"version"`
	Dimension    string     `json:"dimension"`
	Severity     string     `json:"severity,omitempty"`
	State        string     `json:"state"` // active, failing, disabled, idle
	Evaluated    int64      `json:"evaluated"`
	Evaluated24h int64      `json:"evaluated_24h"`
	Passed24h    int64      `json:"passed_24h"`
	Warned24h    int64      `json:"warned_24h"`
	Failed24h    int64      `json:"failed_24h"`
	Errors       int64      `json:"errors"`
	Errors1h     int64      `json:"errors_1h"`
	LastError    string     `json:"last_error,omitempty"`
	LastRun      *time.Time `json:"last_run,omitempty"`
	// Shadow: the rule runs in shadow mode (rules.mode); its findings do
	// not count in scores or alerts.
	Shadow bool `json:"shadow"`
	// The dashboard's summary of GET /api/rules/{name}/shadow for a shadow
	// rule: devices whose score would move, and the largest drop.
	WouldMove  int   `json:"-"`
	WorstCenti int64 `json:"-"`
}

// ruleRows lists rules from the database (watermarks, hourly statistics of
// the last 24 hours of device time, errors), merged with the rule host's
// view when one is wired.
func (s *Server) ruleRows(ctx context.Context) ([]RuleRow, error) {
	rows, err := s.deps.DB.Query(ctx, `WITH
		st AS (SELECT rule, rule_version, max(dimension) AS dimension, sum(evaluated) AS ev, sum(passed) AS p,
			sum(warned) AS wn, sum(failed) AS f FROM rule_stats WHERE hour >= now() - interval '24 hours' GROUP BY 1, 2),
		er AS (SELECT rule, rule_version, count(*) AS n, count(*) FILTER (WHERE at > now() - interval '1 hour') AS recent,
			(array_agg(message ORDER BY at DESC))[1] AS last FROM rule_errors GROUP BY 1, 2),
		k AS (SELECT rule, rule_version FROM rule_watermarks UNION SELECT rule, rule_version FROM st
			UNION SELECT rule, rule_version FROM er)
		SELECT k.rule, k.rule_version, coalesce(st.dimension, ''), coalesce(wm.evaluated, st.ev, 0)::bigint,
			coalesce(st.ev, 0)::bigint, coalesce(st.p, 0)::bigint, coalesce(st.wn, 0)::bigint, coalesce(st.f, 0)::bigint,
			coalesce(er.n, 0), coalesce(er.recent, 0), coalesce(er.last, ''), wm.updated, coalesce(wm.shadow, false)
		FROM k LEFT JOIN st USING (rule, rule_version) LEFT JOIN er USING (rule, rule_version)
		LEFT JOIN rule_watermarks wm USING (rule, rule_version) ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("listing rules: %w", err)
	}
	defer rows.Close()
	var out []RuleRow
	idx := map[string]int{}
	for rows.Next() {
		var x RuleRow
		if err := rows.Scan(&x.Name, &x.Version, &x.Dimension, &x.Evaluated, &x.Evaluated24h, &x.Passed24h, &x.Warned24h,
			&x.Failed24h, &x.Errors, &x.Errors1h, &x.LastError, &x.LastRun, &x.Shadow); err != nil {
			return nil, fmt.Errorf("listing rules: %w", err)
		}
		x.LastRun = utcPtr(x.LastRun)
		x.State = "active"
		if x.Errors1h > 0 {
			x.State = "failing"
		}
		idx[x.Name+"@"+x.Version] = len(out)
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing rules: %w", err)
	}
	if s.deps.Rules != nil {
		// The rule host is the truth about which rules exist: a rule
		// version it no longer has (its file deleted, or replaced by a
		// new version) leaves the list, though its statistics stay.
		loaded := map[string]bool{}
		hostRules := s.deps.Rules.Rules()
		for _, rs := range hostRules {
			loaded[rs.Name+"@"+rs.Version] = true
		}
		kept := out[:0]
		for _, x := range out {
			if loaded[x.Name+"@"+x.Version] {
				kept = append(kept, x)
			}
		}
		out = kept
		clear(idx)
		for i, x := range out {
			idx[x.Name+"@"+x.Version] = i
		}
		for _, rs := range hostRules {
			i, ok := idx[rs.Name+"@"+rs.Version]
			if !ok {
				out = append(out, RuleRow{Name: rs.Name, Version: rs.Version, Dimension: rs.Dimension})
				i = len(out) - 1
			}
			x := &out[i]
			x.Severity, x.State = rs.Severity, rs.State
			if x.Dimension == "" {
				x.Dimension = rs.Dimension
			}
			if rs.LastError != "" {
				x.LastError = rs.LastError
			}
			if int64(rs.Errors) > x.Errors {
				x.Errors = int64(rs.Errors)
			}
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Name != out[j].Name {
				return out[i].Name < out[j].Name
			}
			return out[i].Version < out[j].Version
		})
	}
	return out, nil
}

func (s *Server) rules(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	list, err := s.ruleRows(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rules": nonNil(list)})
}

// ruleShadow is GET /api/rules/{name}/shadow: what the rule, in shadow
// mode, would change if it counted — the devices whose score would move,
// by how much (hundredths of a point), largest change first. Devices the
// rule judged without moving their score are listed with delta 0.
func (s *Server) ruleShadow(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	name := r.PathValue("name")
	if s.deps.Shadow == nil {
		writeError(w, http.StatusServiceUnavailable, "scoring is not running on this node")
		return
	}
	list, err := s.deps.Shadow.ShadowImpact(r.Context(), name)
	if err != nil {
		s.fail(w, err)
		return
	}
	moved := 0
	for _, d := range list {
		if d.DeltaCenti != 0 {
			moved++
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rule": name, "devices": list, "devices_moved": moved})
}
