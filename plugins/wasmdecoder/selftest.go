package wasmdecoder

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// SelfTestBudget is the least time budget of a self-test call.
const SelfTestBudget = 5 * time.Second

// SelfTest runs the metadata's tests through the real session path: each
// test in a fresh session, its TCP frames through fc_frame (each must be
// framed whole) then fc_decode. Any mismatch is an *Error of KindInvalid
// naming the test, the frame and what differs. Load runs it; the counters
// it moves are reset after Load's run.
func (m *Module) SelfTest(ctx context.Context) error {
	var fails []string
	for i := range m.meta.Tests {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		tc := &m.meta.Tests[i]
		if err := m.runTest(tc); err != nil {
			fails = append(fails, fmt.Sprintf("test %q: %v", tc.Name, err))
		}
	}
	m.smu.Lock()
	m.stats = moduleStats{kinds: map[Kind]uint64{}, disabled: m.stats.disabled}
	m.smu.Unlock()
	if len(fails) > 0 {
		return m.errorf(KindInvalid, "self-test: %d of %d tests failed: %s", len(fails), len(m.meta.Tests), strings.Join(fails, "; "))
	}
	return nil
}

func (m *Module) runTest(tc *TestCase) error {
	raw, err := tc.rawOptions()
	if err != nil {
		return err
	}
	opts, err := plugins.DecodeOptions(m, raw)
	if err != nil {
		return fmt.Errorf("options: %w", err)
	}
	sess := m.NewSession(plugins.SessionConfig{Transport: plugins.Transport(tc.Transport), Options: opts}).(*Session)
	// A self-test checks what the guest outputs, not how fast: a busy
	// machine must not refuse a correct module.
	sess.budget = max(m.host.cfg.Budget, SelfTestBudget)
	for j := range tc.Frames {
		f := &tc.Frames[j]
		if err := m.runFrame(sess, tc.Transport == "tcp", f); err != nil {
			return fmt.Errorf("frame %d: %w", j, err)
		}
	}
	return nil
}

func (m *Module) runFrame(sess *Session, tcp bool, f *TestFrame) error {
	want := &f.Want
	var (
		res plugins.Result
		err error
	)
	if tcp {
		var n int
		n, err = sess.Frame(f.bytes)
		if err == nil && n != len(f.bytes) {
			if n == 0 {
				return fmt.Errorf("fc_frame asks for more bytes after all %d of the frame", len(f.bytes))
			}
			return fmt.Errorf("fc_frame framed %d of the frame's %d bytes", n, len(f.bytes))
		}
	}
	if err == nil {
		res, err = sess.Decode(f.bytes, time.UnixMilli(f.RecvMs).UTC())
	}
	if errors.Is(err, ErrGuest) {
		return err
	}
	if want.Error != "" {
		if err == nil {
			return fmt.Errorf("want error %s, got none", want.Error)
		}
		if !errors.Is(err, errorNames[want.Error]) {
			return fmt.Errorf("want error %s, got %v", want.Error, err)
		}
		if want.RejectHex != nil {
			if got := hex.EncodeToString(sess.Reject(err)); got != normHex(*want.RejectHex) {
				return fmt.Errorf("reject: want %s, got %s", normHex(*want.RejectHex), got)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("want no error, got %v", err)
	}
	switch {
	case want.AckHex != nil:
		if got := hex.EncodeToString(res.Ack); got != normHex(*want.AckHex) {
			return fmt.Errorf("ack: want %s, got %s", normHex(*want.AckHex), got)
		}
	case want.AckText != nil:
		if string(res.Ack) != *want.AckText {
			return fmt.Errorf("ack: want %q, got %q", *want.AckText, res.Ack)
		}
	}
	if want.Device != nil && res.DeviceID != *want.Device {
		return fmt.Errorf("device: want %q, got %q", *want.Device, res.DeviceID)
	}
	if want.Close != nil && res.Close != *want.Close {
		return fmt.Errorf("close: want %v, got %v", *want.Close, res.Close)
	}
	if want.Signals != nil {
		if len(res.Signals) != len(want.Signals) {
			return fmt.Errorf("want %d signals, got %d", len(want.Signals), len(res.Signals))
		}
		for i, w := range want.Signals {
			if err := compareSignal(&res.Signals[i], w); err != nil {
				return fmt.Errorf("signal %d: %w", i, err)
			}
		}
	}
	return nil
}

func normHex(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }

// compareSignal compares the keys of want with s.
func compareSignal(s *signal.Signal, want map[string]json.RawMessage) error {
	for _, k := range sortedKeys(want) {
		v := want[k]
		var err error
		switch k {
		case "device_id":
			var w string
			if err = json.Unmarshal(v, &w); err == nil && w != s.DeviceID {
				err = fmt.Errorf("want %q, got %q", w, s.DeviceID)
			}
		case "ts":
			err = compareTime(v, s.TS)
		case "recv":
			err = compareTime(v, s.Recv)
		case "valid":
			var w *bool
			if err = json.Unmarshal(v, &w); err == nil {
				wf := signal.Unknown
				if w != nil {
					wf = signal.FlagOf(*w)
				}
				if wf != s.Valid {
					err = fmt.Errorf("want %s, got %s", flagText(wf), flagText(s.Valid))
				}
			}
		case "dtcs":
			var w []string
			if err = json.Unmarshal(v, &w); err == nil && !slices.Equal(w, s.DTCs) && (len(w) > 0 || len(s.DTCs) > 0) {
				err = fmt.Errorf("want %q, got %q", w, s.DTCs)
			}
		case "attrs":
			err = compareAttrs(v, s.Attrs)
		default:
			f, _ := signal.FieldByName(k)
			err = compareNumber(v, s.Number(f))
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func flagText(f signal.Flag) string {
	switch f {
	case signal.True:
		return "true"
	case signal.False:
		return "false"
	}
	return "null"
}

// compareTime compares an RFC 3339 string or Unix ms number with t.
func compareTime(v json.RawMessage, t time.Time) error {
	var w time.Time
	var s string
	var ms int64
	switch {
	case json.Unmarshal(v, &s) == nil:
		p, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("want %q: not an RFC 3339 time", s)
		}
		w = p
	case json.Unmarshal(v, &ms) == nil:
		w = time.UnixMilli(ms)
	default:
		return fmt.Errorf("want %s: not a time (RFC 3339 string or Unix ms)", v)
	}
	if !w.Equal(t) {
		return fmt.Errorf("want %s, got %s", w.UTC().Format(time.RFC3339Nano), t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// compareNumber compares a JSON number (null: absent) with got.
func compareNumber(v json.RawMessage, got float64) error {
	var w *float64
	if err := json.Unmarshal(v, &w); err != nil {
		return fmt.Errorf("want %s: not a number or null", v)
	}
	if w == nil {
		if !math.IsNaN(got) {
			return fmt.Errorf("want absent, got %v", got)
		}
		return nil
	}
	if !approxEqual(*w, got) {
		return fmt.Errorf("want %v, got %v", *w, got)
	}
	return nil
}

func approxEqual(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// compareAttrs compares the listed attrs with got.
func compareAttrs(v json.RawMessage, got map[string]any) error {
	var want map[string]json.RawMessage
	if err := json.Unmarshal(v, &want); err != nil {
		return fmt.Errorf("want %s: not an object", v)
	}
	for _, k := range sortedKeys(want) {
		g, ok := got[k]
		if !ok {
			return fmt.Errorf("%s: want %s, got none", k, want[k])
		}
		var w any
		dec := json.NewDecoder(bytes.NewReader(want[k]))
		dec.UseNumber()
		if err := dec.Decode(&w); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		same := false
		switch wv := w.(type) {
		case json.Number:
			f, _ := wv.Float64()
			switch gv := g.(type) {
			case float64:
				same = approxEqual(f, gv)
			case int64:
				i, err := wv.Int64()
				same = err == nil && i == gv
			}
		case string:
			gs, ok := g.(string)
			same = ok && gs == wv
		case bool:
			gb, ok := g.(bool)
			same = ok && gb == wv
		case nil:
			same = g == nil
		}
		if !same {
			return fmt.Errorf("%s: want %s, got %v (%T)", k, want[k], g, g)
		}
	}
	return nil
}
