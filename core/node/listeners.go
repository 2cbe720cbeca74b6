package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"

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
}

// Check runs every check Run makes before it opens a port: the config's own
// validation, then each listener's protocol (known to reg, supporting the
// listener's transport) and options (decoded and validated by the
// decoder's declaration). It returns a *config.Error with one problem per
// line, each naming file:line, or nil. `fleetcore validate` is this
// function, so it passes exactly the configs serve starts with.
func Check(cfg *config.Config, reg *plugins.Registry) error {
	_, err := planListeners(cfg, reg)
	return err
}

// planListeners is Check returning what it resolved.
func planListeners(cfg *config.Config, reg *plugins.Registry) ([]listenerPlan, error) {
	e := &config.Error{}
	e.Merge(cfg.File, cfg.Validate())
	plans := make([]listenerPlan, 0, len(cfg.Listeners))
	for _, lc := range cfg.Listeners {
		name := fmt.Sprintf("listener %q", lc.Name)
		dec, ok := reg.Lookup(lc.Protocol)
		if !ok {
			hint := ""
			if lc.Where("protocol") == lc.Where("") {
				hint = "; without a protocol attribute the label names it"
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
			for _, oe := range splitJoined(err) {
				var perOpt *plugins.OptionError
				if errors.As(oe, &perOpt) {
					e.Add(lc.OptionWhere(perOpt.Key), "%s: %v", name, oe)
				} else {
					e.Add(lc.Where("options"), "%s: %v", name, oe)
				}
			}
			continue
		}
		plans = append(plans, listenerPlan{cfg: lc, dec: dec, opts: opts})
	}
	e.Sort()
	return plans, e.Err()
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
		AllowDevice: allowList(lc.AllowDevices),
		Options:     p.opts,
	}
}
