package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bounds of GET /api/positions: the map asks for the whole fleet, so a
// page holds more than the default listing.
const (
	defaultPositionsLimit = 1000
	maxPositionsLimit     = 10000
)

// Position is one device's latest fix in GET /api/positions.
type Position struct {
	DeviceID   string     `json:"device_id"`
	Protocol   string     `json:"protocol"`
	TS         time.Time  `json:"ts"` // device time of the fix
	Lat        float64    `json:"lat"`
	Lon        float64    `json:"lon"`
	Speed      *float64   `json:"speed_kmh"`
	Heading    *float64   `json:"heading"`
	Valid      *bool      `json:"valid"`
	Score      *Centi     `json:"score"`     // the current integrity score; null when not scored yet
	LastSeen   *time.Time `json:"last_seen"` // server time of the device's newest record
	AgeSeconds *int64     `json:"age_seconds"`
}

// bbox is a bounding box; MinLon > MaxLon means it crosses the
// antimeridian.
type bbox struct{ MinLon, MinLat, MaxLon, MaxLat float64 }

func parseBBox(v string) (*bbox, error) {
	if v == "" {
		return nil, nil
	}
	bad := badRequest{"bbox must be minLon,minLat,maxLon,maxLat in degrees (longitudes −180…180, latitudes −90…90, minLat ≤ maxLat)"}
	parts := strings.Split(v, ",")
	if len(parts) != 4 {
		return nil, bad
	}
	var f [4]float64
	for i, p := range parts {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, bad
		}
		f[i] = x
	}
	b := &bbox{f[0], f[1], f[2], f[3]}
	if b.MinLon < -180 || b.MinLon > 180 || b.MaxLon < -180 || b.MaxLon > 180 ||
		b.MinLat < -90 || b.MinLat > 90 || b.MaxLat < -90 || b.MaxLat > 90 || b.MinLat > b.MaxLat {
		return nil, bad
	}
	return b, nil
}

// intParam reads an optional integer parameter within [min, max].
func intParam(q map[string][]string, name string, def, min, max int) (int, error) {
	vs := q[name]
	if len(vs) == 0 || vs[0] == "" {
		return def, nil
	}
	n, err := strconv.Atoi(vs[0])
	if err != nil || n < min || n > max {
		return 0, badf("%s must be an integer between %d and %d", name, min, max)
	}
	return n, nil
}

// positionsSQL walks the distinct device ids of signals with a recursive
// skip scan over signals_device_ts_idx (one index probe per device, not a
// scan of every row), and takes each device's newest record with a
// position and its newest record of any kind (for last_seen).
const positionsSQL = `WITH RECURSIVE ids AS (
		(SELECT device_id FROM signals WHERE device_id > $1::text ORDER BY device_id LIMIT 1)
		UNION ALL
		SELECT (SELECT s.device_id FROM signals s WHERE s.device_id > ids.device_id ORDER BY s.device_id LIMIT 1)
		FROM ids WHERE ids.device_id IS NOT NULL)
	SELECT ids.device_id, p.protocol, p.ts, p.lat, p.lon, p.speed, p.heading, p.valid, d.score,
		greatest(d.last_recv, n.recv, p.recv)
	FROM ids
	CROSS JOIN LATERAL (SELECT protocol, ts, recv, lat, lon, speed, heading, valid FROM signals s
		WHERE s.device_id = ids.device_id AND s.lat IS NOT NULL AND s.lon IS NOT NULL
			AND s.lat <> 'NaN' AND s.lon <> 'NaN' ORDER BY s.ts DESC, s.id DESC LIMIT 1) p
	CROSS JOIN LATERAL (SELECT recv FROM signals s WHERE s.device_id = ids.device_id ORDER BY s.ts DESC LIMIT 1) n
	LEFT JOIN device_scores d ON d.device_id = ids.device_id
	WHERE ids.device_id IS NOT NULL
		AND ($2::text = '' OR strpos(lower(ids.device_id), lower($2::text)) > 0)
		AND ($3::text = '' OR p.protocol = $3::text)
		AND (NOT $4::bool OR (p.lat BETWEEN $5::float8 AND $7::float8 AND
			CASE WHEN $6::float8 <= $8::float8 THEN p.lon BETWEEN $6::float8 AND $8::float8
			ELSE p.lon >= $6::float8 OR p.lon <= $8::float8 END))
	ORDER BY ids.device_id LIMIT $9`

// positions is GET /api/positions: the latest fix of every device that
// sent one, with its current score, in device id order.
func (s *Server) positions(w http.ResponseWriter, r *http.Request) {
	q, err := params(r, "bbox", "q", "protocol", "limit", "cursor")
	if err != nil {
		s.fail(w, err)
		return
	}
	box, err := parseBBox(q.Get("bbox"))
	if err != nil {
		s.fail(w, err)
		return
	}
	limit, err := intParam(q, "limit", defaultPositionsLimit, 1, maxPositionsLimit)
	if err != nil {
		s.fail(w, err)
		return
	}
	cur, err := decodeCursor(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	after := ""
	if cur != nil {
		if cur.Sort != "positions" || cur.ID == "" {
			s.fail(w, errBadCursor)
			return
		}
		after = cur.ID
	}
	list, err := s.queryPositions(r.Context(), after, q.Get("q"), q.Get("protocol"), box, limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	var next *string
	if len(list) == limit {
		c := cursor{Sort: "positions", ID: list[len(list)-1].DeviceID}.encode()
		next = &c
	}
	writeJSON(w, http.StatusOK, map[string]any{"positions": list, "next_cursor": next})
}

func (s *Server) queryPositions(ctx context.Context, after, search, protocol string, box *bbox, limit int) ([]Position, error) {
	b := bbox{}
	if box != nil {
		b = *box
	}
	rows, err := s.deps.DB.Query(ctx, positionsSQL, after, search, protocol, box != nil, b.MinLat, b.MinLon, b.MaxLat, b.MaxLon, limit)
	if err != nil {
		return nil, fmt.Errorf("listing positions: %w", err)
	}
	defer rows.Close()
	now := time.Now()
	out := []Position{}
	for rows.Next() {
		var p Position
		var score *int64
		if err := rows.Scan(&p.DeviceID, &p.Protocol, &p.TS, &p.Lat, &p.Lon, &p.Speed, &p.Heading, &p.Valid, &score, &p.LastSeen); err != nil {
			return nil, fmt.Errorf("listing positions: %w", err)
		}
		p.TS, p.LastSeen = p.TS.UTC(), utcPtr(p.LastSeen)
		p.Speed, p.Heading = finite(p.Speed), finite(p.Heading)
		if score != nil {
			c := Centi(*score)
			p.Score = &c
		}
		if p.LastSeen != nil {
			age := int64(now.Sub(*p.LastSeen).Seconds())
			p.AgeSeconds = &age
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing positions: %w", err)
	}
	return out, nil
}

// finite drops NaN and infinities (JSON has no such numbers).
func finite(p *float64) *float64 {
	if p == nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
		return nil
	}
	return p
}

// errUnknownDevice: no signal and no score for the device.
var errUnknownDevice = errors.New("unknown device")

// knownDevice says whether any signal or score names the device.
func (s *Server) knownDevice(ctx context.Context, id string) error {
	var known bool
	err := s.deps.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM device_scores WHERE device_id = $1)
		OR EXISTS (SELECT 1 FROM signals WHERE device_id = $1)`, id).Scan(&known)
	if err != nil {
		return fmt.Errorf("looking up device: %w", err)
	}
	if !known {
		return errUnknownDevice
	}
	return nil
}

// deviceOr404 answers 404 (or the lookup's error) and returns false
// when the device is unknown.
func (s *Server) deviceOr404(w http.ResponseWriter, r *http.Request, id string) bool {
	err := s.knownDevice(r.Context(), id)
	if errors.Is(err, errUnknownDevice) {
		writeError(w, http.StatusNotFound, "unknown device "+id+" (no signal and no score)")
		return false
	}
	if err != nil {
		s.fail(w, err)
		return false
	}
	return true
}

// newestTS is the device time of a device's newest record (zero when it
// has none).
func (s *Server) newestTS(ctx context.Context, id string) (time.Time, error) {
	var t time.Time
	err := s.deps.DB.QueryRow(ctx, `SELECT ts FROM signals WHERE device_id = $1 ORDER BY ts DESC LIMIT 1`, id).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("finding the newest record: %w", err)
	}
	return t.UTC(), nil
}
