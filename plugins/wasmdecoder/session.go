package wasmdecoder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// DefaultMaxFrame is the frame cap of a session whose listener and module
// set none.
const DefaultMaxFrame = 64 << 10

// Session is one connection (TCP) or datagram source (UDP) of a Module. It
// holds only the connection's state blob, device id, options and a pointer
// to the module: no instance, so idle connections cost a few hundred
// bytes. It is used by one goroutine at a time.
type Session struct {
	mod       *Module
	transport plugins.Transport
	cfgMax    int
	maxFrame  int
	allow     func(string) bool
	cfgOpts   plugins.Options
	opts      []byte // options JSON, interned per module
	device    string
	state     []byte
	spare     []byte // the other state buffer: a new state is copied here, then swapped
	reject    []byte
	budget    time.Duration // per call; 0 = the host's (self-tests run with more)
}

func (s *Session) callBudget() time.Duration {
	if s.budget > 0 {
		return s.budget
	}
	return s.mod.host.cfg.Budget
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.Rejecter         = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// NewSession implements plugins.Decoder; the session is a *Session.
func (m *Module) NewSession(cfg plugins.SessionConfig) plugins.Session {
	tr := cfg.Transport
	if tr == "" {
		tr = plugins.TCP
	}
	s := &Session{mod: m, transport: tr, cfgMax: cfg.MaxFrame, allow: cfg.AllowDevice, cfgOpts: cfg.Options}
	s.maxFrame = m.maxFrame(cfg.MaxFrame)
	s.opts = m.encodeOptions(cfg.Options)
	return s
}

// maxFrame is the frame cap a session hands the guest: the listener's,
// lowered to meta.max_frame.
func (m *Module) maxFrame(listener int) int {
	mf := listener
	if m.meta.MaxFrame > 0 && (mf <= 0 || m.meta.MaxFrame < mf) {
		mf = m.meta.MaxFrame
	}
	if mf <= 0 {
		mf = DefaultMaxFrame
	}
	return mf
}

// encodeOptions renders every declared option's value (the listener's,
// else the default) as the compact JSON object of the input, keys sorted.
func (m *Module) encodeOptions(o plugins.Options) []byte {
	if len(m.options) == 0 {
		return m.optionsJSON([]byte("{}"))
	}
	opts := slices.Clone(m.options)
	slices.SortFunc(opts, func(a, b plugins.Option) int {
		if a.Spec().Name < b.Spec().Name {
			return -1
		}
		return 1
	})
	b := []byte{'{'}
	for i, opt := range opts {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, opt.Spec().Name) // names are [a-z0-9_]
		b = append(b, ':')
		switch o2 := opt.(type) {
		case plugins.BoolOption:
			b = strconv.AppendBool(b, optGet(o2.Get, o, o2.Default))
		case plugins.IntOption:
			b = strconv.AppendInt(b, int64(optGet(o2.Get, o, o2.Default)), 10)
		case plugins.FloatOption:
			v, _ := json.Marshal(optGet(o2.Get, o, o2.Default))
			b = append(b, v...)
		case plugins.StringOption:
			b = appendJSONString(b, optGet(o2.Get, o, o2.Default))
		case plugins.EnumOption:
			b = appendJSONString(b, optGet(o2.Get, o, o2.Default))
		}
	}
	b = append(b, '}')
	return m.optionsJSON(b)
}

// optGet reads an option, or its default when the listener's Options were
// decoded against another declaration that lacks it (a session that moved
// to a version with a new option): plugins.Options panics on an option it
// was not decoded with.
func optGet[T any](get func(plugins.Options) T, o plugins.Options, def T) (v T) {
	defer func() {
		if recover() != nil {
			v = def
		}
	}()
	return get(o)
}

func appendJSONString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// Module returns the version this session runs.
func (s *Session) Module() *Module { return s.mod }

// State returns the session's state blob (do not modify it).
func (s *Session) State() []byte { return s.state }

// DeviceID implements plugins.DeviceIdentifier.
func (s *Session) DeviceID() string { return s.device }

// Reject implements plugins.Rejecter: the reject bytes the guest wrote
// with the last refused frame (nil when it wrote none).
func (s *Session) Reject(error) []byte { return s.reject }

// Switch moves the session to m, keeping its device id, state blob and
// configuration; call it between frames. Options are re-read for m's
// declarations (one the listener's options do not know takes m's
// default). A module with another state_version, or one that does not
// serve the session's transport, is refused (ErrStateVersion, or an
// *Error of KindInvalid) and the session is unchanged.
func (s *Session) Switch(m *Module) error {
	if m == s.mod {
		return nil
	}
	if m.StateVersion() != s.mod.StateVersion() {
		return fmt.Errorf("switching %s from %s to %s: %w (%d → %d)", m.Name(), s.mod.Version(), m.Version(),
			ErrStateVersion, s.mod.StateVersion(), m.StateVersion())
	}
	if !slices.Contains(m.info.Transports, s.transport) {
		return m.errorf(KindInvalid, "switching to %s: it does not serve %s", m.Version(), s.transport)
	}
	s.mod = m
	s.maxFrame = m.maxFrame(s.cfgMax)
	s.opts = m.encodeOptions(s.cfgOpts)
	return nil
}

func (s *Session) input(data []byte, recvMs int64) Input {
	return Input{Transport: s.transport, RecvMs: recvMs, MaxFrame: uint32(s.maxFrame),
		Options: s.opts, State: s.state, Data: data}
}

// Frame implements plugins.Session through fc_frame.
func (s *Session) Frame(buf []byte) (int, error) {
	s.reject = nil
	m := s.mod
	if err := m.enter(); err != nil {
		return 0, err
	}
	n, err := s.frame(m, buf)
	m.leave()
	// After leave: the failure callback may close the module.
	m.record(true, err)
	return n, err
}

func (s *Session) frame(m *Module, buf []byte) (int, error) {
	inst, err := m.acquire()
	if err != nil {
		return 0, err
	}
	in := s.input(buf, 0)
	view, e, dead := m.input(inst, in.Size(), s.callBudget())
	if e != nil {
		m.finish(inst, dead || e.Kind != KindABI)
		return 0, e
	}
	putInput(view, &in)
	inst.stack[0] = api.EncodeU32(inst.bufPtr)
	inst.stack[1] = api.EncodeU32(uint32(in.Size()))
	expired, err := inst.call(inst.frame, s.callBudget())
	if err != nil || expired {
		e := m.classify(inst, s.callBudget(), expired, "fc_frame", err)
		m.discard(inst)
		return 0, e
	}
	n := api.DecodeI32(inst.stack[0])
	switch {
	case n >= 0 && int(n) <= len(buf):
		m.release(inst)
		return int(n), nil
	case n > 0:
		m.release(inst)
		return 0, m.errorf(KindABI, "fc_frame returned %d for %d bytes", n, len(buf))
	}
	sentinel := sentinelOf(n)
	if sentinel == nil {
		m.release(inst)
		return 0, m.errorf(KindABI, "fc_frame returned %d: want ≥ 0 or an error code -1..-6", n)
	}
	msg, e := m.guestMessage(inst, s.callBudget())
	if e != nil {
		m.discard(inst)
		return 0, e
	}
	m.release(inst)
	if msg == "" {
		return 0, fmt.Errorf("framing %s data: %w", m.meta.Name, sentinel)
	}
	return 0, fmt.Errorf("framing %s data: %w: %s", m.meta.Name, sentinel, msg)
}

// finish returns an instance to the pool, or discards it when its state
// is suspect.
func (m *Module) finish(inst *instance, discard bool) {
	if discard {
		m.discard(inst)
		return
	}
	m.release(inst)
}

// Decode implements plugins.Session through fc_decode.
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	s.reject = nil
	m := s.mod
	if err := m.enter(); err != nil {
		return plugins.Result{DeviceID: s.device}, err
	}
	res, err := s.decode(m, frame, recv)
	m.leave()
	m.record(false, err)
	return res, err
}

func (s *Session) decode(m *Module, frame []byte, recv time.Time) (plugins.Result, error) {
	fail := plugins.Result{DeviceID: s.device}
	inst, err := m.acquire()
	if err != nil {
		return fail, err
	}
	in := s.input(frame, recv.UnixMilli())
	view, e, dead := m.input(inst, in.Size(), s.callBudget())
	if e != nil {
		m.finish(inst, dead || e.Kind != KindABI)
		return fail, e
	}
	putInput(view, &in)
	inst.stack[0] = api.EncodeU32(inst.bufPtr)
	inst.stack[1] = api.EncodeU32(uint32(in.Size()))
	expired, err := inst.call(inst.decode, s.callBudget())
	if err != nil || expired {
		e := m.classify(inst, s.callBudget(), expired, "fc_decode", err)
		m.discard(inst)
		return fail, e
	}
	caps := &m.host.cfg.Caps
	ptr, n := uint32(inst.stack[0]>>32), uint32(inst.stack[0])
	if uint64(n) > uint64(caps.Output) {
		m.release(inst)
		return fail, m.errorf(KindABI, "fc_decode output of %d bytes exceeds the cap of %d", n, caps.Output)
	}
	out, ok := inst.mem.Read(ptr, n)
	if !ok {
		m.release(inst)
		return fail, m.errorf(KindABI, "fc_decode returned %d+%d, outside memory of %d bytes", ptr, n, inst.mem.Size())
	}
	h, err := parseHeader(out, caps, m.meta.StateMax)
	if err != nil {
		m.release(inst)
		return fail, m.errorf(KindABI, "fc_decode output: %w", err)
	}
	if h.status < 0 {
		msg := sanitize(h.message)
		if len(h.reject) > 0 {
			s.reject = bytes.Clone(h.reject)
		}
		m.release(inst)
		if msg == "" {
			return fail, fmt.Errorf("decoding %s frame: %w", m.meta.Name, sentinelOf(h.status))
		}
		return fail, fmt.Errorf("decoding %s frame: %w: %s", m.meta.Name, sentinelOf(h.status), msg)
	}
	var sigs []signal.Signal
	if h.nrec > 0 {
		sigs, err = inst.rec.decode(make([]signal.Signal, 0, h.nrec), h.records, h.nrec, caps)
	}
	if err != nil {
		m.release(inst)
		if isABI(err) {
			return fail, m.errorf(KindABI, "fc_decode output: %w", err)
		}
		return fail, fmt.Errorf("decoding %s frame: %w", m.meta.Name, err)
	}
	// Copy what outlives the instance before it goes back to the pool.
	device := s.device
	if len(h.device) > 0 && string(h.device) != device {
		if !validText(h.device) {
			m.release(inst)
			return fail, fmt.Errorf("decoding %s frame: %w: device id %q is not UTF-8 text without NUL", m.meta.Name, plugins.ErrMalformed, h.device)
		}
		device = string(h.device)
	}
	var ack []byte
	if len(h.ack) > 0 {
		ack = bytes.Clone(h.ack)
	}
	stateSet := h.flags&FlagState != 0
	if stateSet {
		s.spare = append(s.spare[:0], h.state...)
	}
	m.release(inst)
	if device != s.device && s.allow != nil && !s.allow(device) {
		return plugins.Result{DeviceID: device}, fmt.Errorf("decoding %s frame: %w: %q", m.meta.Name, plugins.ErrUnauthorized, device)
	}
	if len(sigs) > 0 {
		if device == "" {
			return fail, fmt.Errorf("decoding %s frame: %w: %d records before the device identified itself", m.meta.Name, plugins.ErrNoDevice, len(sigs))
		}
		fc := bytes.Clone(frame)
		// One resend-stable server time per frame; records asking for
		// seconds (record byte 9) get it truncated, which is what a native
		// decoder stamping recv.Truncate(time.Second) stores too.
		var stamp time.Time
		for i := range sigs {
			sg := &sigs[i]
			sg.DeviceID, sg.Recv, sg.Protocol, sg.Frame, sg.DecoderVersion = device, recv, m.meta.Name, fc, m.version
			if seconds := sg.TS.Equal(stampSeconds); seconds || sg.TS.IsZero() {
				if stamp.IsZero() {
					stamp = m.times.Stamp(device, fc, recv.Truncate(time.Millisecond))
				}
				sg.TS = stamp
				if seconds {
					sg.TS = stamp.Truncate(time.Second)
				}
			}
		}
		if err := plugins.CheckSignals(sigs); err != nil {
			return plugins.Result{DeviceID: device}, fmt.Errorf("decoding %s frame: %w", m.meta.Name, err)
		}
	}
	s.device = device
	if stateSet {
		s.state, s.spare = s.spare, s.state
	}
	return plugins.Result{Signals: sigs, Ack: ack, Close: h.flags&FlagClose != 0, DeviceID: device}, nil
}
