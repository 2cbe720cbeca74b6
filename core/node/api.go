package node

import (
	"context"
	"net"

	"github.com/fleetcore/fleetcore/core/api"
	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/metrics"
	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/quarantine"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
)

// APIAddr is the API's bound address (after Ready; nil when disabled).
func (n *Node) APIAddr() net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.apiAddr
}

// starting is the api.Deps.Starting of the node (why /readyz is 503 while
// a storage path is up): the drop-in decoders first, as devices wait for
// them (DecodersCompiling, then listeners whose decoder cannot serve
// them), then the rules (RulesCompiling); "" once neither holds.
func (n *Node) starting() string {
	if why := n.decoderPending(); why != "" {
		return why
	}
	return n.rulesPending()
}

// startAPI binds the HTTP API (refusing a non-loopback address without a
// token) and serves it until ctx ends.
func (n *Node) startAPI(ctx context.Context) error {
	cfg := n.cfg
	if !*cfg.API.Enabled {
		return nil
	}
	lock := store.NewSessionLock(n.st.Pool(), store.MetricsLock)
	deps := api.Deps{
		DB: n.st.Pool(), Unavailable: store.Unreachable, Records: rejectedRecords{n.st},
		Health: n.health, Jobs: jobLister{n.org}, NodeID: cfg.NodeID,
		Ready:      n.readyProbes(),
		Starting:   n.starting,
		Collectors: n.collectors(),
		FleetLock:  lock,
		Summaries:  []api.Summarizer{n.batcher, n.gw},
	}
	if n.rules != nil {
		deps.Rules = ruleLister{n}
	}
	if n.scorer != nil {
		deps.Shadow = shadowReporter{n.scorer}
	}
	if n.dec != nil {
		deps.Decoders = decoderLister{n.dec.dir}
	}
	opts := api.Options{Address: cfg.API.Address, Token: cfg.API.Token, ReadToken: cfg.API.ReadToken, AdminToken: cfg.API.AdminToken, EnterBelow: cfg.Integrity.EnterBelow,
		MapTiles: cfg.API.MapTiles, MapAttribution: cfg.API.MapAttribution}
	if cfg.API.TLS != nil {
		src, err := n.loadTLS("api", cfg.API.TLS)
		if err != nil {
			return err
		}
		opts.TLS = src.Config()
	}
	srv, err := api.New(opts, deps, n.log.Named("api"))
	if err != nil {
		return err
	}
	addr, err := srv.Listen()
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.apiSrv, n.apiAddr = srv, addr
	n.mu.Unlock()
	go func() {
		defer lock.Close()
		if err := srv.Serve(ctx); err != nil {
			n.log.Error("api stopped", "error", err)
		}
	}()
	return nil
}

// collectors are the stages' metrics in the order /metrics lists them.
func (n *Node) collectors() []metrics.Collector {
	cs := []metrics.Collector{n.batcher, n.pg, n.gw, n.org, n.health, n.alerts, n.st, n.breaker}
	if n.fo != nil {
		cs = append(cs, n.fo)
	}
	if n.sp != nil {
		cs = append(cs, n.sp)
	}
	cs = append(cs, quarantine.Collector(n.quar, n.retention), n.ruleHealth())
	return cs
}

// readyProbes: the node can take traffic when Postgres, the failover
// broker or the spool can take a batch.
func (n *Node) readyProbes() []api.ReadyProbe {
	probes := []api.ReadyProbe{{Name: "postgres", Check: n.st.Ping}}
	if n.fo != nil {
		probes = append(probes, api.ReadyProbe{Name: "failover", Check: n.fo.Ready})
	}
	if n.sp != nil {
		probes = append(probes, api.ReadyProbe{Name: "spool", Check: n.sp.Ready})
	}
	return probes
}

// rejectedRecords lists rejected_records for the API.
type rejectedRecords struct{ st *store.Store }

func (r rejectedRecords) RejectedRecords(ctx context.Context, f api.RejectedFilter, fn func(api.RejectedRow) error) error {
	sf := store.RejectedFilter(f)
	if sf.DeviceID != "" {
		// Stored device IDs are store.Printable; so is a raw ID passed here.
		sf.DeviceID = store.Printable(sf.DeviceID, store.MaxPrintable)
	}
	return store.ListRejectedRecords(ctx, r.st.Pool(), sf, func(row store.RejectedRow) error { return fn(api.RejectedRow(row)) })
}

// jobLister lists the organizer's jobs for the API.
type jobLister struct{ o *organizer.Organizer }

func (l jobLister) Jobs() []api.JobStatus {
	st := l.o.Status()
	out := make([]api.JobStatus, len(st))
	for i, j := range st {
		out[i] = api.JobStatus(j)
	}
	return out
}

type ruleLister struct{ n *Node }

func (l ruleLister) Rules() []api.RuleStatus {
	var out []api.RuleStatus
	for _, s := range l.n.rules.Status() {
		if s.Name == "" {
			continue // a refused file without a loaded version
		}
		rs := api.RuleStatus{Name: s.Name, Version: s.Version, State: "active"}
		if s.Meta != nil {
			rs.Dimension, rs.Severity = s.Meta.Dimension, s.Meta.Severity
		}
		if s.Status == "disabled" {
			rs.State = "disabled"
		}
		if s.Stats != nil {
			rs.Errors, rs.LastError = s.Stats.Failed, s.Stats.LastError
			if s.Stats.Consecutive > 0 && rs.State == "active" {
				rs.State = "failing"
			}
		}
		out = append(out, rs)
	}
	return out
}

// decoderLister lists the decoder folder for the API.
type decoderLister struct{ d *wasmdecoder.Dir }

func (l decoderLister) Decoders() []api.DecoderStatus {
	st := l.d.Status()
	out := make([]api.DecoderStatus, len(st))
	for i, s := range st {
		out[i] = api.DecoderStatus(s)
	}
	return out
}

// shadowReporter hands the API what a shadow rule would change.
type shadowReporter struct{ s *integrity.Scorer }

func (r shadowReporter) ShadowImpact(ctx context.Context, rule string) ([]api.ShadowDevice, error) {
	list, err := r.s.ShadowImpact(ctx, rule)
	if err != nil {
		return nil, err
	}
	out := make([]api.ShadowDevice, len(list))
	for i, d := range list {
		out[i] = api.ShadowDevice(d)
	}
	return out, nil
}
