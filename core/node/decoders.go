package node

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/health"
	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
)

// JobDecoderAlerts opens decoder_disabled alerts for disabled decoder
// versions and clears those whose file changed or left the folder.
const JobDecoderAlerts = "decoders.alerts"

// wasmName is what a drop-in decoder's name may be (the ABI's meta.name).
var wasmName = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// decoders is the drop-in WASM decoder folder of a node (nil when
// decoders.dir is not set).
type decoders struct {
	host *wasmdecoder.Host
	dir  *wasmdecoder.Dir
	log  hclog.Logger
}

// openDecoders makes the decoder host and the folder, not loaded yet
// (decoders.scan loads it); nil without decoders.dir. A missing folder is
// watched for (and the compilation cache then stays in memory, so a node
// without decoders leaves no folders behind).
func openDecoders(cfg *config.Config, reg *plugins.Registry, log hclog.Logger, onDisable func(wasmdecoder.Disabled)) (*decoders, error) {
	dc := cfg.Decoders
	if dc.Dir == "" {
		return nil, nil
	}
	cacheDir := dc.CacheDir
	if _, err := os.Stat(dc.Dir); err != nil {
		cacheDir = ""
	}
	builtin := func(name string) bool { _, ok := reg.Lookup(name); return ok }
	host, err := wasmdecoder.NewHost(wasmdecoder.Config{
		CacheDir:         cacheDir,
		MemoryLimitPages: uint32(dc.MemoryLimitMiB) * 16, // 64 KiB pages
		Budget:           config.Duration(dc.Budget),
		MaxFailures:      dc.MaxFailures,
		Logger:           log.Named("host"),
		Reserved:         builtin,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the decoder host: %w", err)
	}
	dir := wasmdecoder.NewDir(host, wasmdecoder.DirConfig{
		Path: dc.Dir, Poll: config.Duration(dc.Poll), Builtin: builtin, OnDisable: onDisable, Logger: log,
	})
	return &decoders{host: host, dir: dir, log: log}, nil
}

// scan loads the folder once (compiling and self-testing each file). An
// unreadable folder is logged and retried by Dir.Run; listeners naming
// its decoders wait like those naming a missing one.
func (d *decoders) scan(ctx context.Context) {
	if err := d.dir.Scan(ctx); err != nil && ctx.Err() == nil {
		d.log.Error("scanning decoder folder", "dir", d.dir.Path(), "error", err)
	}
}

// close takes every version out of service and closes the host (after the
// gateway has stopped: no session is left).
func (d *decoders) close(log hclog.Logger) {
	if d == nil {
		return
	}
	d.dir.Close()
	if err := d.host.Close(context.Background()); err != nil {
		log.Warn("closing decoder host", "error", err)
	}
}

// Decoders is the drop-in decoder folder (nil when decoders.dir is not
// set; valid once Ready is closed).
func (n *Node) Decoders() *wasmdecoder.Dir {
	if n.dec == nil {
		return nil
	}
	return n.dec.dir
}

// decoderDisabled asks for the alert job at once for a version just
// disabled (the job opens the alert). It runs in the failing session's
// call, possibly before the organizer exists: it never blocks.
func (n *Node) decoderDisabled(wasmdecoder.Disabled) {
	select {
	case n.decAlert <- struct{}{}:
	default: // one is pending already
	}
}

// syncDecoderAlerts opens a decoder_disabled alert for every decoder with
// a disabled version in the folder, and clears the alert of every other.
func (n *Node) syncDecoderAlerts(ctx context.Context) error {
	pool := n.st.Pool()
	disabled := map[string]wasmdecoder.Status{}
	for _, s := range n.dec.dir.Status() {
		if s.State == wasmdecoder.StateDisabled {
			disabled[s.Name] = s
		}
	}
	changed := false
	for name, s := range disabled {
		current, _ := n.dec.dir.Slot(name).Current()
		serving := "no version in service: connections are refused"
		if current != "" {
			serving = "serving " + current
		}
		reason := fmt.Sprintf("decoder %s %s (%s) disabled: %s; %s", name, s.Version, s.File, s.Error, serving)
		opened, err := integrity.OpenAlert(ctx, pool, integrity.DecoderSubject(name), integrity.KindDecoderDisabled, reason)
		if err != nil {
			return err
		}
		if opened {
			changed = true
			n.log.Warn("alert opened", "decoder", name, "kind", integrity.KindDecoderDisabled, "reason", reason)
		}
	}
	subjects, err := integrity.OpenSubjects(ctx, pool, integrity.KindDecoderDisabled)
	if err != nil {
		return err
	}
	for _, subj := range subjects {
		name := integrity.DecoderOfSubject(subj)
		if name == "" {
			continue
		}
		if _, still := disabled[name]; still {
			continue
		}
		reason := "the disabled version's file changed or left the folder"
		if current, _ := n.dec.dir.Slot(name).Current(); current != "" {
			reason += "; serving " + current
		}
		ok, err := integrity.ClearAlert(ctx, pool, subj, integrity.KindDecoderDisabled, reason)
		if err != nil {
			return err
		}
		if ok {
			changed = true
			n.log.Info("alert cleared", "decoder", name, "kind", integrity.KindDecoderDisabled, "reason", reason)
		}
	}
	if changed {
		n.org.Trigger(JobAlerts)
	}
	return nil
}

// DecodersCompiling is the reason /readyz gives while the first scan of
// the drop-in decoder folder (compile and self-test of each file) runs.
const DecodersCompiling = "decoders compiling"

// startDecoders loads the decoder folder in the background, then watches
// it until ctx ends, and adds the alert job. n.decLive is closed once the
// first scan is done; then the listeners naming drop-in decoders are
// checked against what loaded (checkDecoderPlans). Close happens in Run,
// after the gateway stopped; n.decStopped is closed once nothing of the
// folder runs any more.
func (n *Node) startDecoders(ctx context.Context) {
	if n.dec == nil {
		return
	}
	n.decStopped = make(chan struct{})
	go func() {
		defer close(n.decStopped)
		start := time.Now()
		if n.decScanGate != nil {
			n.decScanGate(ctx)
		}
		n.dec.scan(ctx)
		if ctx.Err() != nil {
			return
		}
		close(n.decLive)
		n.log.Named("decoders").Info("decoder folder loaded", "dir", n.dec.dir.Path(), "live", n.dec.dir.Names(),
			"took", time.Since(start).Round(time.Millisecond))
		n.checkDecoderPlans()
		if err := n.dec.dir.Run(ctx); err != nil {
			n.log.Named("decoders").Error("decoder folder", "error", err)
		}
	}()
	n.org.Add(organizer.Job{Name: JobDecoderAlerts, Interval: config.Duration(n.cfg.Decoders.Poll), Run: n.syncDecoderAlerts})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-n.decAlert:
				n.org.Trigger(JobDecoderAlerts)
			}
		}
	}()
}

// checkDecoderPlans logs, after the first scan of the decoder folder, what
// `fleetcore validate` would refuse in a listener naming a drop-in decoder
// (a transport or options the version in service does not take) and each
// listener whose decoder no file provides: those listeners start and close
// their connections (not quarantined) until a version that takes them
// loads, and /readyz names them (decoderPending).
func (n *Node) checkDecoderPlans() {
	log := n.log.Named("decoders")
	for _, p := range n.decPlans {
		if !n.dec.dir.Loaded(p.cfg.Protocol) {
			_, why := n.dec.dir.Slot(p.cfg.Protocol).Current()
			log.Error("listener names a drop-in decoder with no version in service: it closes its connections (not quarantined) until one loads",
				"listener", p.cfg.Name, "decoder", p.cfg.Protocol, "dir", n.dec.dir.Path(), "why", why)
			continue
		}
		e := &config.Error{}
		planWASM(e, p.cfg, n.dec)
		if err := e.Err(); err != nil {
			log.Error("listener refused by its drop-in decoder: it closes its connections until its config or the decoder changes",
				"listener", p.cfg.Name, "decoder", p.cfg.Protocol, "error", err)
		}
	}
}

// decoderPending is what /readyz says of the drop-in decoders:
// DecodersCompiling during the first scan of the folder, then, while any,
// the listeners that cannot open a session (no version of their decoder in
// service, or one refusing their transport or options), "" otherwise.
func (n *Node) decoderPending() string {
	select {
	case <-n.decLive:
	default:
		return DecodersCompiling
	}
	if n.dec == nil {
		return ""
	}
	var out []string
	for _, p := range n.decPlans {
		b := p.dec.(*wasmdecoder.Binding)
		if why := bindingProblem(p.cfg, b); why != "" {
			out = append(out, fmt.Sprintf("listener %q: %s", p.cfg.Name, why))
		}
	}
	return strings.Join(out, "; ")
}

// bindingProblem is why listener lc cannot open a session of its drop-in
// decoder b now ("" when it can).
func bindingProblem(lc *config.Listener, b *wasmdecoder.Binding) string {
	current, why := b.Slot().Current()
	if current == "" {
		return fmt.Sprintf("decoder %s has no version in service (%s)", lc.Protocol, why)
	}
	if tr := plugins.Transport(lc.Transport); (tr == plugins.TCP || tr == plugins.UDP) && !slices.Contains(b.Info().Transports, tr) {
		return fmt.Sprintf("decoder %s %s does not take transport %s", lc.Protocol, current, tr)
	}
	if err := b.Options(); err != nil {
		return fmt.Sprintf("decoder %s %s refuses the options: %v", lc.Protocol, current, err)
	}
	return ""
}

// decoderHealth is the "decoders" service check: degraded while a version
// is disabled or a file is refused, or a listener waits for a decoder.
// live is the node's decLive: until it is closed the first scan runs.
type decoderHealth struct {
	d    *decoders
	live <-chan struct{}
}

var _ health.Checker = decoderHealth{}

func (h decoderHealth) Check(context.Context) (string, string) {
	if h.d == nil {
		return health.StatusOK, "no decoder folder configured"
	}
	select {
	case <-h.live:
	default:
		return health.StatusWarn, fmt.Sprintf("compiling the decoders of %s (start): their listeners close connections until then", h.d.dir.Path())
	}
	var live, disabled, refused, missing int
	for _, s := range h.d.dir.Status() {
		switch s.State {
		case wasmdecoder.StateLive:
			live++
		case wasmdecoder.StateDisabled:
			disabled++
		case wasmdecoder.StateRefused:
			refused++
		case wasmdecoder.StateMissing:
			missing++
		}
	}
	detail := fmt.Sprintf("%d decoders live in %s; %d versions disabled, %d files refused, %d names without a version (GET /api/decoders)",
		live, h.d.dir.Path(), disabled, refused, missing)
	if disabled+refused+missing > 0 {
		return health.StatusWarn, detail
	}
	return health.StatusOK, detail
}
