package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/plugins"
)

// listenerPlan is one configured listener with its decoder resolved and
// its options decoded: all a port needs to open.
type listenerPlan struct {
	cfg  *config.Listener
	dec  plugins.Decoder
	opts plugins.Options
	// waiting: a drop-in decoder with no version in service yet.
	waiting bool
}

// Check runs every check Run makes before it opens a port: the config's own
// validation, then each listener's protocol (known to reg, or a drop-in
// decoder of decoders.dir, supporting the listener's transport) and
// options (decoded and validated by the decoder's declaration). With a
// decoder folder configured it loads the folder (compile and self-test,
// as serve does); a listener naming a decoder the folder does not serve
// (yet) is accepted, as serve starts it and waits for one. It returns a
// *config.Error with one problem per line, each naming file:line, or nil.
// `fleetcore validate` is this function, so it passes exactly the configs
// serve starts with.
func Check(cfg *config.Config, reg *plugins.Registry) error {
	if cfg.Validate() != nil {
		_, err := planListeners(cfg, reg, nil) // every problem, without loading anything
		return err
	}
	decs, err := openDecoders(cfg, reg, hclog.NewNullLogger(), nil)
	if err != nil {
		return err
	}
	defer decs.close(hclog.NewNullLogger())
	if decs != nil {
		decs.scan(context.Background())
	}
	_, err = planListeners(cfg, reg, decs)
	return err
}

// planListeners is Check returning what it resolved, against the decoder
// folder decs (nil: built-in decoders only).
func planListeners(cfg *config.Config, reg *plugins.Registry, decs *decoders) ([]listenerPlan, error) {
	e := &config.Error{}
	e.Merge(cfg.File, cfg.Validate())
	plans := make([]listenerPlan, 0, len(cfg.Listeners))
	for _, lc := range cfg.Listeners {
		name := fmt.Sprintf("listener %q", lc.Name)
		dec, ok := reg.Lookup(lc.Protocol)
		if !ok && decs != nil && wasmName.MatchString(lc.Protocol) {
			if p, ok := planWASM(e, lc, decs); ok {
				plans = append(plans, p)
			}
			continue
		}
		if !ok {
			hint := ""
			if lc.Where("protocol") == lc.Where("") {
				hint = "; without a protocol attribute the label names it"
			}
			if decs != nil {
				hint += fmt.Sprintf("; a drop-in decoder of %s is named [a-z0-9_], at most 32 bytes", decs.dir.Path())
			}
			e.Add(lc.Where("protocol"), "%s: unknown protocol %q (known: %s%s)", name, lc.Protocol, strings.Join(reg.Names(), ", "), hint)
			continue
		}
		info := dec.Info()
		tr := plugins.Transport(lc.Transport)
		if (tr == plugins.TCP || tr == plugins.UDP) && !slices.Contains(info.Transports, tr) {
			e.Add(lc.Where("transport"), "%s: protocol %s does not support transport %s (it supports %s)", name, info.Name, tr, transports(info.Transports))
		}
		opts, err := plugins.DecodeOptions(dec, lc.Options)
		if err != nil {
			addOptionProblems(e, lc, err)
			continue
		}
		plans = append(plans, listenerPlan{cfg: lc, dec: dec, opts: opts})
	}
	e.Sort()
	return plans, e.Err()
}

// planWASM plans a listener naming a drop-in decoder: checked against the
// version in service, or waiting for one.
func planWASM(e *config.Error, lc *config.Listener, decs *decoders) (listenerPlan, bool) {
	b := decs.dir.Bind(lc.Protocol, lc.Options)
	p := listenerPlan{cfg: lc, dec: b}
	if !decs.dir.Loaded(lc.Protocol) {
		p.waiting = true
		return p, true
	}
	name := fmt.Sprintf("listener %q", lc.Name)
	info := b.Info()
	ok := true
	if tr := plugins.Transport(lc.Transport); (tr == plugins.TCP || tr == plugins.UDP) && !slices.Contains(info.Transports, tr) {
		current, _ := b.Slot().Current()
		e.Add(lc.Where("transport"), "%s: decoder %s %s (%s) does not support transport %s (it supports %s)",
			name, info.Name, current, decs.dir.Path(), tr, transports(info.Transports))
		ok = false
	}
	if err := b.Options(); err != nil {
		addOptionProblems(e, lc, err)
		ok = false
	}
	return p, ok
}

// addOptionProblems reports DecodeOptions' errors, each at its key's line.
func addOptionProblems(e *config.Error, lc *config.Listener, err error) {
	name := fmt.Sprintf("listener %q", lc.Name)
	for _, oe := range splitJoined(err) {
		var perOpt *plugins.OptionError
		if errors.As(oe, &perOpt) {
			e.Add(lc.OptionWhere(perOpt.Key), "%s: %v", name, oe)
		} else {
			e.Add(lc.Where("options"), "%s: %v", name, oe)
		}
	}
}

// splitJoined returns the errors joined in err (errors.Join), else err.
func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func transports(ts []plugins.Transport) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// listenerConfig is the gateway's view of a planned listener.
func (p listenerPlan) listenerConfig() gateway.ListenerConfig {
	lc := p.cfg
	return gateway.ListenerConfig{
		Name: lc.Name, Transport: plugins.Transport(lc.Transport), Address: lc.Address,
		MaxFrame: lc.MaxFrame, MaxConnections: lc.MaxConnections, MaxConnectionsPerIP: lc.MaxConnectionsPerIP,
		ReadTimeout: config.Duration(lc.ReadTimeout), FrameTimeout: config.Duration(lc.FrameTimeout),
		MaxFramesInFlight: lc.MaxFramesInFlight, MaxBytesInFlight: lc.MaxBytesInFlight,
		AllowDevice:   allowList(lc.AllowDevices),
		Options:       p.opts,
		ProxyProtocol: lc.ProxyProtocol,
	}
}
