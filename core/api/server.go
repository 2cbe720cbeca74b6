package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/health"
	"github.com/fleetcore/fleetcore/core/metrics"
)

// RuleStatus is one quality rule as the rule host sees it.
type RuleStatus struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Dimension string `json:"dimension"`
	Severity  string `json:"severity,omitempty"`
	State     string `json:"state"` // active, disabled, failing
	Errors    uint64 `json:"errors"`
	LastError string `json:"last_error,omitempty"`
}

// RuleLister is the rule host: the rules it has loaded and their state.
type RuleLister interface {
	Rules() []RuleStatus
}

// ShadowReporter tells what a rule in shadow mode would change (the node
// adapts integrity.Scorer.ShadowImpact): per device, the score without and
// with the rule's stored shadow statistics, largest change first.
type ShadowReporter interface {
	ShadowImpact(ctx context.Context, rule string) ([]ShadowDevice, error)
}

// ShadowDevice is one device in GET /api/rules/{name}/shadow.
type ShadowDevice struct {
	DeviceID    string `json:"device_id"`
	BeforeCenti int64  `json:"score_before_centi"`
	AfterCenti  int64  `json:"score_after_centi"`
	DeltaCenti  int64  `json:"delta_centi"` // after − before; negative: the rule would cost points
	Applicable  int64  `json:"applicable"`  // signals the rule judged in the scored windows
	Warned      int64  `json:"warned"`
	Failed      int64  `json:"failed"`
}

// ReadyProbe is a path that can take traffic (Postgres, a failover tier).
// The node is ready when any probe succeeds.
type ReadyProbe struct {
	Name  string
	Check func(ctx context.Context) error
}

// Collector is a stage's metrics (see metrics.Collector).
type Collector = metrics.Collector

// CollectorFunc adapts a function to Collector.
type CollectorFunc = metrics.CollectorFunc

// MetricWriter is what a Collector writes to (see metrics.Writer).
type MetricWriter = metrics.Writer

// Querier is the database as the API reads it: pgx's query subset, which
// *pgxpool.Pool, *pgx.Conn and pgx.Tx all have.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// HealthReporter has the latest service checks (see health.Health).
type HealthReporter interface {
	Results() []health.CheckResult
}

// JobStatus is one organizer job as /api/health and the dashboard show it
// (the fields of organizer.JobStatus, so one converts to the other).
type JobStatus struct {
	Name        string
	Interval    time.Duration
	Runs        uint64
	Failures    uint64
	LastStart   time.Time
	LastSuccess time.Time
	LastError   string
	LastMillis  int64
	Running     bool
}

// JobLister lists the organizer's jobs.
type JobLister interface {
	Jobs() []JobStatus
}

// Summarizer is a stage's lines on the dashboard's ingest panel: key and
// value, in order (the batcher's counts and tiers, the gateway's
// connections and ack latency).
type Summarizer interface {
	Summary() [][2]string
}

// Deps are the parts of a node the API reads. Any may be nil except DB.
type Deps struct {
	// DB runs the API's queries.
	DB Querier
	// Unavailable reports whether a query error means the database is not
	// there (answered 503) rather than that it refused the query (500);
	// nil counts every Postgres answer as a refusal.
	Unavailable func(err error) bool
	// Records lists rejected_records (GET /api/rejected/records).
	Records RecordLister
	Health  HealthReporter
	Jobs    JobLister
	Rules   RuleLister
	// Shadow answers GET /api/rules/{name}/shadow; nil without scoring.
	Shadow ShadowReporter
	// Decoders lists the drop-in decoder folder (GET /api/decoders); nil
	// without one.
	Decoders DecoderLister
	Ready    []ReadyProbe
	// Starting, when set, names what the node still waits for before it
	// counts as ready ("rules compiling"), "" once nothing: /readyz
	// answers 503 with that status until then.
	Starting func() string
	// Collectors are the stages' metrics; /metrics serves them beside
	// the Go runtime's and the process's, fleetcore_up and
	// fleetcore_uptime_seconds, and the database's families.
	Collectors []Collector
	// FleetLock elects the node that exports the fleet-wide database
	// families; nil: this node does (a single node).
	FleetLock FleetLock
	// Summaries fill the dashboard's ingest panel, in order.
	Summaries []Summarizer
	NodeID    string
}

// Options configure the server.
type Options struct {
	Address string // host:port; default 127.0.0.1:8080
	// Token is the single token of earlier versions, the admin token
	// when AdminToken is empty (api.token).
	Token string
	// ReadToken may read; AdminToken may also change state and profile
	// (/debug/pprof). Beyond loopback one of the three is required.
	ReadToken  string
	AdminToken string
	// TLS, when set, serves https (tlsconf.Source.Config).
	TLS *tls.Config
	// EnterBelow is the score alert threshold drawn on the dashboard's
	// trend lines (integrity.enter_below).
	EnterBelow int
	// MapTiles is the dashboard maps' tile URL template (api.map_tiles;
	// empty: a plain background) and MapAttribution its credit line.
	MapTiles       string
	MapAttribution string
}

// ErrTokenRequired: the API would listen beyond loopback without a token.
var ErrTokenRequired = errors.New("api.token is required when api.address is not a loopback address")

// ErrBadToken: the token is too short or holds characters that do not
// travel unchanged in a header or cookie (see config.TokenProblem).
var ErrBadToken = errors.New("api.token is not a usable bearer token")

// Server is the HTTP API.
type Server struct {
	opts Options
	deps Deps
	log  hclog.Logger
	mux  *http.ServeMux
	// patterns are the routes registered on mux, in order.
	patterns []string
	started  time.Time
	srv      *http.Server
	ln       net.Listener
	ui       uiCache
	reg      *prometheus.Registry
	// tokens are swapped by SetTokens; opts' token fields are not used
	// after New.
	tokens atomic.Pointer[tokens]
}

// New checks the options and builds the routes. It does not listen.
func New(opts Options, deps Deps, log hclog.Logger) (*Server, error) {
	if opts.Address == "" {
		opts.Address = "127.0.0.1:8080"
	}
	read, admin, err := checkTokens(opts.Address, opts.Token, opts.ReadToken, opts.AdminToken)
	if err != nil {
		return nil, err
	}
	if p := config.MapTilesProblem(opts.MapTiles); p != "" {
		return nil, fmt.Errorf("api: map_tiles %q %s", opts.MapTiles, p)
	}
	opts.Token, opts.ReadToken, opts.AdminToken = "", read, admin
	if deps.DB == nil {
		return nil, errors.New("api: no database pool")
	}
	s := &Server{opts: opts, deps: deps, log: log, mux: http.NewServeMux(), started: time.Now()}
	reg, err := s.registry()
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s.reg = reg
	s.tokens.Store(&tokens{read: read, admin: admin})
	s.routes()
	return s, nil
}

// checkTokens applies the token rules of New (the legacy token is the
// admin token; a token beyond loopback; usable, distinct tokens) and
// returns the read and admin tokens.
func checkTokens(address, token, read, admin string) (string, string, error) {
	if admin == "" {
		admin = token
	} else if token != "" && token != admin {
		return "", "", errors.New("api: token (the admin token of earlier versions) and admin_token both set")
	}
	if !config.IsLoopback(address) && read == "" && admin == "" {
		return "", "", fmt.Errorf("api listening on %s: %w", address, ErrTokenRequired)
	}
	for _, tok := range []string{read, admin} {
		if tok != "" {
			if p := config.TokenProblem(tok); p != "" {
				return "", "", fmt.Errorf("%w: it %s", ErrBadToken, p)
			}
		}
	}
	if read != "" && read == admin {
		return "", "", errors.New("api: read_token and admin_token must differ")
	}
	return read, admin, nil
}

// SetTokens replaces the tokens (api.token, read_token, admin_token) of
// the running server after the checks of New (a reload: SIGHUP); on an
// error nothing changes. Requests from then on are checked against the
// new tokens, and dashboard sessions made with a replaced token end (their
// cookie's MAC is keyed by it).
func (s *Server) SetTokens(token, read, admin string) error {
	read, admin, err := checkTokens(s.opts.Address, token, read, admin)
	if err != nil {
		return err
	}
	s.tokens.Store(&tokens{read: read, admin: admin})
	return nil
}

// tokens are the bearer tokens in use ("" = none of that role).
type tokens struct{ read, admin string }

func (s *Server) tok() *tokens { return s.tokens.Load() }

// Handler returns the routes (tests use it with httptest).
func (s *Server) Handler() http.Handler { return s.logRequests(s.mux) }

func (s *Server) routes() {
	m := routeRecorder{s}
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", s.auth(http.HandlerFunc(s.metrics)))
	m.Handle("GET /api/devices", s.auth(http.HandlerFunc(s.devices)))
	m.Handle("GET /api/devices/{id}", s.auth(http.HandlerFunc(s.device)))
	m.Handle("GET /api/devices/{id}/signals", s.auth(http.HandlerFunc(s.signals)))
	m.Handle("GET /api/devices/{id}/findings", s.auth(http.HandlerFunc(s.findings)))
	m.Handle("GET /api/devices/{id}/track", s.auth(http.HandlerFunc(s.track)))
	m.Handle("GET /api/devices/{id}/trips", s.auth(http.HandlerFunc(s.trips)))
	m.Handle("GET /api/devices/{id}/signals.csv", s.auth(s.deviceExport("csv")))
	m.Handle("GET /api/devices/{id}/signals.geojson", s.auth(s.deviceExport("geojson")))
	m.Handle("GET /api/devices/{id}/signals.gpx", s.auth(s.deviceExport("gpx")))
	m.Handle("GET /api/signals.csv", s.auth(http.HandlerFunc(s.fleetExport)))
	m.Handle("GET /api/positions", s.auth(http.HandlerFunc(s.positions)))
	m.Handle("GET /api/alerts", s.auth(http.HandlerFunc(s.alerts)))
	m.Handle("GET /api/rejected", s.auth(http.HandlerFunc(s.rejected)))
	m.Handle("GET /api/rejected/{id}", s.auth(http.HandlerFunc(s.rejectedOne)))
	m.Handle("GET /api/rejected/records", s.auth(http.HandlerFunc(s.rejectedRecords)))
	m.Handle("GET /api/rules", s.auth(http.HandlerFunc(s.rules)))
	m.Handle("GET /api/rules/{name}/shadow", s.auth(http.HandlerFunc(s.ruleShadow)))
	m.Handle("GET /api/decoders", s.auth(http.HandlerFunc(s.decoders)))
	m.Handle("GET /api/health", s.auth(http.HandlerFunc(s.health)))
	m.Handle("GET /api/openapi.json", s.auth(http.HandlerFunc(s.openapi)))
	m.Handle("/api/", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})))
	m.Handle("GET /dashboard", s.auth(http.HandlerFunc(s.dashboard)))
	m.Handle("GET /{$}", s.auth(http.HandlerFunc(s.dashboard)))
	s.uiRoutes()
	m.HandleFunc("GET /login", s.loginForm)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.logout)
	m.Handle("/debug/pprof/", s.admin(http.HandlerFunc(pprof.Index)))
	m.Handle("/debug/pprof/cmdline", s.admin(http.HandlerFunc(pprof.Cmdline)))
	m.Handle("/debug/pprof/profile", s.admin(http.HandlerFunc(pprof.Profile)))
	m.Handle("/debug/pprof/symbol", s.admin(http.HandlerFunc(pprof.Symbol)))
	m.Handle("/debug/pprof/trace", s.admin(http.HandlerFunc(pprof.Trace)))
}

// routeRecorder registers routes on the server's mux and records their
// patterns (TestOpenAPIRoutes checks each is in openapi.json).
type routeRecorder struct{ s *Server }

func (m routeRecorder) Handle(pattern string, h http.Handler) {
	m.s.patterns = append(m.s.patterns, pattern)
	m.s.mux.Handle(pattern, h)
}

func (m routeRecorder) HandleFunc(pattern string, h http.HandlerFunc) { m.Handle(pattern, h) }

// Listen binds the address; Serve then serves on it.
func (s *Server) Listen() (net.Addr, error) {
	ln, err := net.Listen("tcp", s.opts.Address)
	if err != nil {
		return nil, fmt.Errorf("listening for the api: %w", err)
	}
	if s.opts.TLS != nil {
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	s.ln = ln
	s.log.Info("api listening", "address", ln.Addr().String(), "read_token", s.tok().read != "", "admin_token", s.tok().admin != "", "tls", s.opts.TLS != nil)
	return ln.Addr(), nil
}

// Serve serves until ctx ends, then shuts down gracefully (listening
// first if Listen was not called).
func (s *Server) Serve(ctx context.Context) error {
	if s.ln == nil {
		if _, err := s.Listen(); err != nil {
			return err
		}
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: s.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving the api: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down the api: %w", err)
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer
// (streamed exports flush through it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		if sw.status >= 500 {
			s.log.Warn("api request failed", "method", r.Method, "path", r.URL.Path, "status", sw.status, "ms", time.Since(start).Milliseconds())
		} else {
			s.log.Trace("api request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "ms", time.Since(start).Milliseconds())
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client went away
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// healthz says the process is alive; node name and uptime only to a
// caller who may see details.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"status": "alive"}
	if s.maySeeDetails(r) {
		body["node"], body["uptime_seconds"] = s.deps.NodeID, int64(time.Since(s.started).Seconds())
	}
	writeJSON(w, http.StatusOK, body)
}

type probeResult struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Millis int64  `json:"millis"`
}

// readyz probes every storage path now: ready when Postgres or a failover
// tier can take a batch and the node is not still starting (Deps.Starting:
// "rules compiling"). The status code is the same for every caller;
// the body names the paths that failed, and only a caller who may see
// details gets their error texts and the service checks.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	var results []probeResult
	ready := false
	for _, p := range s.deps.Ready {
		start := time.Now()
		err := p.Check(ctx)
		pr := probeResult{Name: p.Name, OK: err == nil, Millis: time.Since(start).Milliseconds()}
		if err != nil {
			pr.Detail = err.Error()
		}
		ready = ready || pr.OK
		results = append(results, pr)
	}
	failed := []string{}
	for _, pr := range results {
		if !pr.OK {
			failed = append(failed, pr.Name)
		}
	}
	status, word := http.StatusOK, "ready"
	if !ready {
		status, word = http.StatusServiceUnavailable, "not ready"
	} else if s.deps.Starting != nil {
		if why := s.deps.Starting(); why != "" {
			ready, status, word = false, http.StatusServiceUnavailable, why
		}
	}
	body := map[string]any{"status": word, "ready": ready, "failed": failed}
	if s.maySeeDetails(r) {
		body["paths"] = results
		if s.deps.Health != nil {
			body["checks"] = s.deps.Health.Results()
		}
	}
	writeJSON(w, status, body)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	var checks []health.CheckResult
	if s.deps.Health != nil {
		checks = s.deps.Health.Results()
	}
	var jobs []jobJSON
	if s.deps.Jobs != nil {
		for _, j := range s.deps.Jobs.Jobs() {
			jobs = append(jobs, toJobJSON(j))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"checks": nonNil(checks), "jobs": nonNil(jobs)})
}

type jobJSON struct {
	Name        string     `json:"name"`
	IntervalMS  int64      `json:"interval_ms"`
	Runs        uint64     `json:"runs"`
	Failures    uint64     `json:"failures"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastMillis  int64      `json:"last_millis"`
	Running     bool       `json:"running"`
}

func toJobJSON(j JobStatus) jobJSON {
	return jobJSON{Name: j.Name, IntervalMS: j.Interval.Milliseconds(), Runs: j.Runs, Failures: j.Failures,
		LastSuccess: timePtr(j.LastSuccess), LastError: j.LastError, LastMillis: j.LastMillis, Running: j.Running}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
