package node

import (
	"context"
	"fmt"
	"os"
	"regexp"

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
}

// openDecoders makes the decoder host and loads the folder once (so that
// listeners can be planned against it); nil without decoders.dir. A
// missing folder is watched for (and the compilation cache then stays in
// memory, so a node without decoders leaves no folders behind).
func openDecoders(ctx context.Context, cfg *config.Config, reg *plugins.Registry, log hclog.Logger, onDisable func(wasmdecoder.Disabled)) (*decoders, error) {
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
	if err := dir.Scan(ctx); err != nil {
		// An unreadable folder is logged and retried by Run; listeners
		// naming its decoders wait like those naming a missing one.
		log.Error("scanning decoder folder", "dir", dc.Dir, "error", err)
	}
	return &decoders{host: host, dir: dir}, nil
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

// startDecoders watches the decoder folder until ctx ends and adds the
// alert job. Close happens in Run, after the gateway stopped.
func (n *Node) startDecoders(ctx context.Context) {
	if n.dec == nil {
		return
	}
	go func() {
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

// decoderHealth is the "decoders" service check: degraded while a version
// is disabled or a file is refused, or a listener waits for a decoder.
type decoderHealth struct{ d *decoders }

var _ health.Checker = decoderHealth{}

func (h decoderHealth) Check(context.Context) (string, string) {
	if h.d == nil {
		return health.StatusOK, "no decoder folder configured"
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
