package node

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/core/integrity"
)

// Live settings: what Reload changes while the node runs. Every other key
// is read once at start; Reload names the ones that changed and need a
// restart.

// allowSet is one listener's device allow-list; nil allows every device.
type allowSet map[string]struct{}

func newAllowSet(ids []string) allowSet {
	if len(ids) == 0 {
		return nil
	}
	s := make(allowSet, len(ids))
	for _, id := range ids {
		s[id] = struct{}{}
	}
	return s
}

// liveAllow returns the listener's allow-list check: it reads the list
// Reload last stored, so a reload changes it for the next login.
func (n *Node) liveAllow(lc *config.Listener) func(string) bool {
	p := new(atomic.Pointer[allowSet])
	s := newAllowSet(lc.AllowDevices)
	p.Store(&s)
	n.mu.Lock()
	if n.allow == nil {
		n.allow = map[string]*atomic.Pointer[allowSet]{}
	}
	n.allow[lc.Name] = p
	n.mu.Unlock()
	return func(id string) bool {
		s := *p.Load()
		if s == nil {
			return true
		}
		_, ok := s[id]
		return ok
	}
}

// Reload applies next (a re-read of the config file, SIGHUP) to the
// running node: the log level, the listeners' allow-lists, the limits of
// TCP listeners (liveListenerKeys), the integrity thresholds, the rules'
// schedule and modes (liveRuleKeys) and the API tokens change at once, and
// the rule folder is rescanned; every other changed key is logged as
// needing a restart and keeps its running value. (TLS certificates are
// re-read by ReloadTLS.) A next that does not
// validate changes nothing. It reports the keys applied and the keys that
// need a restart.
func (n *Node) Reload(next *config.Config) (applied, restart []string, err error) {
	if err := next.Validate(); err != nil {
		return nil, nil, fmt.Errorf("reloading config: %w", err)
	}
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	cur := n.live
	if cur == nil {
		cur = n.cfg
	}
	// The tokens first: the only part that can still refuse the config
	// (api.New's rules), before anything else changed.
	changed, err := n.reloadTokens(cur, next)
	if err != nil {
		return nil, nil, err
	}
	if changed {
		applied = append(applied, "api tokens")
	}
	if n.scorer != nil && !reflect.DeepEqual(integrity.ParamsFrom(cur.Integrity), integrity.ParamsFrom(next.Integrity)) {
		n.scorer.SetParams(integrity.ParamsFrom(next.Integrity))
		n.log.Info("config reload: integrity thresholds changed")
		applied = append(applied, "integrity")
	}
	nextByName := map[string]*config.Listener{}
	for _, l := range next.Listeners {
		nextByName[l.Name] = l
	}
	curByName := map[string]*config.Listener{}
	for _, l := range cur.Listeners {
		curByName[l.Name] = l
	}
	for _, l := range n.cfg.Listeners {
		nl, ok := nextByName[l.Name]
		if !ok {
			restart = append(restart, fmt.Sprintf("listener %q (removed)", l.Name))
			continue
		}
		cl := curByName[l.Name]
		if cl == nil { // removed by an earlier reload, back now
			cl = l
		}
		skip := []string{"allow_devices"}
		if l.Transport == "tcp" && nl.Transport == "tcp" && n.gw != nil {
			skip = append(skip, liveListenerKeys...)
			if keys := changedKeys(cl, nl, nonLive(cl, liveListenerKeys)...); len(keys) > 0 {
				err := n.gw.SetListenerLimits(l.Name, gateway.ListenerLimits{
					MaxFrame: nl.MaxFrame, MaxConnections: nl.MaxConnections, MaxConnectionsPerIP: nl.MaxConnectionsPerIP,
					ReadTimeout: config.Duration(nl.ReadTimeout), FrameTimeout: config.Duration(nl.FrameTimeout),
				})
				if err != nil {
					n.log.Error("config reload: listener limits not applied", "listener", l.Name, "error", err)
				} else {
					n.log.Info("config reload: listener limits changed", "listener", l.Name, "keys", strings.Join(keys, ", "))
					for _, k := range keys {
						applied = append(applied, fmt.Sprintf("listener %q %s", l.Name, k))
					}
				}
			}
		}
		if !slices.Equal(cl.AllowDevices, nl.AllowDevices) {
			n.mu.Lock()
			p := n.allow[l.Name]
			n.mu.Unlock()
			if p != nil {
				s := newAllowSet(nl.AllowDevices)
				p.Store(&s)
				n.log.Info("config reload: allow-list changed", "listener", l.Name,
					"added", missing(nl.AllowDevices, cl.AllowDevices), "removed", missing(cl.AllowDevices, nl.AllowDevices))
				applied = append(applied, fmt.Sprintf("listener %q allow_devices", l.Name))
			}
		}
		for _, k := range changedKeys(l, nl, skip...) {
			restart = append(restart, fmt.Sprintf("listener %q %s", l.Name, k))
		}
	}
	for _, l := range next.Listeners {
		if !slices.ContainsFunc(n.cfg.Listeners, func(o *config.Listener) bool { return o.Name == l.Name }) {
			restart = append(restart, fmt.Sprintf("listener %q (added)", l.Name))
		}
	}
	ra, rr := n.reloadRules(cur, next)
	applied, restart = append(applied, ra...), append(restart, rr...)
	restart = append(restart, changedKeys(n.cfg, next, "log_level", "listener", "integrity", "rules", "api")...)
	restart = append(restart, changedBlockKeys("api", n.cfg.API, next.API, "token", "read_token", "admin_token")...)
	restart = append(restart, changedBlockKeys("integrity", n.cfg.Integrity, next.Integrity, liveIntegrityKeys...)...)
	if len(restart) > 0 {
		n.log.Warn("config reload: changed keys need a restart to apply; they keep their running values", "keys", strings.Join(restart, ", "))
	}
	if len(applied) == 0 && len(restart) == 0 && next.LogLevel == cur.LogLevel {
		n.log.Info("config reload: nothing changed")
	}
	// The level changes last, so that what this reload did is logged at
	// the level the operator ran with.
	if next.LogLevel != cur.LogLevel {
		n.log.Info("config reload: log level changed", "from", cur.LogLevel, "to", next.LogLevel)
		n.log.SetLevel(hclog.LevelFromString(next.LogLevel))
		applied = append(applied, "log_level")
	}
	n.live = next
	return applied, restart, nil
}

// liveListenerKeys are the listener keys Reload applies to a TCP listener
// (gateway.SetListenerLimits); a UDP listener's need a restart.
var liveListenerKeys = []string{"max_frame", "max_connections", "max_connections_per_ip", "read_timeout", "frame_timeout"}

// liveRuleKeys are the rules keys Reload applies (rules.Runner.SetLive).
var liveRuleKeys = []string{"interval", "intervals", "batch_size", "max_batch_size", "sample", "mode", "backfill"}

// nonLive lists the HCL keys of the struct v not in live (the skip list
// that makes changedKeys compare only the live ones).
func nonLive(v any, live []string) []string {
	var out []string
	t := reflect.Indirect(reflect.ValueOf(v)).Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("hcl"), ",")
		if name != "" && !slices.Contains(live, name) {
			out = append(out, name)
		}
	}
	return out
}

// reloadTokens hands changed API tokens to the API server. changed is
// false when none changed (or the API is off); err says why the server
// refused them (nothing changed then).
func (n *Node) reloadTokens(cur, next *config.Config) (changed bool, err error) {
	c, x := cur.API, next.API
	if c.Token == x.Token && c.ReadToken == x.ReadToken && c.AdminToken == x.AdminToken {
		return false, nil
	}
	n.mu.Lock()
	srv := n.apiSrv
	n.mu.Unlock()
	if srv == nil {
		return false, nil // the API is off: its start reads them
	}
	if err := srv.SetTokens(x.Token, x.ReadToken, x.AdminToken); err != nil {
		return false, fmt.Errorf("reloading config: api tokens: %w", err)
	}
	var keys []string
	for _, k := range []struct {
		name string
		a, b string
	}{{"token", c.Token, x.Token}, {"read_token", c.ReadToken, x.ReadToken}, {"admin_token", c.AdminToken, x.AdminToken}} {
		if k.a != k.b {
			keys = append(keys, "api."+k.name)
		}
	}
	n.log.Info("config reload: api tokens changed (dashboard sessions of a replaced token end)", "keys", strings.Join(keys, ", "))
	return true, nil
}

// reloadRules applies the live rules keys to the rule runner and rescans
// the rule folder (in the background: new files compile there); it
// returns the keys applied and the rules keys that need a restart.
func (n *Node) reloadRules(cur, next *config.Config) (applied, restart []string) {
	restart = changedBlockKeys("rules", n.cfg.Rules, next.Rules, append([]string{"check"}, liveRuleKeys...)...)
	if !sameChecks(n.cfg.Rules.Checks, next.Rules.Checks) {
		restart = append(restart, "rules.check")
	}
	if n.ruleRunner == nil {
		return nil, append(restart, changedBlockKeys("rules", n.cfg.Rules, next.Rules, nonLive(next.Rules, liveRuleKeys)...)...)
	}
	if keys := changedBlockKeys("rules", cur.Rules, next.Rules, nonLive(next.Rules, liveRuleKeys)...); len(keys) > 0 {
		n.ruleRunner.SetLive(n.runnerConfig(next.Rules))
		n.log.Info("config reload: rules settings changed", "keys", strings.Join(keys, ", "))
		applied = append(applied, keys...)
	}
	if scan := n.ruleScan; scan != nil {
		go scan()
	}
	return applied, restart
}

// sameChecks reports whether two rules blocks have the same checks (by
// name and compiled module; their HCL bodies differ with their lines).
func sameChecks(a, b []config.RuleCheck) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name {
			return false
		}
		ma, erra := a[i].Compile()
		mb, errb := b[i].Compile()
		if (erra == nil) != (errb == nil) || (erra == nil && !bytes.Equal(ma.Wasm, mb.Wasm)) {
			return false
		}
	}
	return true
}

// liveIntegrityKeys are the integrity keys Reload applies (the scorer's
// Params); the webhook is read at start.
var liveIntegrityKeys = []string{"enter_below", "clear_above", "enter_windows", "clear_windows", "gps_broken_after", "clock_drift_limit", "expected_interval"}

// missing lists the ids of a not in b.
func missing(a, b []string) []string {
	var out []string
	for _, id := range a {
		if !slices.Contains(b, id) {
			out = append(out, id)
		}
	}
	return out
}

// changedKeys compares two config structs (or pointers to them) field by
// field and returns the HCL names of the exported fields that differ,
// descending into blocks ("database.url"); skip names keys not to report.
func changedKeys(a, b any, skip ...string) []string {
	return diffStruct("", reflect.Indirect(reflect.ValueOf(a)), reflect.Indirect(reflect.ValueOf(b)), skip)
}

func changedBlockKeys(block string, a, b any, skip ...string) []string {
	return diffStruct(block+".", reflect.Indirect(reflect.ValueOf(a)), reflect.Indirect(reflect.ValueOf(b)), skip)
}

func diffStruct(prefix string, a, b reflect.Value, skip []string) []string {
	var out []string
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("hcl"), ",")
		if !f.IsExported() || name == "" || slices.Contains(skip, name) {
			continue
		}
		av, bv := a.Field(i), b.Field(i)
		if f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct {
			if av.IsNil() || bv.IsNil() {
				if av.IsNil() != bv.IsNil() {
					out = append(out, prefix+name)
				}
				continue
			}
			out = append(out, diffStruct(prefix+name+".", av.Elem(), bv.Elem(), nil)...)
			continue
		}
		if !reflect.DeepEqual(av.Interface(), bv.Interface()) {
			out = append(out, prefix+name)
		}
	}
	return out
}
