package api

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/core/health"
)

//go:embed templates/*.html
var templateFS embed.FS

var dashboardTmpl = template.Must(template.New("dashboard.html").Funcs(template.FuncMap{
	"score":      func(c int64) string { return Centi(c).String() },
	"delta":      func(c int64) string { return "−" + Centi(-c).String() },
	"scoreClass": scoreClass,
	"ago":        ago,
	"utc":        func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
	"statusClass": func(s string) string {
		switch s {
		case health.StatusOK, "active":
			return "good"
		case health.StatusWarn:
			return "warn"
		}
		return "bad"
	},
}).ParseFS(templateFS, "templates/dashboard.html"))

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
	Score     int64
	LastSeen  *time.Time
	Reasons   []string
	Alerts    []string
	Spark     template.HTML
	Trend     string // "↑", "↓" or ""
	Windows   int
	LastScore string
}

type dashboard struct {
	Node       string
	Generated  time.Time
	Devices    []dashDevice
	Total      int
	Below      int
	Median     int64
	OpenAlerts []Alert
	Rules      []RuleRow
	Checks     []health.CheckResult
	Jobs       []jobJSON
	Ingest     []kv
	EnterBelow int64
	Error      string
}

type kv struct{ Key, Value string }

const dashboardDevices = 200

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	d := dashboard{Node: s.deps.NodeID, Generated: time.Now().UTC(), EnterBelow: s.enterBelow()}
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
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
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

func (s *Server) loadDashboard(ctx context.Context, d *dashboard) error {
	pool := s.deps.DB
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE score < $1),
		coalesce(percentile_disc(0.5) WITHIN GROUP (ORDER BY score), 10000) FROM device_scores`, d.EnterBelow*100).
		Scan(&d.Total, &d.Below, &d.Median); err != nil {
		return fmt.Errorf("summarising scores: %w", err)
	}
	rows, err := pool.Query(ctx, `SELECT device_id, score, last_recv, losses, windows FROM device_scores
		ORDER BY score, device_id LIMIT $1`, dashboardDevices)
	if err != nil {
		return fmt.Errorf("listing devices: %w", err)
	}
	idx := map[string]int{}
	var ids []string
	for rows.Next() {
		var x dashDevice
		var losses []byte
		if err := rows.Scan(&x.DeviceID, &x.Score, &x.LastSeen, &losses, &x.Windows); err != nil {
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
	d.OpenAlerts, err = s.queryAlerts(ctx, "open", "", "", 200, 0)
	if err != nil {
		return err
	}
	for _, a := range d.OpenAlerts {
		if i, ok := idx[a.DeviceID]; ok {
			d.Devices[i].Alerts = append(d.Devices[i].Alerts, a.Kind)
		}
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
