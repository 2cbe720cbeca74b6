package node

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/api"
	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/failover"
	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/core/health"
	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/quarantine"
	"github.com/fleetcore/fleetcore/core/recovery"
	"github.com/fleetcore/fleetcore/core/rules"
	"github.com/fleetcore/fleetcore/core/spool"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/core/tlsconf"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

// Node is one running fleetcore server: it turns the config into the
// stages' configs, starts them in order (store, durability chain, ingest,
// quarantine, gateway, then the organizer's jobs and the API) and stops
// them in the reverse order. The stages are reachable through read-only
// accessors, valid once Ready is closed.
type Node struct {
	cfg *config.Config
	reg *plugins.Registry
	log hclog.Logger

	mu    sync.Mutex
	addrs map[string]net.Addr

	// parts is the partition and retention job; partsDone says its first
	// round ran before the listeners opened.
	parts     *store.Partitioner
	partsDone bool
	// migrated is set once the database is created and migrated; a node
	// started while Postgres was unreachable does that from the breaker's
	// probe (see startStore). startErr is why it could not at start.
	migrated atomic.Bool
	startErr error
	ready    chan struct{}
	// spoolFS replaces the spool's file system (WithSpoolFS).
	spoolFS spool.FS
	// buildVersion is the fleetcore version (WithBuildVersion).
	buildVersion string

	// The stages, set in Run before Ready.
	st      *store.Store
	batcher *ingest.Batcher
	gw      *gateway.Gateway
	pg      *ingest.PostgresTier
	// org runs the asynchronous jobs (replay, rules, scores, health).
	org *organizer.Organizer
	// rules is the live rule folder (hot reload, status for the API) and
	// ruleRunner schedules the rules over stored signals; nil when rules
	// are disabled.
	rules      *wasmrule.Dir
	ruleRunner *rules.Runner
	// ruleScan rescans the rule folder now (Reload); rulesLive is closed
	// once the first scan is done (or rules are disabled); builtinRules
	// are the rules served while the folder is missing or empty
	// (WithBuiltinRules).
	ruleScan  func()
	rulesLive chan struct{}
	// rulesStopped is closed once the rules have stopped after their
	// context ended (compiles included); nil before startRules.
	rulesStopped chan struct{}
	builtinRules fs.FS
	// Durability chain: breaker wraps pg; fo is nil without amqp.url, sp
	// without the spool; replayer runs the replay jobs.
	breaker  *ingest.Breaker
	fo       *failover.Broker
	sp       *spool.Spool
	replayer *recovery.Replayer
	// Integrity (integrity.go): device scores, alert delivery; health runs
	// the service checks; apiSrv is the HTTP server (nil when disabled).
	scorer  *integrity.Scorer
	alerts  *integrity.Publisher
	health  *health.Health
	apiSrv  *api.Server
	apiAddr net.Addr
	// dec is the drop-in decoder folder (nil without decoders.dir);
	// decAlert asks for its alert job (decoderDisabled).
	dec      *decoders
	decAlert chan struct{}
	// decLive is closed once the first scan of the decoder folder (its
	// compiles, in the background after the API opens) is done, or at
	// once without decoders.dir; decStopped once the folder's watcher
	// has returned (nil before startDecoders). decPlans are the listeners
	// naming drop-in decoders, checked against the folder after that scan
	// and by /readyz.
	decLive    chan struct{}
	decStopped chan struct{}
	decPlans   []listenerPlan
	// decScanGate, when set (tests: export_test.go), runs before the
	// first scan of the decoder folder: a compile that takes as long.
	decScanGate func(context.Context)
	// tlsSources are the certificates of TLS listeners and the API
	// (ReloadTLS).
	tlsSources []*tlsconf.Source
	// quar stores rejected frames off the read path; retention bounds
	// their table (an organizer job).
	quar      *quarantine.Writer
	retention *quarantine.Retention

	// Reload (reload.go): live is the config last applied (nil: cfg);
	// allow holds each listener's live allow-list.
	reloadMu sync.Mutex
	live     *config.Config
	allow    map[string]*atomic.Pointer[allowSet]
}

// Option changes how New prepares a node.
type Option func(*Node)

// WithBuildVersion sets the fleetcore build version, recorded as
// "builtin:<version>" on the signals of built-in decoders
// (gateway.WithBuildVersion).
func WithBuildVersion(version string) Option { return func(n *Node) { n.buildVersion = version } }

// WithBuiltinRules sets the rule files (*.wasm, *.check.hcl at the root of
// fsys) served while rules.dir is missing or holds no rule file: fleetcore
// passes the built-in rules embedded in its binary. A nil fsys means none.
func WithBuiltinRules(fsys fs.FS) Option { return func(n *Node) { n.builtinRules = fsys } }

// WithSpoolFS replaces the spool's file system (tests inject faults such
// as a full disk).
func WithSpoolFS(fs spool.FS) Option { return func(n *Node) { n.spoolFS = fs } }

// New prepares a node; Run starts it. A nil option is skipped.
func New(cfg *config.Config, reg *plugins.Registry, log hclog.Logger, opts ...Option) *Node {
	n := &Node{cfg: cfg, reg: reg, log: log, addrs: map[string]net.Addr{}, ready: make(chan struct{}), rulesLive: make(chan struct{}), decLive: make(chan struct{}), decAlert: make(chan struct{}, 1)}
	for _, o := range opts {
		if o != nil {
			o(n)
		}
	}
	return n
}

// Store is the node's Postgres store (after Ready).
func (n *Node) Store() *store.Store { return n.st }

// Batcher is the ingest stage (after Ready).
func (n *Node) Batcher() *ingest.Batcher { return n.batcher }

// Gateway is the device-facing stage (after Ready).
func (n *Node) Gateway() *gateway.Gateway { return n.gw }

// PG is the Postgres durability tier (after Ready).
func (n *Node) PG() *ingest.PostgresTier { return n.pg }

// Organizer runs the asynchronous jobs (after Ready).
func (n *Node) Organizer() *organizer.Organizer { return n.org }

// Rules is the live rule folder (after Ready; nil when rules are disabled).
func (n *Node) Rules() *wasmrule.Dir { return n.rules }

// RuleRunner schedules the rules (after Ready; nil when rules are disabled).
func (n *Node) RuleRunner() *rules.Runner { return n.ruleRunner }

// Breaker is the Postgres tier's circuit breaker (after Ready).
func (n *Node) Breaker() *ingest.Breaker { return n.breaker }

// Failover is the RabbitMQ tier (after Ready; nil without amqp.url).
func (n *Node) Failover() *failover.Broker { return n.fo }

// Spool is the disk tier (after Ready; nil when the spool is disabled).
func (n *Node) Spool() *spool.Spool { return n.sp }

// Replayer replays the failover queue and the spool (after Ready).
func (n *Node) Replayer() *recovery.Replayer { return n.replayer }

// Quarantine stores rejected frames (after Ready).
func (n *Node) Quarantine() *quarantine.Writer { return n.quar }

// Ready is closed once every listener is bound and the API serves.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// RulesLive is closed once the first scan of the rules (compiled in the
// background after Ready) is done and their jobs are on the organizer, or
// at once when rules are disabled;
// until then /readyz answers 503 "rules compiling".
func (n *Node) RulesLive() <-chan struct{} { return n.rulesLive }

// DecodersLive is closed once the first scan of the drop-in decoder folder
// (compiled in the background after Ready) is done, or at once without
// decoders.dir; until then /readyz answers 503 "decoders compiling" and
// listeners naming drop-in decoders close their connections.
func (n *Node) DecodersLive() <-chan struct{} { return n.decLive }

// Addr returns the bound address of a listener by name (after Ready).
func (n *Node) Addr(listener string) net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addrs[listener]
}

// OpenStore creates the database if configured to, connects and migrates.
func OpenStore(ctx context.Context, cfg *config.Config, log hclog.Logger) (*store.Store, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*config.Duration(cfg.Database.ConnectTimeout)+10*time.Second)
	defer cancel()
	if *cfg.Database.CreateDatabase {
		created, err := store.EnsureDatabase(cctx, cfg.Database.URL)
		if err != nil {
			return nil, err
		}
		if created {
			log.Info("created database")
		}
	}
	st, err := store.Open(cctx, cfg.Database.URL, store.Options{
		MaxConns: int32(cfg.Database.MaxConns), ConnectTimeout: config.Duration(cfg.Database.ConnectTimeout), Log: log,
	})
	if err != nil {
		return nil, err
	}
	applied, err := st.MigrateAll(cctx)
	if err != nil {
		st.Close()
		return nil, err
	}
	if len(applied) > 0 {
		log.Info("applied migrations", "versions", applied)
	}
	return st, nil
}

// startStore opens the store. When Postgres cannot be reached
// (store.Unreachable: no connection, or an answer of the kind a server
// gives while starting, shutting down or out of connections; a failed
// login, a missing database or a failing migration are refusals) and a
// later tier (RabbitMQ or the spool) can hold batches,
// the node starts
// anyway: devices are acked through that tier, and the Postgres breaker's
// probe creates and migrates the database once it answers, after which
// the replay moves the backlog in. Otherwise the error stops the start.
func (n *Node) startStore(ctx context.Context) (*store.Store, error) {
	cfg := n.cfg
	st, err := OpenStore(ctx, cfg, n.log.Named("store"))
	if err == nil {
		n.migrated.Store(true)
		return st, nil
	}
	if ctx.Err() != nil || !store.Unreachable(err) || (len(cfg.AMQP.Endpoints()) == 0 && !*cfg.Spool.Enabled) {
		return nil, err
	}
	st, oerr := store.Open(ctx, cfg.Database.URL, store.Options{
		MaxConns: int32(cfg.Database.MaxConns), ConnectTimeout: config.Duration(cfg.Database.ConnectTimeout),
		Log: n.log.Named("store"),
	})
	if oerr != nil {
		return nil, err
	}
	n.log.Warn("Postgres unreachable at start: batches go to the next tier, and the database is migrated once Postgres answers",
		"error", err)
	n.startErr = err
	return st, nil
}

// migrateThenPing is the Postgres breaker's probe while the database has
// not been migrated: it creates (if configured) and migrates it first.
// Migrations may take longer than one probe (ctx), so they run on runCtx,
// the node's.
func (n *Node) migrateThenPing(runCtx, ctx context.Context) error {
	if !n.migrated.Load() {
		mctx, cancel := context.WithTimeout(runCtx, 10*time.Minute)
		defer cancel()
		st, err := OpenStore(mctx, n.cfg, n.log.Named("store"))
		if err != nil {
			return err
		}
		st.Close()
		if n.ruleRunner != nil {
			if err := n.ruleRunner.CheckSchema(mctx); err != nil {
				// The migration sets what the check wants; this means
				// someone changed it since. The rules' watermarks would not
				// be exact: say so loudly (the check stops a normal start).
				n.log.Error("rules: schema check failed after migrating; rule results may be wrong until fixed", "error", err)
			}
		}
		n.migrated.Store(true)
		n.log.Info("Postgres answers: database migrated; replaying what the other tiers took")
	}
	return n.st.Ping(ctx)
}

// Run starts the node and blocks until ctx ends, then shuts down in order.
func (n *Node) Run(ctx context.Context) error {
	cfg := n.cfg
	// What `fleetcore validate` checks, before anything starts, except
	// what needs the drop-in decoders compiled: they compile in the
	// background (startDecoders) so that the API opens at once, and their
	// listeners wait for them like listeners naming a decoder not yet
	// dropped in; checkDecoderPlans reports what the compile finds.
	if cfg.Validate() != nil {
		_, err := planListeners(cfg, n.reg, nil) // every problem at once
		return err
	}
	dec, err := openDecoders(cfg, n.reg, n.log.Named("decoders"), n.decoderDisabled)
	if err != nil {
		return err
	}
	n.dec = dec
	defer dec.close(n.log)
	if dec == nil {
		close(n.decLive)
	}
	plans, err := planListeners(cfg, n.reg, dec)
	if err != nil {
		return err
	}
	for _, p := range plans {
		if p.waiting {
			n.decPlans = append(n.decPlans, p)
		}
	}
	st, err := n.startStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	n.st = st
	n.pg = &ingest.PostgresTier{Store: st}
	tiers, closeTiers, err := n.buildTiers(ctx)
	if err != nil {
		return err
	}
	defer closeTiers()
	n.batcher = ingest.New(ingest.Config{
		MaxSignals:   cfg.Ingest.BatchMaxSignals,
		MaxAge:       config.Duration(cfg.Ingest.BatchMaxAge),
		QueueSignals: cfg.Ingest.QueueSignals,
		Writers:      cfg.Ingest.Writers,
		ParallelMin:  cfg.Ingest.ParallelMinSignals,
		WriteTimeout: config.Duration(cfg.Database.WriteTimeout),
	}, n.log.Named("ingest"), tiers...)
	n.batcher.Start()

	stopQuarantine := n.startQuarantine(st)
	defer stopQuarantine()
	n.gw = gateway.New(n.log.Named("gateway"), n.batcher, n.reject, gateway.WithLimits(gateway.Limits{
		MaxConnections: cfg.Gateway.MaxConnections, MaxBufferedBytes: cfg.Gateway.MaxBufferedBytes,
	}), gateway.WithBuildVersion(n.buildVersion))
	for _, p := range plans {
		lc := p.listenerConfig()
		if p.cfg.TLS != nil {
			src, err := n.loadTLS(fmt.Sprintf("listener %q", p.cfg.Name), p.cfg.TLS)
			if err != nil {
				n.shutdownGateway()
				return err
			}
			lc.TLS = src.Config()
		}
		lc.AllowDevice = n.liveAllow(p.cfg)
		addr, err := n.gw.Listen(lc, p.dec)
		if err != nil {
			n.shutdownGateway()
			return err
		}
		n.mu.Lock()
		n.addrs[p.cfg.Name] = addr
		n.mu.Unlock()
	}
	// The first partition round runs before devices are served: creating
	// and attaching partitions locks signals_default, which would hold
	// up the first acks of a busy start. Only with Postgres reachable at
	// start, and bounded; otherwise the organizer runs it.
	n.parts = n.partitioner()
	if n.migrated.Load() {
		pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
		if err := n.parts.Run(pctx); err != nil {
			n.log.Warn("signals partitions: first round failed, retried by the organizer", "error", err)
		} else {
			n.partsDone = true
		}
		pcancel()
	}
	n.gw.Serve()

	// Asynchronous work (organizer jobs, API) runs on its own context so
	// that it stops only after ingest has flushed.
	actx, acancel := context.WithCancel(context.Background())
	stopAsync, err := n.startAsync(actx)
	if err != nil {
		acancel()
		n.waitCompiles() // no compile writes to a cache after Run returns
		n.shutdownGateway()
		return err
	}
	close(n.ready)
	n.log.Info("fleetcore running", "node", cfg.NodeID, "listeners", len(cfg.Listeners))

	<-ctx.Done()
	n.log.Info("shutting down")
	n.shutdownGateway()
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.batcher.Close(cctx); err != nil {
		n.log.Error("flushing ingest", "error", err)
	}
	acancel()
	stopAsync()
	n.waitCompiles() // a compile still running finishes first
	n.log.Info("stopped")
	return nil
}

// waitCompiles waits, after the async context ended, for the rules and the
// decoder folder to stop (compiles included).
func (n *Node) waitCompiles() {
	if n.rulesStopped != nil {
		<-n.rulesStopped
	}
	if n.decStopped != nil {
		<-n.decStopped
	}
}

func (n *Node) shutdownGateway() {
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.gw.Shutdown(sctx); err != nil {
		n.log.Warn("gateway shutdown", "error", err)
	}
}

func allowList(ids []string) func(string) bool {
	if len(ids) == 0 {
		return nil
	}
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	return func(id string) bool { _, ok := set[id]; return ok }
}

// startQuarantine starts the quarantine writer (Node.Quarantine) and
// prepares its retention (Node.Retention, run by the organizer). The
// returned func stops the writer after its last attempt at what is queued;
// call it after the gateway has shut down.
func (n *Node) startQuarantine(st *store.Store) func() {
	q := n.cfg.Quarantine
	n.quar = quarantine.New(quarantine.Config{
		MaxRawBytes: q.MaxRawBytes, PerSourceRate: q.PerSourceRate, PerSourceBurst: q.PerSourceBurst,
		Rate: q.Rate, Burst: q.Burst, Queue: q.Queue, WriteTimeout: config.Duration(n.cfg.Database.WriteTimeout),
	}, quarantine.PGSink{DB: st.Pool()}, n.log.Named("quarantine"))
	n.retention = &quarantine.Retention{DB: st.Pool(), MaxAge: config.Duration(q.Retention), MaxRows: *q.MaxRows}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.quar.Run(ctx) }()
	return func() { cancel(); <-done }
}

// reject hands a rejected frame to the quarantine; it never blocks.
func (n *Node) reject(_ context.Context, r gateway.Rejection) {
	n.quar.Reject(quarantine.Rejection{
		Recv: r.Recv, RemoteAddr: r.RemoteAddr, Listener: r.Listener, Protocol: r.Protocol,
		DeviceID: r.DeviceID, Reason: r.Reason, Raw: r.Raw,
	})
}
