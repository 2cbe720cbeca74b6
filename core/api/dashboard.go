package api

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetcore/fleetcore/core/health"
)

//go:embed templates/*.html
var templateFS embed.FS

var dashboardTmpl = template.Must(template.New("dashboard.html").Funcs(template.FuncMap{
	"score":         func(c int64) string { return Centi(c).String() },
	"delta":         func(c int64) string { return "−" + Centi(-c).String() },
	"scoreClass":    scoreClass,
	"ago":           ago,
	"utc":           func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
	"utcp":          func(t *time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
	"utcs":          func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"int64":         func(c Centi) int64 { return int64(c) },
	"obdScan":       func() int { return deviceOBDScan },
	"findingsShown": func() int { return deviceFindings },
	"device":        devicePath,
	"bands":         func() []string { return []string{"good", "warn", "bad"} },
	"bandName": func(b string) string {
		return map[string]string{"good": "90 and above", "warn": "60 to 90", "bad": "below 60"}[b]
	},
	"statusClass": func(s string) string {
		switch s {
		case health.StatusOK, "active":
			return "good"
		case health.StatusWarn:
			return "warn"
		}
		return "bad"
	},
}).ParseFS(templateFS, "templates/*.html"))

func scoreClass(c int64) string {
	switch {
	case c >= 9000:
		return "good"
	case c >= 6000:
		return "warn"
	}
	return "bad"
}

func ago(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	d := time.Since(*t)
	switch {
	case d < 0:
		return "in " + (-d).Truncate(time.Second).String()
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

type dashDevice struct {
	DeviceID  string
	Protocol  string
	Score     int64
	LastSeen  *time.Time
	Reasons   []string
	Alerts    []string
	Spark     template.HTML
	Trend     string // "↑", "↓" or ""
	Windows   int
	LastScore string
}

// fleetFilter is the fleet table's search, filters and page, read from
// the dashboard's query string.
type fleetFilter struct {
	Q        string // device id substring, case-insensitive
	Protocol string
	Band     string // good, warn, bad (scoreClass) or ""
	Alert    string // an open alert kind or ""
	Page     int    // 1-based
}

// query is the filter as a query string for page p (for the pager links).
func (f fleetFilter) query(p int) string {
	v := url.Values{}
	for k, x := range map[string]string{"q": f.Q, "protocol": f.Protocol, "band": f.Band, "alert": f.Alert} {
		if x != "" {
			v.Set(k, x)
		}
	}
	if p > 1 {
		v.Set("page", strconv.Itoa(p))
	}
	if len(v) == 0 {
		return "/dashboard"
	}
	return "/dashboard?" + v.Encode()
}

// Active reports whether any filter narrows the table.
func (f fleetFilter) Active() bool {
	return f.Q != "" || f.Protocol != "" || f.Band != "" || f.Alert != ""
}

type pageLink struct {
	N       int
	URL     string
	Current bool
	Gap     bool // an ellipsis between page numbers
}

type dashboard struct {
	Node       string
	Generated  time.Time
	Devices    []dashDevice
	Total      int
	Below      int
	Median     int64
	OpenAlerts []Alert
	AlertsOpen int // all open alerts; OpenAlerts holds at most dashboardAlerts
	Rules      []RuleRow
	Checks     []health.CheckResult
	Jobs       []jobJSON
	Ingest     []kv
	EnterBelow int64
	Error      string
	Notice     string // a filter value that was ignored
	Filter     fleetFilter
	Protocols  []string // for the protocol filter
	AlertKinds []string // open alert kinds, for the alert filter
	Matching   int      // devices that pass the filter
	First      int      // 1-based index of the first row shown
	Last       int
	Pages      []pageLink
	Prev, Next string
	MapTiles   string
	MapCredit  string
}

type kv struct{ Key, Value string }

const (
	// dashboardPageSize is the fleet table's rows per page.
	dashboardPageSize = 50
	// dashboardAlerts bounds the open alerts listed beside the table (the
	// count above it is of all).
	dashboardAlerts  = 50
	maxDashboardPage = 100_000
)

// readFleetFilter reads the dashboard's query string. A value that makes
// no sense is dropped with a notice rather than failing the page.
func readFleetFilter(r *http.Request) (fleetFilter, string) {
	q := r.URL.Query()
	f := fleetFilter{Page: 1}
	var bad []string
	text := func(name string) string {
		v := strings.TrimSpace(q.Get(name))
		if checkText(name, v, 256) != nil {
			bad = append(bad, name)
			return ""
		}
		return v
	}
	f.Q, f.Protocol, f.Alert = text("q"), text("protocol"), text("alert")
	switch b := q.Get("band"); b {
	case "", "good", "warn", "bad":
		f.Band = b
	default:
		bad = append(bad, "band")
	}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDashboardPage {
			bad = append(bad, "page")
		} else {
			f.Page = n
		}
	}
	if len(bad) > 0 {
		return f, "ignored a bad value of " + strings.Join(bad, ", ")
	}
	return f, ""
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	d := dashboard{Node: s.deps.NodeID, Generated: time.Now().UTC(), EnterBelow: s.enterBelow(),
		MapTiles: s.opts.MapTiles, MapCredit: s.opts.MapAttribution}
	d.Filter, d.Notice = readFleetFilter(r)
	if err := s.loadDashboard(ctx, &d); err != nil {
		s.log.Error("loading dashboard", "error", err)
		d.Error = "database unavailable (details in the server log)"
	}
	if s.deps.Health != nil {
		d.Checks = s.deps.Health.Results()
	}
	if s.deps.Jobs != nil {
		for _, j := range s.deps.Jobs.Jobs() {
			d.Jobs = append(d.Jobs, toJobJSON(j))
		}
	}
	for _, sm := range s.deps.Summaries {
		for _, l := range sm.Summary() {
			d.Ingest = append(d.Ingest, kv{l[0], l[1]})
		}
	}
	s.pageHeaders(w)
	if err := dashboardTmpl.Execute(w, d); err != nil {
		s.log.Error("rendering dashboard", "error", err)
	}
}

func (s *Server) enterBelow() int64 {
	if s.opts.EnterBelow > 0 {
		return int64(s.opts.EnterBelow)
	}
	return 60
}

// latestProtocol is the protocol of a device's newest signal (an index
// probe on signals_device_ts_idx).
const latestProtocol = `(SELECT s.protocol FROM signals s WHERE s.device_id = d.device_id ORDER BY s.ts DESC LIMIT 1)`

func (s *Server) loadDashboard(ctx context.Context, d *dashboard) error {
	pool := s.deps.DB
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE score < $1),
		coalesce(percentile_disc(0.5) WITHIN GROUP (ORDER BY score), 10000),
		(SELECT count(*) FROM alerts WHERE state = 'open') FROM device_scores`, d.EnterBelow*100).
		Scan(&d.Total, &d.Below, &d.Median, &d.AlertsOpen); err != nil {
		return fmt.Errorf("summarising scores: %w", err)
	}
	if err := s.loadFilterChoices(ctx, d); err != nil {
		return err
	}
	f := d.Filter
	rows, err := pool.Query(ctx, `SELECT d.device_id, d.score, d.last_recv, d.losses, d.windows,
		coalesce(`+latestProtocol+`, ''), count(*) OVER ()
		FROM device_scores d
		WHERE ($1 = '' OR strpos(lower(d.device_id), lower($1)) > 0)
		  AND ($2 = '' OR `+latestProtocol+` = $2)
		  AND ($3 = '' OR ($3 = 'good' AND d.score >= 9000) OR ($3 = 'warn' AND d.score >= 6000 AND d.score < 9000)
		       OR ($3 = 'bad' AND d.score < 6000))
		  AND ($4 = '' OR EXISTS (SELECT 1 FROM alerts a WHERE a.device_id = d.device_id AND a.state = 'open' AND a.kind = $4))
		ORDER BY d.score, d.device_id LIMIT $5 OFFSET $6`,
		f.Q, f.Protocol, f.Band, f.Alert, dashboardPageSize, (f.Page-1)*dashboardPageSize)
	if err != nil {
		return fmt.Errorf("listing devices: %w", err)
	}
	idx := map[string]int{}
	var ids []string
	for rows.Next() {
		var x dashDevice
		var losses []byte
		if err := rows.Scan(&x.DeviceID, &x.Score, &x.LastSeen, &losses, &x.Windows, &x.Protocol, &d.Matching); err != nil {
			rows.Close()
			return fmt.Errorf("listing devices: %w", err)
		}
		var ls []storedLoss
		json.Unmarshal(losses, &ls) //nolint:errcheck // written by the scorer; an empty list is the fallback
		for i, l := range ls {
			if i == 3 {
				x.Reasons = append(x.Reasons, fmt.Sprintf("… and %d more", len(ls)-3))
				break
			}
			x.Reasons = append(x.Reasons, l.Reason)
		}
		idx[x.DeviceID] = len(d.Devices)
		ids = append(ids, x.DeviceID)
		d.Devices = append(d.Devices, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing devices: %w", err)
	}
	if len(d.Devices) == 0 && f.Page > 1 {
		// Past the end (the fleet shrank, or an edited link): count only.
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM device_scores d
			WHERE ($1 = '' OR strpos(lower(d.device_id), lower($1)) > 0) AND ($2 = '' OR `+latestProtocol+` = $2)
			AND ($3 = '' OR ($3 = 'good' AND d.score >= 9000) OR ($3 = 'warn' AND d.score >= 6000 AND d.score < 9000) OR ($3 = 'bad' AND d.score < 6000))
			AND ($4 = '' OR EXISTS (SELECT 1 FROM alerts a WHERE a.device_id = d.device_id AND a.state = 'open' AND a.kind = $4))`,
			f.Q, f.Protocol, f.Band, f.Alert).Scan(&d.Matching); err != nil {
			return fmt.Errorf("counting devices: %w", err)
		}
	}
	d.paginate()
	hist := map[string][]int64{}
	rows, err = pool.Query(ctx, `SELECT device_id, score FROM (SELECT device_id, hour, score,
		row_number() OVER (PARTITION BY device_id ORDER BY hour DESC) AS rn FROM score_history WHERE device_id = ANY($1)) h
		WHERE rn <= 24 ORDER BY device_id, hour`, ids)
	if err != nil {
		return fmt.Errorf("loading score trends: %w", err)
	}
	for rows.Next() {
		var id string
		var sc int64
		if err := rows.Scan(&id, &sc); err != nil {
			rows.Close()
			return fmt.Errorf("loading score trends: %w", err)
		}
		hist[id] = append(hist[id], sc)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("loading score trends: %w", err)
	}
	for id, h := range hist {
		x := &d.Devices[idx[id]]
		x.Spark = sparkline(h, d.EnterBelow*100)
		if n := len(h); n >= 2 {
			switch {
			case h[n-1] > h[n-2]:
				x.Trend = "↑"
			case h[n-1] < h[n-2]:
				x.Trend = "↓"
			}
		}
	}
	// The open alerts of the devices on this page, whatever their number
	// fleet-wide.
	rows, err = pool.Query(ctx, `SELECT device_id, kind FROM alerts WHERE state = 'open' AND device_id = ANY($1)
		ORDER BY device_id, kind`, ids)
	if err != nil {
		return fmt.Errorf("listing alerts: %w", err)
	}
	for rows.Next() {
		var id, kind string
		if err := rows.Scan(&id, &kind); err != nil {
			rows.Close()
			return fmt.Errorf("listing alerts: %w", err)
		}
		if i, ok := idx[id]; ok {
			d.Devices[i].Alerts = append(d.Devices[i].Alerts, kind)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing alerts: %w", err)
	}
	d.OpenAlerts, err = s.queryAlerts(ctx, "open", "", "", dashboardAlerts, 0)
	if err != nil {
		return err
	}
	if d.Rules, err = s.ruleRows(ctx); err != nil || s.deps.Shadow == nil {
		return err
	}
	// What each shadow rule would change if it counted.
	for i := range d.Rules {
		r := &d.Rules[i]
		if !r.Shadow {
			continue
		}
		impact, err := s.deps.Shadow.ShadowImpact(ctx, r.Name)
		if err != nil {
			return err
		}
		for _, dev := range impact {
			if dev.DeltaCenti != 0 {
				r.WouldMove++
			}
			r.WorstCenti = min(r.WorstCenti, dev.DeltaCenti)
		}
	}
	return nil
}

// protocolsTTL is how long the protocol filter's choices are reused: they
// cost an index probe per scored device (~0.5 s for 10,000 devices), and
// a new protocol is rare.
const protocolsTTL = 5 * time.Minute

// uiCache holds the dashboard's slowly changing choices.
type uiCache struct {
	mu        sync.Mutex
	protocols []string
	at        time.Time
}

// loadFilterChoices lists the protocols (of each device's newest signal,
// cached for protocolsTTL) and the open alert kinds the filters offer.
func (s *Server) loadFilterChoices(ctx context.Context, d *dashboard) error {
	s.ui.mu.Lock()
	cached, fresh := s.ui.protocols, time.Since(s.ui.at) < protocolsTTL
	s.ui.mu.Unlock()
	queries := []struct {
		sql  string
		into *[]string
	}{{`SELECT DISTINCT kind FROM alerts WHERE state = 'open' ORDER BY kind`, &d.AlertKinds}}
	if fresh {
		d.Protocols = cached
	} else {
		queries = append(queries, struct {
			sql  string
			into *[]string
		}{`SELECT DISTINCT p FROM (SELECT ` + latestProtocol + ` AS p FROM device_scores d) x WHERE p IS NOT NULL ORDER BY p`, &d.Protocols})
	}
	for _, q := range queries {
		rows, err := s.deps.DB.Query(ctx, q.sql)
		if err != nil {
			return fmt.Errorf("listing filter choices: %w", err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return fmt.Errorf("listing filter choices: %w", err)
			}
			*q.into = append(*q.into, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("listing filter choices: %w", err)
		}
	}
	if !fresh {
		s.ui.mu.Lock()
		s.ui.protocols, s.ui.at = d.Protocols, time.Now()
		s.ui.mu.Unlock()
	}
	// The filtered protocol stays a choice even when the cache predates it.
	if f := d.Filter.Protocol; f != "" && !slices.Contains(d.Protocols, f) {
		d.Protocols = append(slices.Clone(d.Protocols), f)
	}
	return nil
}

// paginate fills the pager: the rows shown and links to the first, the
// last and the pages around the current one.
func (d *dashboard) paginate() {
	f := d.Filter
	pages := max(1, (d.Matching+dashboardPageSize-1)/dashboardPageSize)
	if len(d.Devices) > 0 {
		d.First = (f.Page-1)*dashboardPageSize + 1
		d.Last = d.First + len(d.Devices) - 1
	}
	if f.Page > 1 {
		d.Prev = f.query(min(f.Page-1, pages))
	}
	if f.Page < pages {
		d.Next = f.query(f.Page + 1)
	}
	if pages == 1 {
		return
	}
	prev := 0
	for p := 1; p <= pages; p++ {
		if p != 1 && p != pages && (p < f.Page-2 || p > f.Page+2) {
			continue
		}
		if prev != 0 && p > prev+1 {
			d.Pages = append(d.Pages, pageLink{Gap: true})
		}
		d.Pages = append(d.Pages, pageLink{N: p, URL: f.query(p), Current: p == f.Page})
		prev = p
	}
}

// devicePath is the device page of id.
func devicePath(id string) string { return "/devices/" + url.PathEscape(id) }

// sparkline draws scores (hundredths, oldest first) as an inline SVG with
// the alert threshold as a dashed line.
func sparkline(scores []int64, threshold int64) template.HTML {
	const w, h, pad = 160.0, 32.0, 3.0
	y := func(c int64) float64 { return pad + (h-2*pad)*(1-float64(c)/10000) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="score trend">`, w, h, w, h)
	fmt.Fprintf(&b, `<line x1="0" x2="%.0f" y1="%.1f" y2="%.1f" class="thr"/>`, w, y(threshold), y(threshold))
	if len(scores) == 1 {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" class="pt %s"/>`, w/2, y(scores[0]), scoreClass(scores[0]))
	} else {
		var pts []string
		for i, c := range scores {
			x := pad + (w-2*pad)*float64(i)/float64(len(scores)-1)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y(c)))
		}
		last := scores[len(scores)-1]
		fmt.Fprintf(&b, `<polyline points="%s" class="ln %s"/>`, strings.Join(pts, " "), scoreClass(last))
		lx := pad + (w - 2*pad)
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" class="pt %s"/>`, lx, y(last), scoreClass(last))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers only
}
