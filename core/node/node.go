package node

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/api"
	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/failover"
	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/quarantine"
	"github.com/fleetcore/fleetcore/core/recovery"
	"github.com/fleetcore/fleetcore/core/rules"
	"github.com/fleetcore/fleetcore/core/spool"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

// Node is one running fleetcore server.
type Node struct {
	cfg *config.Config
	reg *plugins.Registry
	log hclog.Logger

	mu    sync.Mutex
	addrs map[string]net.Addr
	// migrated is set once the database is created and migrated; a node
	// started while Postgres was unreachable does that from the breaker's
	// probe (see startStore). startErr is why it could not at start.
	migrated atomic.Bool
	startErr error
	runCtx   context.Context
	ready    chan struct{}
	Store    *store.Store
	Batcher  *ingest.Batcher
	Gateway  *gateway.Gateway
	PG       *ingest.PostgresTier
	// Organizer runs the asynchronous jobs (replay, rules, scores, health).
	Organizer *organizer.Organizer
	// Rules is the live rule folder (hot reload, Status for the API); nil
	// when rules are disabled.
	Rules *wasmrule.Dir
	// RuleRunner schedules the rules over stored signals (watermarks,
	// findings); nil when rules are disabled.
	RuleRunner *rules.Runner
	// Durability chain (set in Run before Ready): Breaker wraps PG;
	// Failover is nil without amqp.url; Replayer runs the replay jobs.
	Breaker  *ingest.Breaker
	Failover *failover.Broker
	Spool    *spool.Spool
	Replayer *recovery.Replayer
	// SpoolFS, when set before Run, replaces the spool's file system
	// (tests inject faults such as a full disk).
	SpoolFS spool.FS
	// Integrity stage (integrity.go): device scores, alert delivery,
	// service checks; API is the HTTP server (api.go; nil when disabled).
	Scorer      *integrity.Scorer
	Alerts      *integrity.Publisher
	Health      *integrity.Health
	API         *api.Server
	alertBroker *integrity.AMQPBroker
	apiAddr     net.Addr
	// Quarantine stores rejected frames off the read path; Retention
	// bounds their table (an organizer job).
	Quarantine *quarantine.Writer
	Retention  *quarantine.Retention
}

// New prepares a node; Run starts it.
func New(cfg *config.Config, reg *plugins.Registry, log hclog.Logger) *Node {
	return &Node{cfg: cfg, reg: reg, log: log, addrs: map[string]net.Addr{}, ready: make(chan struct{})}
}

// Ready is closed once every listener is bound.
func (n *Node) Ready() <-chan struct{} { return n.ready }

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

// unreachable reports whether a failure to open the store means Postgres
// is not there (yet) rather than that it refuses (store.Unreachable: no
// connection, or an answer of the kind a server gives while starting,
// shutting down or out of connections). A failed login, a missing
// database, a failing migration are refusals.
func unreachable(err error) bool { return store.Unreachable(err) }

// startStore opens the store. When Postgres cannot be reached (see
// unreachable) and a later tier (RabbitMQ or the spool) can hold batches,
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
	if ctx.Err() != nil || !unreachable(err) || (cfg.AMQP.URL == "" && !*cfg.Spool.Enabled) {
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
func (n *Node) migrateThenPing(ctx context.Context) error {
	if !n.migrated.Load() {
		// Migrations may take longer than one probe interval; they stop
		// with the node.
		mctx, cancel := context.WithTimeout(n.runCtx, 10*time.Minute)
		defer cancel()
		st, err := OpenStore(mctx, n.cfg, n.log.Named("store"))
		if err != nil {
			return err
		}
		st.Close()
		if n.RuleRunner != nil {
			if err := n.RuleRunner.CheckSchema(mctx); err != nil {
				// The migration sets what the check wants; this means
				// someone changed it since. The rules' watermarks would not
				// be exact: say so loudly (the check stops a normal start).
				n.log.Error("rules: schema check failed after migrating; rule results may be wrong until fixed", "error", err)
			}
		}
		n.migrated.Store(true)
		n.log.Info("Postgres answers: database migrated; replaying what the other tiers took")
	}
	return n.Store.Ping(ctx)
}

// Run starts the node and blocks until ctx ends, then shuts down in order.
func (n *Node) Run(ctx context.Context) error {
	cfg := n.cfg
	n.runCtx = ctx
	// What `fleetcore validate` checks, before anything starts.
	plans, err := planListeners(cfg, n.reg)
	if err != nil {
		return err
	}
	st, err := n.startStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	n.Store = st
	n.PG = &ingest.PostgresTier{Store: st}
	tiers, closeTiers, err := n.buildTiers(ctx)
	if err != nil {
		return err
	}
	defer closeTiers()
	n.Batcher = ingest.New(ingest.Config{
		MaxSignals:   cfg.Ingest.BatchMaxSignals,
		MaxAge:       config.Duration(cfg.Ingest.BatchMaxAge),
		QueueSignals: cfg.Ingest.QueueSignals,
		Writers:      cfg.Ingest.Writers,
		ParallelMin:  cfg.Ingest.ParallelMinSignals,
		WriteTimeout: config.Duration(cfg.Database.WriteTimeout),
	}, n.log.Named("ingest"), tiers...)
	n.Batcher.Start()

	stopQuarantine := n.startQuarantine(st)
	defer stopQuarantine()
	n.Gateway = gateway.New(n.log.Named("gateway"), n.Batcher, n.reject, gateway.WithLimits(gateway.Limits{
		MaxConnections: cfg.Gateway.MaxConnections, MaxBufferedBytes: cfg.Gateway.MaxBufferedBytes,
	}))
	for _, p := range plans {
		addr, err := n.Gateway.Listen(p.listenerConfig(), p.dec)
		if err != nil {
			n.shutdownGateway()
			return err
		}
		n.mu.Lock()
		n.addrs[p.cfg.Name] = addr
		n.mu.Unlock()
	}
	n.Gateway.Serve()

	// Asynchronous work (organizer jobs, API) runs on its own context so
	// that it stops only after ingest has flushed.
	actx, acancel := context.WithCancel(context.Background())
	stopAsync, err := n.startAsync(actx)
	if err != nil {
		acancel()
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
	if err := n.Batcher.Close(cctx); err != nil {
		n.log.Error("flushing ingest", "error", err)
	}
	acancel()
	stopAsync()
	n.log.Info("stopped")
	return nil
}

func (n *Node) shutdownGateway() {
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Gateway.Shutdown(sctx); err != nil {
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
	n.Quarantine = quarantine.New(quarantine.Config{
		MaxRawBytes: q.MaxRawBytes, PerSourceRate: q.PerSourceRate, PerSourceBurst: q.PerSourceBurst,
		Rate: q.Rate, Burst: q.Burst, Queue: q.Queue, WriteTimeout: config.Duration(n.cfg.Database.WriteTimeout),
	}, quarantine.PGSink{DB: st.Pool()}, n.log.Named("quarantine"))
	n.Retention = &quarantine.Retention{DB: st.Pool(), MaxAge: config.Duration(q.Retention), MaxRows: *q.MaxRows}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Quarantine.Run(ctx) }()
	return func() { cancel(); <-done }
}

// reject hands a rejected frame to the quarantine; it never blocks.
func (n *Node) reject(_ context.Context, r gateway.Rejection) {
	n.Quarantine.Reject(quarantine.Rejection{
		Recv: r.Recv, RemoteAddr: r.RemoteAddr, Listener: r.Listener, Protocol: r.Protocol,
		DeviceID: r.DeviceID, Reason: r.Reason, Raw: r.Raw,
	})
}
