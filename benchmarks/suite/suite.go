package suite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/fleetcore/fleetcore/core/store"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/benchmarks/loadgen"
	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/plugins"
)

// Scenarios are the scenario names, in the order `make bench` runs them.
var Scenarios = []string{"steady", "burst", "many-connections", "outage", "rules", "poison", "wasm", "quality"}

// Options configure one benchmark run. Zero values take the scenario's
// defaults (see defaults).
type Options struct {
	Scenario string
	Duration time.Duration
	Devices  int     // simulated devices sending data (busy ones for many-connections)
	Rate     float64 // records/s per device; negative = scenario default, 0 = closed loop
	PerFrame int
	Mix      string  // protocol weights, e.g. "teltonika=6,gt06=2,jsonl=1,osmand=1"
	BadShare float64 // negative = scenario default
	// IdleConns is the number of idle connections of many-connections.
	IdleConns int

	// RefRows is how many rows the ceiling copies per trial; NaiveFor how
	// long the naive reference runs. SkipRefs leaves both out.
	RefRows  int
	NaiveFor time.Duration
	SkipRefs bool

	// PostgresURL names the server (any database; a fresh one is created
	// next to it). AMQPURL is the broker for the failover tier (outage).
	PostgresURL string
	AMQPURL     string
	// Keep leaves the benchmark database in place.
	Keep bool
	// BaseConfig is a fleetcore config file to start from instead of the
	// built-in defaults; the benchmark still overrides the database, the
	// listeners (one per protocol of the mix, free ports), the API address,
	// the spool directory and the RabbitMQ queue names (unique, deleted
	// afterwards).
	BaseConfig string
	// Rules is whether the node runs the WASM quality rules during the
	// load: "on", "off", or "" for the scenario's default (on only in the
	// rules scenario: the others measure the ingest path, and rule
	// evaluation, which takes CPU from the same cores in proportion to
	// ingest, is what the rules scenario measures). Tests use "off":
	// compiling the rules under the race detector takes minutes.
	Rules string

	// Progress receives a one-line progress bar (stderr); nil = none.
	Progress io.Writer
	// ServerLog receives fleetcore's log (warn and above); nil = discard.
	ServerLog io.Writer
	// Profile, when set, is started when the load starts and its returned
	// func called when the load ends (e.g. a pprof CPU profile).
	Profile func() func()
	// SpawnIdle opens n idle device connections to target from another
	// process and returns a func that closes them; nil opens them in this
	// process.
	SpawnIdle func(ctx context.Context, target string, n int) (func() error, error)
	// WasmDecoder is the teltonika_go.wasm the wasm scenario loads from a
	// decoder folder; "" finds protocols/wasm/build/examples/teltonika_go.wasm
	// (`make decoders`) from the working directory up.
	WasmDecoder string

	// The quality scenario's labelled-fault fleet (see loadgen.NewFleet):
	// the fault mix ("kind=share,…"), records per device and the seed
	// (0: 1); LabelsOut, when set, receives the labels (JSONL).
	Faults    string
	Records   int
	Seed      uint64
	LabelsOut string
}

func (o *Options) defaults() error {
	type def struct {
		dur     time.Duration
		devices int
		rate    float64
		mix     string
		bad     float64
	}
	const mix = "teltonika=6,gt06=2,gl200=1,jsonl=1,osmand=1,jt808=1"
	defs := map[string]def{
		"steady":           {30 * time.Second, 300, 0, mix, 0.02},
		"burst":            {30 * time.Second, 1000, 1, mix, 0.02},
		"many-connections": {30 * time.Second, 50, 0, "teltonika", 0.0},
		"outage":           {40 * time.Second, 200, 0, mix, 0.0},
		"rules":            {60 * time.Second, 300, 0, mix, 0.05},
		// Half clean, half with 1 % poison records (steady's load both times).
		"poison": {40 * time.Second, 300, 0, mix, 0.02},
		// Half through the native Teltonika decoder, half through its WASM port.
		"wasm": {40 * time.Second, 300, 0, "teltonika", 0.02},
		// A labelled-fault fleet uploaded as history (its own generator).
		"quality": {0, 60, 0, "teltonika", 0},
	}
	d, ok := defs[o.Scenario]
	if !ok {
		return fmt.Errorf("unknown scenario %q (have %s)", o.Scenario, strings.Join(Scenarios, ", "))
	}
	if o.Duration <= 0 {
		o.Duration = d.dur
	}
	if o.Devices <= 0 {
		o.Devices = d.devices
	}
	if o.Rate < 0 {
		o.Rate = d.rate
	}
	if o.Mix == "" {
		o.Mix = d.mix
	}
	if o.BadShare < 0 {
		o.BadShare = d.bad
	}
	if o.Scenario == "quality" {
		if o.Faults == "" {
			o.Faults = loadgen.DefaultFaults + ",isolated=6"
		}
		if o.Records <= 0 {
			o.Records = 280
		}
		if o.Seed == 0 {
			o.Seed = 1
		}
		o.SkipRefs = true // no throughput figure to compare
		if o.Rules == "off" {
			return fmt.Errorf("the quality scenario needs the rules on")
		}
		o.Rules = "on"
	}
	if o.IdleConns <= 0 {
		o.IdleConns = 20000
	}
	if o.RefRows <= 0 {
		o.RefRows = 100000
	}
	if o.NaiveFor <= 0 {
		o.NaiveFor = 3 * time.Second
	}
	if o.PostgresURL == "" {
		o.PostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	if o.AMQPURL == "" {
		o.AMQPURL = "amqp://guest:guest@127.0.0.1:5672/"
	}
	switch o.Rules {
	case "":
		o.Rules = "off"
		if o.Scenario == "rules" {
			o.Rules = "on"
		}
	case "on", "off":
	default:
		return fmt.Errorf("rules must be on or off, not %q", o.Rules)
	}
	if o.Scenario == "rules" && o.Rules == "off" {
		return fmt.Errorf("the rules scenario needs the rules on")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.ServerLog == nil {
		o.ServerLog = io.Discard
	}
	return nil
}

// Quantiles are latency figures in milliseconds.
type Quantiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func quantiles(l *loadgen.Latency) Quantiles {
	return Quantiles{P50: loadgen.Millis(l.Quantile(0.5)), P99: loadgen.Millis(l.Quantile(0.99)), Max: loadgen.Millis(l.Max())}
}

// Point is one second of the run.
type Point struct {
	T         float64 `json:"t"`           // seconds since the load started
	AckedPerS float64 `json:"acked_per_s"` // records acked in this second
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	MaxMS     float64 `json:"max_ms"`
	RSS       uint64  `json:"rss_bytes"`
	Connected int64   `json:"connected"`
	Backlog   int64   `json:"generator_backlog"`
	Extra     float64 `json:"extra,omitempty"` // scenario-specific (rules: lag seconds)
}

// Event marks a moment on the chart.
type Event struct {
	T     float64 `json:"t"`
	Label string  `json:"label"`
}

// Target is one goal of the issue and whether this run met it.
type Target struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Goal  string  `json:"goal"`
	Met   bool    `json:"met"`
}

// Result is everything a run measured.
type Result struct {
	Scenario  string    `json:"scenario"`
	Database  string    `json:"database"` // the benchmark's own database (dropped unless kept)
	Started   time.Time `json:"started"`
	Machine   Machine   `json:"machine"`
	DurationS float64   `json:"duration_s"`
	Devices   int       `json:"devices"`
	Mix       string    `json:"mix"`
	Rate      float64   `json:"rate_per_device"`
	BadShare  float64   `json:"bad_share"`
	// Rules: the WASM quality rules ran during the load.
	Rules bool `json:"rules"`

	SignalsAcked   int64         `json:"signals_acked"`
	SignalsStored  int64         `json:"signals_stored"`
	Duplicates     int64         `json:"duplicates"`
	Lost           int64         `json:"lost"`
	StoredNotAcked int64         `json:"stored_not_acked"`
	LostSample     []loadgen.Key `json:"lost_sample,omitempty"`
	ThroughputPerS float64       `json:"throughput_per_s"`
	CeilingPerS    float64       `json:"ceiling_per_s"`
	NaivePerS      float64       `json:"naive_per_s"`
	RatioToCeiling float64       `json:"ratio_to_ceiling"`
	RatioToNaive   float64       `json:"ratio_to_naive"`
	AckLatencyMS   Quantiles     `json:"ack_latency_ms"`
	RSSBytes       uint64        `json:"rss_bytes"`
	RSSNote        string        `json:"rss_note"`
	// CPU is where the machine's CPU went during the load.
	CPU *CPU `json:"cpu,omitempty"`

	Ceiling   []RefRun         `json:"ceiling_runs,omitempty"`
	Naive     *RefRun          `json:"naive_run,omitempty"`
	Generator loadgen.Counters `json:"generator"`
	Server    map[string]any   `json:"server"`
	Extras    map[string]any   `json:"extras"`
	Targets   []Target         `json:"targets"`
	Notes     []string         `json:"notes"`
	Series    []Point          `json:"series"`
	Events    []Event          `json:"events,omitempty"`
	// Quality is the quality scenario's judgement of its labelled fleet.
	Quality *QualityReport `json:"quality,omitempty"`
}

func (r *Result) note(format string, a ...any) { r.Notes = append(r.Notes, fmt.Sprintf(format, a...)) }

func (r *Result) target(name string, value float64, goal string, met bool) {
	r.Targets = append(r.Targets, Target{Name: name, Value: value, Goal: goal, Met: met})
}

// Run runs one scenario end to end.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	mix, err := loadgen.ParseMix(o.Mix)
	if err != nil {
		return nil, err
	}
	for _, s := range mix {
		if _, ok := plugins.Decoders.Lookup(s.Protocol); !ok {
			return nil, fmt.Errorf("protocol %s is not registered in this build", s.Protocol)
		}
	}
	res := &Result{
		Scenario: o.Scenario, Started: time.Now().UTC(), Machine: machine(), Devices: o.Devices, Mix: o.Mix,
		Rate: o.Rate, BadShare: o.BadShare, Rules: o.Rules == "on", Server: map[string]any{}, Extras: map[string]any{},
	}
	db, drop, err := createDatabase(ctx, o.PostgresURL)
	if err != nil {
		return nil, err
	}
	if u, err := url.Parse(db); err == nil {
		res.Database = strings.TrimPrefix(u.Path, "/")
	}
	defer func() {
		if o.Keep {
			res.note("database kept: %s", db)
			return
		}
		if err := drop(); err != nil {
			res.note("dropping the benchmark database: %v", err)
		}
	}()
	if err := migrate(ctx, db); err != nil {
		return nil, err
	}
	if !o.SkipRefs {
		if err := references(ctx, o, db, res); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp("", "fcbench-")
	if err != nil {
		return nil, fmt.Errorf("making a temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	r := &runner{o: o, res: res, db: db, tmp: tmp, mix: mix}
	switch o.Scenario {
	case "steady":
		err = r.steady(ctx)
	case "burst":
		err = r.burst(ctx)
	case "many-connections":
		err = r.manyConnections(ctx)
	case "outage":
		err = r.outage(ctx)
	case "rules":
		err = r.rules(ctx)
	case "poison":
		err = r.poison(ctx)
	case "wasm":
		err = r.wasm(ctx)
	case "quality":
		err = r.quality(ctx)
	}
	r.deleteQueues()
	if err != nil {
		return res, err
	}
	if res.CeilingPerS > 0 {
		res.RatioToCeiling = res.ThroughputPerS / res.CeilingPerS
	}
	if res.NaivePerS > 0 {
		res.RatioToNaive = res.ThroughputPerS / res.NaivePerS
	}
	r.judge()
	return res, nil
}

func randomName(prefix string) string {
	b := make([]byte, 5)
	rand.Read(b) //nolint:errcheck // never fails on Linux
	return prefix + "_" + hex.EncodeToString(b)
}

// createDatabase makes a uniquely named database next to serverURL's and
// returns its URL and a func that drops it.
func createDatabase(ctx context.Context, serverURL string) (string, func() error, error) {
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("connecting to Postgres: %w", err)
	}
	defer admin.Close(context.Background())
	name := randomName("fcbench")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("creating the benchmark database: %w", err)
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("parsing the Postgres URL: %w", err)
	}
	u.Path = "/" + name
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			return fmt.Errorf("connecting to drop %s: %w", name, err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("dropping %s: %w", name, err)
		}
		return nil
	}
	return u.String(), drop, nil
}

func migrate(ctx context.Context, db string) error {
	cfg := config.Default()
	cfg.Database.URL = db
	st, err := node.OpenStore(ctx, cfg, hclog.NewNullLogger())
	if err != nil {
		return fmt.Errorf("migrating the benchmark database: %w", err)
	}
	st.Close()
	return nil
}

// references measures the ceiling (1, 2, 4 connections; the best counts)
// and the naive design, then empties the tables.
func references(ctx context.Context, o Options, db string, res *Result) error {
	fmt.Fprintf(o.Progress, "%s: measuring references (ceiling: COPY of %d rows with 1, 2, 4 connections; naive: %s)\n", o.Scenario, o.RefRows, o.NaiveFor)
	sigs, err := referenceSignals(o.RefRows)
	if err != nil {
		return err
	}
	rows := store.Rows(sigs) // exactly the values ingest copies
	for _, conns := range []int{1, 2, 4} {
		if err := truncate(ctx, db); err != nil {
			return err
		}
		run, err := ceiling(ctx, db, rows, conns, 5000)
		if err != nil {
			return err
		}
		res.Ceiling = append(res.Ceiling, run)
		res.CeilingPerS = max(res.CeilingPerS, run.PerS)
	}
	if err := truncate(ctx, db); err != nil {
		return err
	}
	nv, err := naive(ctx, db, rows, 4, o.NaiveFor)
	if err != nil {
		return err
	}
	res.Naive = &nv
	res.NaivePerS = nv.PerS
	fmt.Fprintf(o.Progress, "%s: ceiling %.0f rows/s, naive %.0f rows/s\n", o.Scenario, res.CeilingPerS, res.NaivePerS)
	return truncate(ctx, db)
}

// runner holds one scenario's state.
type runner struct {
	o   Options
	res *Result
	db  string
	tmp string
	mix []loadgen.Share

	node    *node.Node
	stop    context.CancelFunc
	nodeErr chan error
	targets map[string]string
	start   time.Time
}

// serverConfig is the default configuration with the listeners of the
// mix on free loopback ports, the API on a free port, state in a temp dir,
// and (when amqp is set) the RabbitMQ failover tier on unique queues.
func (r *runner) serverConfig(dbURL string, amqp bool, protocols []string) (*config.Config, error) {
	var cfg *config.Config
	var err error
	if r.o.BaseConfig != "" {
		cfg, err = config.Load(r.o.BaseConfig)
	} else {
		cfg, err = config.Parse("bench.hcl", []byte("log_level = \"info\"\n"))
	}
	if err != nil {
		return nil, fmt.Errorf("building the server config: %w", err)
	}
	cfg.LogLevel = "info"
	cfg.Database.URL = dbURL
	cfg.Spool.Dir = filepath.Join(r.tmp, "spool")
	cfg.API.Address = "127.0.0.1:0" // never collide with a running server's API
	// The compiled-rule cache outlives the run: compiling the built-in
	// rules takes seconds and is not what the benchmark measures.
	cfg.Rules.CacheDir = filepath.Join(os.TempDir(), "fleetcore-bench-wasm-cache")
	if st, err := os.Stat(cfg.Rules.Dir); (err != nil || !st.IsDir()) && !filepath.IsAbs(cfg.Rules.Dir) {
		if dir := rulesDir(); dir != "" {
			cfg.Rules.Dir = dir // the default is relative to the repository root
		}
	}
	on := r.o.Rules == "on"
	cfg.Rules.Enabled = &on
	if amqp {
		cfg.AMQP.URL = r.o.AMQPURL
	}
	if cfg.AMQP.URL != "" {
		q := randomName("fcbench")
		cfg.AMQP.Queue, cfg.AMQP.DeadLetter, cfg.AMQP.AlertExchange = q+".failover", q+".dead", q+".alerts"
		r.res.Extras["amqp_queue"] = q + ".failover"
	}
	old := map[string]*config.Listener{}
	for _, l := range cfg.Listeners {
		old[l.Protocol] = l
	}
	cfg.Listeners = nil
	// Distinct free ports: the config refuses two listeners on one port.
	addrs, err := freeAddrs(len(protocols))
	if err != nil {
		return nil, err
	}
	for i, p := range protocols {
		addr := addrs[i]
		// Every simulated device connects from 127.0.0.1: the per-source
		// cap is raised to the listener's, as for a fleet behind one NAT.
		l := &config.Listener{Name: p, Protocol: p, Transport: "tcp", Address: addr,
			MaxFrame: 64 << 10, MaxConnections: 50000, MaxConnectionsPerIP: 50000, ReadTimeout: "10m"}
		if o, ok := old[p]; ok && o.Transport == "tcp" {
			l.MaxFrame, l.MaxConnections, l.ReadTimeout, l.Options = o.MaxFrame, o.MaxConnections, o.ReadTimeout, o.Options
		}
		cfg.Listeners = append(cfg.Listeners, l)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("building the server config: %w", err)
	}
	return cfg, nil
}

func (r *runner) protocols() []string {
	var out []string
	for _, s := range r.mix {
		out = append(out, s.Protocol)
	}
	sort.Strings(out)
	return out
}

// startNode runs a node in-process until stopNode.
func (r *runner) startNode(ctx context.Context, cfg *config.Config) error {
	log := hclog.New(&hclog.LoggerOptions{Name: "fleetcore", Level: hclog.Info, Output: r.o.ServerLog})
	began := time.Now()
	defer func() {
		fmt.Fprintf(r.o.Progress, "%s: fleetcore started in %.1fs\n", r.o.Scenario, time.Since(began).Seconds())
	}()
	r.node = node.New(cfg, plugins.Decoders, log)
	nctx, cancel := context.WithCancel(ctx)
	r.stop = cancel
	r.nodeErr = make(chan error, 1)
	go func() { r.nodeErr <- r.node.Run(nctx) }()
	// Ready, and the rules compiled (they compile in the background and
	// would take CPU from the measured load).
	deadline := time.After(3 * time.Minute)
	for _, c := range []<-chan struct{}{r.node.Ready(), r.node.RulesLive(), r.node.DecodersLive()} {
		select {
		case <-c:
		case err := <-r.nodeErr:
			cancel()
			if err == nil {
				err = errors.New("node stopped before it was ready")
			}
			return fmt.Errorf("starting fleetcore: %w", err)
		case <-deadline:
			cancel()
			return errors.New("starting fleetcore: not ready after 3 minutes")
		}
	}
	r.targets = map[string]string{}
	for _, l := range cfg.Listeners {
		r.targets[l.Protocol] = r.node.Addr(l.Name).String()
	}
	return nil
}

func (r *runner) stopNode() error {
	if r.stop == nil {
		return nil
	}
	r.serverStats()
	r.stop()
	r.stop = nil
	if err := <-r.nodeErr; err != nil {
		return fmt.Errorf("fleetcore stopped with: %w", err)
	}
	return nil
}

// serverStats copies the node's own counters into the result (for
// reading, never for lost/duplicates).
func (r *runner) serverStats() {
	n := r.node
	if n == nil || n.Gateway() == nil || n.Batcher() == nil {
		return
	}
	gs := n.Gateway().Stats()
	bs := n.Batcher().Stats()
	r.res.Server["gateway"] = map[string]any{
		"accepted": gs.Accepted.Load(), "refused": gs.Refused.Load(), "frames": gs.Frames.Load(),
		"rejected": gs.Rejected.Load(), "acked": gs.Acked.Load(), "unacked": gs.Unacked.Load(),
	}
	tiers := map[string]any{}
	for _, t := range bs.Tiers {
		tiers[t.Name] = map[string]any{"batches": t.Batches, "signals": t.Signals, "failures": t.Failures, "skipped": t.Skipped}
	}
	r.res.Server["ingest"] = map[string]any{
		"submitted": bs.Submitted, "durable": bs.Durable, "not_durable": bs.NotDurable, "batches": bs.Batches,
		"batch_size_p50": bs.BatchSizes.Quantile(0.5), "write_ms_p50": bs.WriteMillis.Quantile(0.5),
		"write_ms_p99": bs.WriteMillis.Quantile(0.99), "durable_ms_p50": bs.DurableMillis.Quantile(0.5),
		"durable_ms_p99": bs.DurableMillis.Quantile(0.99), "tiers": tiers,
	}
	if n.PG() != nil {
		ins, dup := n.PG().Counts()
		r.res.Server["postgres_inserted"], r.res.Server["postgres_duplicates_skipped"] = ins, dup
	}
}

func (r *runner) newGenerator(devices int, rate float64, idle bool) (*loadgen.Generator, error) {
	return loadgen.New(loadgen.Config{
		Targets: r.targets, Mix: r.mix, Devices: devices, Rate: rate, PerFrame: r.o.PerFrame,
		BadShare: r.o.BadShare, AckTimeout: 15 * time.Second, RampUp: min(2*time.Second, r.o.Duration/10), Idle: idle,
	})
}

func withHost(rawURL, hostport string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	u.Host = hostport
	return u.String()
}

// freeAddrs returns n distinct free loopback addresses: all n are held
// open together, so the kernel cannot hand the same port out twice (as
// it may to one listener closed before the next opens).
func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}
