package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/fleetcore/fleetcore/core/tlsconf"
	"github.com/fleetcore/fleetcore/plugins/checklang"
)

// Config is the whole configuration file.
type Config struct {
	LogLevel  string `hcl:"log_level,optional"`  // trace, debug, info, warn, error
	LogFormat string `hcl:"log_format,optional"` // text or json
	NodeID    string `hcl:"node_id,optional"`    // defaults to the host name

	Database  *Database   `hcl:"database,block"`
	AMQP      *AMQP       `hcl:"amqp,block"`
	Spool     *Spool      `hcl:"spool,block"`
	Ingest    *Ingest     `hcl:"ingest,block"`
	Listeners []*Listener `hcl:"listener,block"`
	Gateway   *Gateway    `hcl:"gateway,block"`
	Rules     *Rules      `hcl:"rules,block"`
	// Decoders is the folder of drop-in WASM protocol decoders.
	Decoders  *Decoders  `hcl:"decoders,block"`
	Organizer *Organizer `hcl:"organizer,block"`
	Integrity *Integrity `hcl:"integrity,block"`
	API       *API       `hcl:"api,block"`
	// Quarantine bounds the rejected_frames table (core/quarantine).
	Quarantine *Quarantine `hcl:"quarantine,block"`
	// Retention partitions signals and bounds the age of stored rows.
	Retention *Retention `hcl:"retention,block"`

	// File is the path the config was loaded from ("" for defaults).
	File string

	// sources says where the secret-bearing keys were set (file:line or
	// the environment variable), for Validate's messages.
	sources map[string]string
}

// Database configures the primary store.
type Database struct {
	URL string `hcl:"url,optional"`
	// MaxConns is the pool size; ingest uses up to Ingest.Writers of them.
	MaxConns int `hcl:"max_conns,optional"`
	// CreateDatabase creates the database named in URL when it is missing.
	CreateDatabase *bool  `hcl:"create_database,optional"`
	ConnectTimeout string `hcl:"connect_timeout,optional"`
	// WriteTimeout bounds one batch write; a write that takes longer counts
	// as failed (not durable).
	WriteTimeout string `hcl:"write_timeout,optional"`
}

// AMQP configures the RabbitMQ failover tier. No URL disables it.
type AMQP struct {
	URL string `hcl:"url,optional"`
	// URLs are the nodes of a RabbitMQ cluster, instead of URL: fleetcore
	// connects to one and fails over to the next when it is lost.
	URLs           []string `hcl:"urls,optional"`
	Queue          string   `hcl:"queue,optional"`
	DeadLetter     string   `hcl:"dead_letter_queue,optional"`
	QueueType      string   `hcl:"queue_type,optional"` // quorum or classic
	ConfirmTimeout string   `hcl:"confirm_timeout,optional"`
	Prefetch       int      `hcl:"prefetch,optional"`
	MaxRedeliver   int      `hcl:"max_redeliveries,optional"`
	AlertExchange  string   `hcl:"alert_exchange,optional"`
	// ConfirmWindow is how many batches may wait for publisher confirms at
	// once (all ingest writers together).
	ConfirmWindow int `hcl:"confirm_window,optional"`
	// ReconnectMax caps the exponential reconnect backoff.
	ReconnectMax string `hcl:"reconnect_max,optional"`
}

// Spool configures the local disk journal, the last tier.
type Spool struct {
	// Enabled (default true) puts the spool last in the chain; without it
	// a batch that neither Postgres nor RabbitMQ took is left unacked.
	Enabled      *bool  `hcl:"enabled,optional"`
	Dir          string `hcl:"dir,optional"`
	MaxBytes     int64  `hcl:"max_bytes,optional"`
	SegmentBytes int64  `hcl:"segment_bytes,optional"`
}

// Ingest configures group commit.
type Ingest struct {
	BatchMaxSignals int    `hcl:"batch_max_signals,optional"`
	BatchMaxAge     string `hcl:"batch_max_age,optional"`
	QueueSignals    int    `hcl:"queue_signals,optional"`
	Writers         int    `hcl:"writers,optional"`
	// ParallelMinSignals is the size a batch must reach to be written
	// while another write is in flight (see ingest.Config.ParallelMin).
	ParallelMinSignals int `hcl:"parallel_min_signals,optional"`
	// BreakerProbe is how often a failed Postgres is probed before new
	// batches go to it again.
	BreakerProbe string `hcl:"breaker_probe,optional"`
}

// Listener is one protocol endpoint.
type Listener struct {
	Name           string            `hcl:"name,label"`
	Protocol       string            `hcl:"protocol,optional"` // defaults to the label
	Transport      string            `hcl:"transport,optional"`
	Address        string            `hcl:"address"`
	MaxFrame       int               `hcl:"max_frame,optional"`
	MaxConnections int               `hcl:"max_connections,optional"`
	ReadTimeout    string            `hcl:"read_timeout,optional"`
	AllowDevices   []string          `hcl:"allow_devices,optional"`
	Options        map[string]string `hcl:"options,optional"`
	// MaxConnectionsPerIP caps the open connections of one source (an
	// IPv4 address, an IPv6 /64); 0 means the default, there is no "off".
	MaxConnectionsPerIP int `hcl:"max_connections_per_ip,optional"`
	// FrameTimeout bounds the time from a frame's first byte to its last
	// ("" means the default).
	FrameTimeout string `hcl:"frame_timeout,optional"`
	// MaxFramesInFlight and MaxBytesInFlight bound what one TCP
	// connection has read and submitted but not yet acked (the gateway
	// reads ahead while earlier frames wait for durability).
	MaxFramesInFlight int `hcl:"max_frames_in_flight,optional"`
	MaxBytesInFlight  int `hcl:"max_bytes_in_flight,optional"`
	// TLS makes a TCP listener speak TLS (nil: plain TCP).
	TLS *TLS `hcl:"tls,block"`
	// ProxyProtocol makes a TCP listener behind a load balancer (HAProxy
	// send-proxy / send-proxy-v2) read the PROXY protocol header of every
	// connection and use the device's address it carries; a connection
	// without one is refused. Only the balancer may reach such a port.
	ProxyProtocol bool `hcl:"proxy_protocol,optional"`

	src listenerSource // where the block and its keys are (Where)
}

// Gateway bounds what all listeners hold together.
type Gateway struct {
	// MaxConnections caps open TCP connections across every listener.
	MaxConnections int `hcl:"max_connections,optional"`
	// MaxBufferedBytes caps the bytes of partial frames buffered beyond
	// each connection's initial 2 KiB, across every connection.
	MaxBufferedBytes int64 `hcl:"max_buffered_bytes,optional"`
}

// Rules configures the WASM quality rules.
type Rules struct {
	Dir       string `hcl:"dir,optional"`
	CacheDir  string `hcl:"cache_dir,optional"`
	Interval  string `hcl:"interval,optional"`
	BatchSize int    `hcl:"batch_size,optional"`
	// MaxBatchSize is the most signals per rule transaction while the rules
	// are behind ingest; batches grow from BatchSize with the backlog.
	MaxBatchSize   int    `hcl:"max_batch_size,optional"`
	Timeout        string `hcl:"timeout,optional"`
	MemoryLimitMiB int    `hcl:"memory_limit_mib,optional"`
	Concurrency    int    `hcl:"concurrency,optional"`
	MaxFailures    int    `hcl:"max_failures,optional"`
	ReloadInterval string `hcl:"reload_interval,optional"`
	Enabled        *bool  `hcl:"enabled,optional"`
	// Intervals overrides Interval per rule name: { "dup.burst" = "5m" }.
	Intervals map[string]string `hcl:"intervals,optional"`
	// Sample evaluates only one signal in N for the named rules (the
	// random-sample mode for expensive rules): { "gps.teleport" = 10 }.
	Sample map[string]int `hcl:"sample,optional"`
	// Mode sets a rule's mode by name: "active" (the default) or "shadow"
	// (evaluated, findings stored marked shadow, left out of scores and
	// alerts): { "speed.limit" = "shadow" }.
	Mode map[string]string `hcl:"mode,optional"`
	// Backfill makes a rule version seen for the first time evaluate every
	// stored signal (true, the default) or only signals stored from then on.
	Backfill *bool `hcl:"backfill,optional"`
	// Checks are declarative checks written in the config (the language
	// of plugins/checklang, as in a *.check.hcl file of Dir); each is
	// compiled to a rule module and served next to the folder's rules.
	Checks []RuleCheck `hcl:"check,block"`
}

// checkPos splits "file:line:col: message" (a checklang error line).
var checkPos = regexp.MustCompile(`^(.+?:\d+:\d+): (.*)$`)

// RuleCheck is one `check "name" { … }` block of the rules block; its body
// is parsed by plugins/checklang (Compile).
type RuleCheck struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`
	Body      hcl.Body  `hcl:",remain"`
	src       []byte
}

// Compile parses and compiles the check; errors name the config file,
// line and column.
func (rc RuleCheck) Compile() (*checklang.Module, error) {
	c, err := checklang.ParseBody(rc.Name, rc.NameRange, rc.DefRange, rc.Body, rc.src)
	if err != nil {
		return nil, err
	}
	return c.Compile()
}

// Decoders configures the drop-in WebAssembly protocol decoders
// (plugins/wasmdecoder): every *.wasm file of Dir is a decoder a listener
// names like a built-in one, hot-reloaded (compiled and self-tested
// before it goes live).
type Decoders struct {
	// Dir is the folder; "" (the default) means no drop-in decoders.
	Dir string `hcl:"dir,optional"`
	// CacheDir keeps compiled code across restarts (default
	// var/wasm-cache/decoders; used only while Dir exists).
	CacheDir string `hcl:"cache_dir,optional"`
	// Budget bounds one fc_frame or fc_decode call (default 50ms): one
	// metering unit (guest function call or loop iteration) per
	// nanosecond, and a wall-clock backstop at 10 × the budget
	// (protocols/wasm/ABI.md §8); a call over it is a guest failure (the
	// frame is quarantined).
	Budget string `hcl:"budget,optional"`
	// MemoryLimitMiB caps one instance's linear memory (default 32).
	MemoryLimitMiB int `hcl:"memory_limit_mib,optional"`
	// MaxFailures is how many guest failures in a row (traps, timeouts,
	// ABI breaches; not ordinary refused frames) disable a version; the
	// previous one is then restored (default 5).
	MaxFailures int `hcl:"max_failures,optional"`
	// Poll is how often the folder is rescanned (default 2s).
	Poll string `hcl:"poll,optional"`
}

// Organizer configures the asynchronous work.
type Organizer struct {
	ReplayInterval string `hcl:"replay_interval,optional"`
	HealthInterval string `hcl:"health_interval,optional"`
	ScoreInterval  string `hcl:"score_interval,optional"`
}

// Integrity configures scores and alerts.
type Integrity struct {
	EnterBelow      int    `hcl:"enter_below,optional"`
	ClearAbove      int    `hcl:"clear_above,optional"`
	EnterWindows    int    `hcl:"enter_windows,optional"`
	ClearWindows    int    `hcl:"clear_windows,optional"`
	GPSBrokenAfter  string `hcl:"gps_broken_after,optional"`
	ExpectedEvery   string `hcl:"expected_interval,optional"`
	ClockDriftLimit string `hcl:"clock_drift_limit,optional"`
	Webhook         string `hcl:"webhook,optional"`
}

// API configures the HTTP API and dashboard.
type API struct {
	Address string `hcl:"address,optional"`
	// TLS serves the API over https (nil: plain http).
	TLS *TLS `hcl:"tls,block"`
	// Token is the single token of earlier versions: it is the admin
	// token (it had every right), kept as a migration path; set
	// admin_token instead (both at once is an error).
	Token string `hcl:"token,optional"`
	// ReadToken may read everything (the API, /metrics, the dashboard).
	ReadToken string `hcl:"read_token,optional"`
	// AdminToken may also change state and use /debug/pprof.
	AdminToken string `hcl:"admin_token,optional"`
	Enabled    *bool  `hcl:"enabled,optional"`
	// MapTiles is the dashboard map's tile layer, a URL template such as
	// "https://tile.example.net/{z}/{x}/{y}.png" ({s} as the first host
	// label for subdomains a, b, c). Empty (the default): no tiles, a
	// plain background, so the map works on a network without them.
	MapTiles string `hcl:"map_tiles,optional"`
	// MapAttribution is the credit line the tile provider asks for,
	// shown on the map (plain text).
	MapAttribution string `hcl:"map_attribution,optional"`
}

// Retention configures the partition and retention job (store.Partitioner).
type Retention struct {
	// PartitionMonths is the length of one signals partition in months
	// (1, 2, 3, 4, 6 or 12; default 1: monthly).
	PartitionMonths int `hcl:"partition_months,optional"`
	// PartitionsAhead is how many partitions after the current one are
	// kept created (default 3).
	PartitionsAhead *int `hcl:"partitions_ahead,optional"`
	// Signals, Findings and Alerts are the ages beyond which rows go
	// ("0s": keep). Signals by device time, whole partitions at a time.
	Signals  string `hcl:"signals,optional"`
	Findings string `hcl:"findings,optional"`
	Alerts   string `hcl:"alerts,optional"`
	// Interval is how often the job runs (default 1h; once at start).
	Interval string `hcl:"interval,optional"`
	// BatchRows bounds one delete statement (default 10000).
	BatchRows int `hcl:"batch_rows,optional"`
}

// TLS names the PEM files of a TLS endpoint (a listener or the API); the
// files are read at start and again on Reload (SIGHUP).
type TLS struct {
	CertFile string `hcl:"cert_file,optional"`
	KeyFile  string `hcl:"key_file,optional"`
	// ClientCAFile, when set, requires client certificates signed by one
	// of its CAs.
	ClientCAFile string `hcl:"client_ca_file,optional"`
}

// Files is t as tlsconf takes it.
func (t *TLS) Files() tlsconf.Files {
	return tlsconf.Files{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile}
}

// Quarantine bounds what refused frames cost (core/quarantine).
type Quarantine struct {
	// MaxRawBytes is the most raw bytes kept per rejected frame (its full
	// length is kept beside them).
	MaxRawBytes int `hcl:"max_raw_bytes,optional"`
	// PerSourceRate is the most rejected frames stored (and logged one by
	// one) per source IP and minute, after a burst of PerSourceBurst; the
	// rest are counted and summarised once a minute.
	PerSourceRate  int `hcl:"per_source_rate,optional"`
	PerSourceBurst int `hcl:"per_source_burst,optional"`
	// Rate and Burst are the same bound for all sources together.
	Rate  int `hcl:"rate,optional"`
	Burst int `hcl:"burst,optional"`
	// Queue is how many rejected frames may wait for the database; beyond
	// it they are dropped and counted (never blocking a device's reads).
	Queue int `hcl:"queue,optional"`
	// Retention deletes rows older than this ("0s": keep them).
	Retention string `hcl:"retention,optional"`
	// MaxRows deletes the oldest rows beyond this many (0: no cap).
	MaxRows *int64 `hcl:"max_rows,optional"`
}

// Error lists every problem found in a config; each names file and line
// where known.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

// Add records a problem found at where (file:line, see Listener.Where).
func (e *Error) Add(where, format string, a ...any) {
	if where == "" {
		where = "defaults"
	}
	e.Problems = append(e.Problems, where+": "+fmt.Sprintf(format, a...))
}

// Merge adds err's problems: one line each when err is an *Error (or
// wraps one), else err's text as one problem at where.
func (e *Error) Merge(where string, err error) {
	if err == nil {
		return
	}
	var ce *Error
	if errors.As(err, &ce) {
		e.Problems = append(e.Problems, ce.Problems...)
		return
	}
	e.Add(where, "%v", err)
}

// Err returns e when it holds a problem, else nil.
func (e *Error) Err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// Load reads, decodes, defaults, overrides from the environment and
// validates the config file at path.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, src)
}

// Parse is Load for bytes already read; path names the source in errors.
func Parse(path string, src []byte) (*Config, error) {
	c, err := ParseUnvalidated(path, src)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadUnvalidated is Load without Validate: syntax and unknown keys are
// still errors, every other problem is left to the caller's Validate (or
// node.Check), so that one run can report all of them.
func LoadUnvalidated(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return ParseUnvalidated(path, src)
}

// ParseUnvalidated is LoadUnvalidated for bytes already read.
func ParseUnvalidated(path string, src []byte) (*Config, error) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, path)
	if diags.HasErrors() {
		return nil, diagError(diags)
	}
	var c Config
	if diags := gohcl.DecodeBody(f.Body, nil, &c); diags.HasErrors() {
		return nil, diagError(diags)
	}
	c.File = path
	if c.Rules != nil {
		for i := range c.Rules.Checks {
			c.Rules.Checks[i].src = src
		}
	}
	c.recordSources(f.Body)
	for k, v := range attrSources(f.Body, path, secretKeys) {
		c.sources[k] = v
	}
	c.applyDefaults()
	c.resolvePaths(filepath.Dir(path))
	c.applyEnv()
	return &c, nil
}

// resolvePaths makes the relative folders of a loaded file (spool, rules,
// decoders and their compile caches, defaults included) relative to the
// file's own folder, not to the working directory: the same file means the
// same folders wherever the process starts (`make run` from the checkout,
// systemd from /).
func (c *Config) resolvePaths(base string) {
	for _, p := range []*string{&c.Spool.Dir, &c.Rules.Dir, &c.Rules.CacheDir, &c.Decoders.Dir, &c.Decoders.CacheDir} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
}

// Default returns the built-in configuration (what an empty file gives)
// with environment overrides applied.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	c.applyEnv()
	return c
}

func diagError(diags hcl.Diagnostics) error {
	e := &Error{}
	for _, d := range diags {
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		if d.Subject != nil {
			msg = fmt.Sprintf("%s:%d: %s", d.Subject.Filename, d.Subject.Start.Line, msg)
		}
		e.Problems = append(e.Problems, msg)
	}
	return e
}

// DefaultDatabaseURL is the local Postgres of the README's quick start.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/fleetcore?sslmode=disable"

func (c *Config) applyDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defi := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.LogLevel, "info")
	def(&c.LogFormat, "text")
	if c.NodeID == "" {
		h, _ := os.Hostname()
		c.NodeID = h
	}
	if c.Database == nil {
		c.Database = &Database{}
	}
	def(&c.Database.URL, DefaultDatabaseURL)
	defi(&c.Database.MaxConns, 8)
	if c.Database.CreateDatabase == nil {
		t := true
		c.Database.CreateDatabase = &t
	}
	def(&c.Database.ConnectTimeout, "5s")
	def(&c.Database.WriteTimeout, "10s")

	if c.AMQP == nil {
		c.AMQP = &AMQP{}
	}
	def(&c.AMQP.Queue, "fleetcore.failover")
	def(&c.AMQP.DeadLetter, "fleetcore.failover.dead")
	def(&c.AMQP.QueueType, "quorum")
	def(&c.AMQP.ConfirmTimeout, "5s")
	defi(&c.AMQP.Prefetch, 16)
	defi(&c.AMQP.MaxRedeliver, 20)
	def(&c.AMQP.AlertExchange, "fleetcore.alerts")
	defi(&c.AMQP.ConfirmWindow, 256)
	def(&c.AMQP.ReconnectMax, "10s")

	if c.Spool == nil {
		c.Spool = &Spool{}
	}
	def(&c.Spool.Dir, "var/spool")
	if c.Spool.Enabled == nil {
		t := true
		c.Spool.Enabled = &t
	}
	if c.Spool.MaxBytes == 0 {
		c.Spool.MaxBytes = 1 << 30
	}
	if c.Spool.SegmentBytes == 0 {
		c.Spool.SegmentBytes = 16 << 20
	}

	if c.Ingest == nil {
		c.Ingest = &Ingest{}
	}
	defi(&c.Ingest.BatchMaxSignals, 4096)
	def(&c.Ingest.BatchMaxAge, "10ms")
	defi(&c.Ingest.QueueSignals, 65536)
	defi(&c.Ingest.Writers, 2)
	defi(&c.Ingest.ParallelMinSignals, 1024)
	def(&c.Ingest.BreakerProbe, "2s")

	for _, l := range c.Listeners {
		def(&l.Protocol, l.Name)
		def(&l.Transport, "tcp")
		defi(&l.MaxFrame, 64<<10)
		defi(&l.MaxConnections, 50000)
		def(&l.ReadTimeout, "10m")
		defi(&l.MaxConnectionsPerIP, 1000)
		def(&l.FrameTimeout, "30s")
		defi(&l.MaxFramesInFlight, 1024)
		defi(&l.MaxBytesInFlight, 1<<20)
	}
	if c.Gateway == nil {
		c.Gateway = &Gateway{}
	}
	defi(&c.Gateway.MaxConnections, 100000)
	if c.Gateway.MaxBufferedBytes == 0 {
		c.Gateway.MaxBufferedBytes = 32 << 20
	}

	if c.Rules == nil {
		c.Rules = &Rules{}
	}
	def(&c.Rules.Dir, "checks-wasm/build/rules")
	def(&c.Rules.CacheDir, "var/wasm-cache")
	def(&c.Rules.Interval, "2s")
	defi(&c.Rules.BatchSize, 1024)
	defi(&c.Rules.MaxBatchSize, max(8192, c.Rules.BatchSize))
	def(&c.Rules.Timeout, "2s")
	defi(&c.Rules.MemoryLimitMiB, 64)
	defi(&c.Rules.Concurrency, 1)
	defi(&c.Rules.MaxFailures, 5)
	def(&c.Rules.ReloadInterval, "2s")
	if c.Rules.Enabled == nil {
		t := true
		c.Rules.Enabled = &t
	}
	if c.Rules.Backfill == nil {
		t := true
		c.Rules.Backfill = &t
	}

	if c.Decoders == nil {
		c.Decoders = &Decoders{}
	}
	def(&c.Decoders.CacheDir, "var/wasm-cache/decoders")
	def(&c.Decoders.Budget, "50ms")
	defi(&c.Decoders.MemoryLimitMiB, 32)
	defi(&c.Decoders.MaxFailures, 5)
	def(&c.Decoders.Poll, "2s")

	if c.Organizer == nil {
		c.Organizer = &Organizer{}
	}
	def(&c.Organizer.ReplayInterval, "2s")
	def(&c.Organizer.HealthInterval, "10s")
	def(&c.Organizer.ScoreInterval, "30s")

	if c.Integrity == nil {
		c.Integrity = &Integrity{}
	}
	defi(&c.Integrity.EnterBelow, 60)
	defi(&c.Integrity.ClearAbove, 75)
	defi(&c.Integrity.EnterWindows, 2)
	defi(&c.Integrity.ClearWindows, 2)
	def(&c.Integrity.GPSBrokenAfter, "10m")
	def(&c.Integrity.ExpectedEvery, "")
	def(&c.Integrity.ClockDriftLimit, "2m")

	if c.Quarantine == nil {
		c.Quarantine = &Quarantine{}
	}
	defi(&c.Quarantine.MaxRawBytes, 4096)
	defi(&c.Quarantine.PerSourceRate, 60)
	defi(&c.Quarantine.PerSourceBurst, 20)
	defi(&c.Quarantine.Rate, 6000)
	defi(&c.Quarantine.Burst, 1000)
	defi(&c.Quarantine.Queue, 4096)
	def(&c.Quarantine.Retention, "720h")
	if c.Quarantine.MaxRows == nil {
		n := int64(1_000_000)
		c.Quarantine.MaxRows = &n
	}

	if c.Retention == nil {
		c.Retention = &Retention{}
	}
	defi(&c.Retention.PartitionMonths, 1)
	if c.Retention.PartitionsAhead == nil {
		n := 3
		c.Retention.PartitionsAhead = &n
	}
	def(&c.Retention.Signals, "0s")
	def(&c.Retention.Findings, "2160h")
	def(&c.Retention.Alerts, "8760h")
	def(&c.Retention.Interval, "1h")
	defi(&c.Retention.BatchRows, 10000)

	if c.API == nil {
		c.API = &API{}
	}
	def(&c.API.Address, "127.0.0.1:8080")
	if c.API.Enabled == nil {
		t := true
		c.API.Enabled = &t
	}
}

func (c *Config) applyEnv() {
	if v := os.Getenv("FLEETCORE_DATABASE_URL"); v != "" {
		c.Database.URL = v
		c.setSource("database.url", "FLEETCORE_DATABASE_URL")
	}
	if v := os.Getenv("FLEETCORE_AMQP_URL"); v != "" {
		c.AMQP.URL, c.AMQP.URLs = v, nil
		c.setSource("amqp.url", "FLEETCORE_AMQP_URL")
	}
	if v := os.Getenv("FLEETCORE_API_TOKEN"); v != "" {
		c.API.Token = v
		c.setSource("api.token", "FLEETCORE_API_TOKEN")
	}
	if v := os.Getenv("FLEETCORE_API_READ_TOKEN"); v != "" {
		c.API.ReadToken = v
		c.setSource("api.read_token", "FLEETCORE_API_READ_TOKEN")
	}
	if v := os.Getenv("FLEETCORE_API_ADMIN_TOKEN"); v != "" {
		c.API.AdminToken = v
		c.setSource("api.admin_token", "FLEETCORE_API_ADMIN_TOKEN")
	}
}

// Duration parses a duration value that Validate has checked.
func Duration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// Validate checks the config and reports every problem at once.
func (c *Config) Validate() error {
	e := &Error{}
	add := func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		key := ""
		if m := problemKey.FindStringSubmatch(msg); m != nil {
			key = m[1]
		}
		e.Add(c.where(key), "%s", msg)
	}
	addAt := func(where, format string, a ...any) { e.Add(where, format, a...) }
	dur := func(name, v string, allowEmpty bool) {
		if v == "" && allowEmpty {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			add("%s: %q is not a duration (like 500ms, 10s, 5m)", name, v)
		} else if d < 0 {
			add("%s: must not be negative", name)
		}
	}
	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error":
	default:
		add("log_level: %q is not one of trace, debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		add("log_format: %q is not text or json", c.LogFormat)
	}
	if p := urlProblem(c.Database.URL, parsePostgres, "postgres", "postgresql"); p != "" {
		c.addAt(e, "database.url", p)
	}
	if c.Database.MaxConns < 2 {
		add("database.max_conns: must be at least 2")
	}
	dur("database.connect_timeout", c.Database.ConnectTimeout, false)
	dur("database.write_timeout", c.Database.WriteTimeout, false)
	if c.AMQP.URL != "" {
		if p := urlProblem(c.AMQP.URL, parseAMQP, "amqp", "amqps"); p != "" {
			c.addAt(e, "amqp.url", p)
		}
		if len(c.AMQP.URLs) > 0 {
			c.addAt(e, "amqp.urls", "set amqp.url or amqp.urls, not both")
		}
	}
	for i, u := range c.AMQP.URLs {
		if p := urlProblem(u, parseAMQP, "amqp", "amqps"); p != "" {
			c.addAt(e, "amqp.urls", fmt.Sprintf("[%d]: %s", i, p))
		}
	}
	if c.AMQP.QueueType != "quorum" && c.AMQP.QueueType != "classic" {
		add("amqp.queue_type: %q is not quorum or classic", c.AMQP.QueueType)
	}
	dur("amqp.confirm_timeout", c.AMQP.ConfirmTimeout, false)
	dur("amqp.reconnect_max", c.AMQP.ReconnectMax, false)
	if c.AMQP.Queue == "" || c.AMQP.Queue == c.AMQP.DeadLetter {
		add("amqp.queue and amqp.dead_letter_queue: must be set and differ")
	}
	if c.AMQP.Prefetch < 1 || c.AMQP.Prefetch > 65535 {
		add("amqp.prefetch: must be between 1 and 65535")
	}
	if c.AMQP.MaxRedeliver < 1 {
		add("amqp.max_redeliveries: must be positive")
	}
	if c.AMQP.ConfirmWindow < 1 {
		add("amqp.confirm_window: must be positive")
	}
	if c.Spool.Dir == "" {
		add("spool.dir: must be set")
	}
	if c.Spool.SegmentBytes < 4096 {
		add("spool.segment_bytes: must be at least 4096")
	}
	if c.Spool.MaxBytes < c.Spool.SegmentBytes {
		add("spool.max_bytes: must be at least spool.segment_bytes")
	}
	if c.Ingest.BatchMaxSignals < 1 || c.Ingest.BatchMaxSignals > 1<<20 {
		add("ingest.batch_max_signals: must be between 1 and 1048576")
	}
	dur("ingest.batch_max_age", c.Ingest.BatchMaxAge, false)
	dur("ingest.breaker_probe", c.Ingest.BreakerProbe, false)
	if c.Ingest.QueueSignals < c.Ingest.BatchMaxSignals {
		add("ingest.queue_signals: must be at least ingest.batch_max_signals")
	}
	if c.Ingest.ParallelMinSignals < 1 || c.Ingest.ParallelMinSignals > c.Ingest.BatchMaxSignals {
		add("ingest.parallel_min_signals: must be between 1 and ingest.batch_max_signals")
	}
	if c.Ingest.Writers < 1 || c.Ingest.Writers >= c.Database.MaxConns {
		add("ingest.writers: must be at least 1 and less than database.max_conns")
	}
	var bound []*Listener // listeners whose address parsed, for clashes
	for _, l := range c.Listeners {
		where := fmt.Sprintf("listener %q", l.Name)
		if l.Transport != "tcp" && l.Transport != "udp" {
			addAt(l.Where("transport"), "%s: transport %q is not tcp or udp", where, l.Transport)
		}
		if p := addressProblem(l.Transport, l.Address); p != "" {
			addAt(l.Where("address"), "%s: address %q: %s", where, l.Address, p)
		} else {
			for _, other := range bound {
				if other.Transport == l.Transport && addressesClash(other.Address, l.Address) {
					addAt(l.Where("address"), "%s: address %s %s is also used by listener %q (%s)", where, l.Transport, l.Address, other.Name, other.Where("address"))
					break
				}
			}
			bound = append(bound, l)
		}
		if l.TLS != nil {
			if l.Transport != "tcp" {
				addAt(l.Where(""), "%s: tls needs transport tcp (DTLS is not supported)", where)
			} else if err := tlsconf.Check(where, l.TLS.Files()); err != nil {
				addAt(l.Where(""), "%v", err)
			}
		}
		if l.ProxyProtocol && l.Transport != "tcp" {
			addAt(l.Where("proxy_protocol"), "%s: proxy_protocol needs transport tcp", where)
		}
		if l.MaxFrame < 16 || l.MaxFrame > 16<<20 {
			addAt(l.Where("max_frame"), "%s: max_frame must be between 16 and 16777216", where)
		}
		if l.MaxConnections < 1 {
			addAt(l.Where("max_connections"), "%s: max_connections must be positive", where)
		}
		if d, err := time.ParseDuration(l.ReadTimeout); err != nil {
			addAt(l.Where("read_timeout"), "%s: read_timeout: %q is not a duration (like 500ms, 10s, 5m)", where, l.ReadTimeout)
		} else if d < 0 {
			addAt(l.Where("read_timeout"), "%s: read_timeout: must not be negative", where)
		}
		if l.MaxConnectionsPerIP < 0 {
			addAt(l.Where("max_connections_per_ip"), "%s: max_connections_per_ip must be positive", where)
		}
		if l.FrameTimeout != "" {
			if d, err := time.ParseDuration(l.FrameTimeout); err != nil {
				addAt(l.Where("frame_timeout"), "%s: frame_timeout: %q is not a duration (like 500ms, 10s, 5m)", where, l.FrameTimeout)
			} else if d <= 0 {
				addAt(l.Where("frame_timeout"), "%s: frame_timeout must be positive", where)
			}
		}
		// 0 is the default (listeners built in code, not parsed).
		if l.MaxFramesInFlight < 0 || l.MaxFramesInFlight > 1<<20 {
			addAt(l.Where("max_frames_in_flight"), "%s: max_frames_in_flight must be between 1 and 1048576", where)
		}
		if l.MaxBytesInFlight < 0 || l.MaxBytesInFlight > 1<<30 {
			addAt(l.Where("max_bytes_in_flight"), "%s: max_bytes_in_flight must be between 1 and 1073741824", where)
		}
		if l.MaxFrame > 0 && c.Gateway.MaxBufferedBytes > 0 && int64(l.MaxFrame) > c.Gateway.MaxBufferedBytes {
			addAt(l.Where("max_frame"), "%s: max_frame (%d) is more than gateway.max_buffered_bytes (%d): such a frame could never be buffered", where, l.MaxFrame, c.Gateway.MaxBufferedBytes)
		}
	}
	if c.Gateway.MaxConnections < 1 {
		add("gateway.max_connections: must be positive")
	}
	if c.Gateway.MaxBufferedBytes < 1 {
		add("gateway.max_buffered_bytes: must be positive")
	}
	seenCheck := map[string]bool{}
	for _, rc := range c.Rules.Checks {
		if seenCheck[rc.Name] {
			addAt(fmt.Sprintf("%s:%d", rc.NameRange.Filename, rc.NameRange.Start.Line), "rules.check[%q]: defined twice", rc.Name)
			continue
		}
		seenCheck[rc.Name] = true
		if _, err := rc.Compile(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				where := c.File
				if m := checkPos.FindStringSubmatch(line); m != nil {
					where, line = m[1], m[2]
				}
				addAt(where, "rules.check[%q]: %s", rc.Name, line)
			}
		}
	}
	dur("rules.interval", c.Rules.Interval, false)
	dur("rules.timeout", c.Rules.Timeout, false)
	dur("rules.reload_interval", c.Rules.ReloadInterval, false)
	if c.Rules.BatchSize < 1 || c.Rules.BatchSize > 65536 {
		add("rules.batch_size: must be between 1 and 65536")
	}
	if c.Rules.MaxBatchSize < c.Rules.BatchSize || c.Rules.MaxBatchSize > 262144 {
		add("rules.max_batch_size: must be between rules.batch_size and 262144")
	}
	if c.Rules.MemoryLimitMiB < 1 || c.Rules.MemoryLimitMiB > 4096 {
		add("rules.memory_limit_mib: must be between 1 and 4096")
	}
	if c.Rules.Concurrency < 1 {
		add("rules.concurrency: must be positive")
	}
	for _, name := range slices.Sorted(maps.Keys(c.Rules.Intervals)) {
		dur(fmt.Sprintf("rules.intervals[%q]", name), c.Rules.Intervals[name], false)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Rules.Mode)) {
		if m := c.Rules.Mode[name]; m != "active" && m != "shadow" {
			add("rules.mode[%q]: %q is not a mode (active or shadow)", name, m)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Rules.Sample)) {
		if c.Rules.Sample[name] < 1 {
			add("rules.sample[%q]: must be at least 1 (1 = every signal)", name)
		}
	}
	dc := c.Decoders
	dur("decoders.budget", dc.Budget, false)
	dur("decoders.poll", dc.Poll, false)
	if d := Duration(dc.Budget); d == 0 || d > 10*time.Second {
		add("decoders.budget: must be between 1ns and 10s (it bounds one call on a device's read path)")
	}
	if Duration(dc.Poll) == 0 {
		add("decoders.poll: must be positive")
	}
	if dc.MemoryLimitMiB < 1 || dc.MemoryLimitMiB > 4096 {
		add("decoders.memory_limit_mib: must be between 1 and 4096")
	}
	if dc.MaxFailures < 1 {
		add("decoders.max_failures: must be positive")
	}
	dur("organizer.replay_interval", c.Organizer.ReplayInterval, false)
	dur("organizer.health_interval", c.Organizer.HealthInterval, false)
	dur("organizer.score_interval", c.Organizer.ScoreInterval, false)
	if c.Integrity.EnterBelow < 0 || c.Integrity.EnterBelow > 100 || c.Integrity.ClearAbove < c.Integrity.EnterBelow || c.Integrity.ClearAbove > 100 {
		add("integrity: need 0 <= enter_below <= clear_above <= 100")
	}
	dur("integrity.gps_broken_after", c.Integrity.GPSBrokenAfter, false)
	dur("integrity.expected_interval", c.Integrity.ExpectedEvery, true)
	dur("integrity.clock_drift_limit", c.Integrity.ClockDriftLimit, false)
	q := c.Quarantine
	if q.MaxRawBytes < 1 || q.MaxRawBytes > 16<<20 {
		add("quarantine.max_raw_bytes: must be between 1 and 16777216")
	}
	if q.PerSourceRate < 1 || q.PerSourceBurst < 1 || q.Rate < 1 || q.Burst < 1 {
		add("quarantine: per_source_rate, per_source_burst, rate and burst must be positive")
	}
	if q.Queue < 1 || q.Queue > 1<<20 {
		add("quarantine.queue: must be between 1 and 1048576")
	}
	dur("quarantine.retention", q.Retention, false)
	if *q.MaxRows < 0 {
		add("quarantine.max_rows: must not be negative (0 = no cap)")
	}
	switch c.Retention.PartitionMonths {
	case 1, 2, 3, 4, 6, 12:
	default:
		add("retention.partition_months: %d is not 1, 2, 3, 4, 6 or 12", c.Retention.PartitionMonths)
	}
	if *c.Retention.PartitionsAhead < 1 || *c.Retention.PartitionsAhead > 36 {
		add("retention.partitions_ahead: must be between 1 and 36")
	}
	dur("retention.signals", c.Retention.Signals, false)
	dur("retention.findings", c.Retention.Findings, false)
	dur("retention.alerts", c.Retention.Alerts, false)
	dur("retention.interval", c.Retention.Interval, false)
	if r := c.Retention; r.Interval != "" && Duration(r.Interval) < time.Minute {
		add("retention.interval: must be at least 1m")
	}
	if c.Retention.BatchRows < 1 || c.Retention.BatchRows > 1_000_000 {
		add("retention.batch_rows: must be between 1 and 1000000")
	}
	if p := addressProblem("tcp", c.API.Address); p != "" {
		add("api.address: %q: %s", c.API.Address, p)
	} else if *c.API.Enabled && c.API.Token == "" && c.API.ReadToken == "" && c.API.AdminToken == "" && !IsLoopback(c.API.Address) {
		add("api.read_token: a token (read_token, admin_token) is required when api.address (%s) is not a loopback address (or set FLEETCORE_API_READ_TOKEN, FLEETCORE_API_ADMIN_TOKEN)", c.API.Address)
	}
	for _, k := range []struct{ key, v string }{{"api.token", c.API.Token}, {"api.read_token", c.API.ReadToken}, {"api.admin_token", c.API.AdminToken}} {
		if k.v != "" {
			if p := TokenProblem(k.v); p != "" {
				c.addAt(e, k.key, p)
			}
		}
	}
	if c.API.Token != "" && c.API.AdminToken != "" {
		c.addAt(e, "api.token", "is the admin token of earlier versions: set api.admin_token or api.token, not both")
	}
	if c.API.ReadToken != "" && (c.API.ReadToken == c.API.AdminToken || c.API.ReadToken == c.API.Token) {
		c.addAt(e, "api.read_token", "must differ from the admin token")
	}
	if p := MapTilesProblem(c.API.MapTiles); p != "" {
		add("api.map_tiles: %q: %s", c.API.MapTiles, p)
	}
	if a := c.API.MapAttribution; len(a) > 512 || strings.ContainsAny(a, "<>\x00\n\r") {
		add("api.map_attribution: must be plain text of at most 512 bytes on one line, without < or >")
	}
	if c.API.TLS != nil && *c.API.Enabled {
		if err := tlsconf.Check("api", c.API.TLS.Files()); err != nil {
			add("%v", err)
		}
	}
	if c.Integrity.Webhook != "" && !strings.HasPrefix(c.Integrity.Webhook, "http://") && !strings.HasPrefix(c.Integrity.Webhook, "https://") {
		add("integrity.webhook: must be an http:// or https:// URL")
	}
	e.Sort()
	return e.Err()
}

// addressProblem says why addr is not a host:port a listener of transport
// can bind ("" when it is).
func addressProblem(transport, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return strings.TrimPrefix(err.Error(), "address "+addr+": ")
	}
	if strings.ContainsAny(host, " \t") {
		return "the host has spaces"
	}
	if port == "" {
		return "no port"
	}
	if n, err := strconv.Atoi(port); err == nil {
		if n < 0 || n > 65535 {
			return fmt.Sprintf("port %d is outside 0–65535", n)
		}
		return ""
	}
	network := transport
	if network != "udp" {
		network = "tcp"
	}
	if _, err := net.LookupPort(network, port); err != nil {
		return fmt.Sprintf("port %q is not a number or a known service", port)
	}
	return ""
}

// addressesClash reports whether two listeners of one transport would
// bind the same port: the same port on the same host or on a wildcard
// host ("", 0.0.0.0, ::). Port 0 (any free port) never clashes.
func addressesClash(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" || h == "[::]" }
	return ha == hb || wild(ha) || wild(hb)
}

// IsLoopback reports whether a listen address only accepts local clients.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ErrNoConfig is returned when no config file is given or found.
var ErrNoConfig = errors.New("no config file")

// Endpoints are the broker URLs to connect to: URLs, or URL alone; none
// when the failover tier is off.
func (a *AMQP) Endpoints() []string {
	if a == nil {
		return nil
	}
	if len(a.URLs) > 0 {
		return append([]string(nil), a.URLs...)
	}
	if a.URL != "" {
		return []string{a.URL}
	}
	return nil
}
