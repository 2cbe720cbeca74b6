package node

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
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
// running node: the log level, the listeners' allow-lists and the
// integrity thresholds change at once; every other changed key is logged
// as needing a restart and keeps its running value. A next that does not
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
		for _, k := range changedKeys(l, nl, "allow_devices") {
			restart = append(restart, fmt.Sprintf("listener %q %s", l.Name, k))
		}
	}
	for _, l := range next.Listeners {
		if !slices.ContainsFunc(n.cfg.Listeners, func(o *config.Listener) bool { return o.Name == l.Name }) {
			restart = append(restart, fmt.Sprintf("listener %q (added)", l.Name))
		}
	}
	restart = append(restart, changedKeys(n.cfg, next, "log_level", "listener", "integrity")...)
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
