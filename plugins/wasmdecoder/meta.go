package wasmdecoder

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Limits on metadata.
const (
	MaxMetaBytes     = 1 << 20
	MaxNameBytes     = 32
	MaxOptions       = 64
	MaxTests         = 1000
	MaxTestFrames    = 1000
	DefaultTestRecv  = 1767225600000 // 2026-01-01T00:00:00Z, the recv_ms of a test frame without one
	maxMessageBytes  = 512
	maxAttrNameBytes = 64
	maxAttrString    = 1024
	maxDTCBytes      = 16
)

var (
	decoderNameRe = regexp.MustCompile(`^[a-z0-9_]+$`)
	optionNameRe  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	versionRe     = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$`)
)

// Meta is a decoder's validated metadata (fc_meta; ABI.md "Metadata").
type Meta struct {
	Name         string       `json:"name"`
	Version      string       `json:"version"`
	ABI          int          `json:"abi"`
	Description  string       `json:"description,omitempty"`
	Transports   []string     `json:"transports"`
	DefaultPort  int          `json:"default_port"`
	MaxFrame     int          `json:"max_frame,omitempty"`
	StateVersion int          `json:"state_version"`
	StateMax     int          `json:"state_max"`
	Options      []OptionMeta `json:"options,omitempty"`
	Tests        []TestCase   `json:"tests,omitempty"`
}

// OptionMeta declares one listener option.
type OptionMeta struct {
	Name    string          `json:"name"`
	Type    string          `json:"type"` // bool, int, float, string, enum
	Default json.RawMessage `json:"default,omitempty"`
	Min     *float64        `json:"min,omitempty"`
	Max     *float64        `json:"max,omitempty"`
	Values  []string        `json:"values,omitempty"`
	Help    string          `json:"help"`
}

// TestCase is one self-test: frames fed in order through one session.
type TestCase struct {
	Name string `json:"name"`
	// Transport is tcp or udp; default tcp when the decoder supports it.
	// A tcp frame goes through fc_frame first and must be framed whole.
	Transport string `json:"transport,omitempty"`
	// Options are listener options as a listener would write them (JSON
	// strings, numbers or booleans).
	Options map[string]json.RawMessage `json:"options,omitempty"`
	Frames  []TestFrame                `json:"frames"`
}

// TestFrame is one frame of a test and what it must produce.
type TestFrame struct {
	Hex    string   `json:"hex,omitempty"`
	Text   string   `json:"text,omitempty"`
	RecvMs int64    `json:"recv_ms,omitempty"`
	Want   TestWant `json:"want"`

	bytes []byte
}

// TestWant is what a test frame must produce. Keys left out are not
// checked, except that a frame without Error must not fail.
type TestWant struct {
	// Error is the sentinel the frame must be refused with: malformed,
	// checksum, too_large, unauthorized, no_device, unsupported.
	Error     string  `json:"error,omitempty"`
	AckHex    *string `json:"ack_hex,omitempty"`
	AckText   *string `json:"ack_text,omitempty"`
	RejectHex *string `json:"reject_hex,omitempty"`
	Device    *string `json:"device,omitempty"`
	Close     *bool   `json:"close,omitempty"`
	// Signals, when present, must match in count; each object's keys are
	// compared (canonical field names, device_id, ts and recv as RFC 3339
	// or Unix ms, valid as a boolean or null, attrs (listed keys), dtcs).
	Signals []map[string]json.RawMessage `json:"signals,omitempty"`
}

// errorNames maps a test's error name to its sentinel.
var errorNames = map[string]error{
	"malformed": plugins.ErrMalformed, "checksum": plugins.ErrChecksum, "too_large": plugins.ErrTooLarge,
	"unauthorized": plugins.ErrUnauthorized, "no_device": plugins.ErrNoDevice, "unsupported": plugins.ErrUnsupported,
}

// wantKeys are the keys a want.signals object may have besides the
// canonical field names.
var wantKeys = map[string]bool{"device_id": true, "valid": true, "attrs": true, "dtcs": true}

// parseMeta decodes and validates metadata JSON against the host's caps.
// Unknown keys are errors.
func parseMeta(b []byte, caps Caps, reserved func(string) bool) (Meta, []plugins.Option, error) {
	if len(b) > MaxMetaBytes {
		return Meta{}, nil, fmt.Errorf("metadata is %d bytes, limit %d", len(b), MaxMetaBytes)
	}
	var m Meta
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Meta{}, nil, fmt.Errorf("decoding metadata JSON: %w", err)
	}
	if dec.More() {
		return Meta{}, nil, errors.New("decoding metadata JSON: trailing data")
	}
	opts, err := m.validate(caps, reserved)
	if err != nil {
		return Meta{}, nil, err
	}
	return m, opts, nil
}

func (m *Meta) validate(caps Caps, reserved func(string) bool) ([]plugins.Option, error) {
	if !decoderNameRe.MatchString(m.Name) || len(m.Name) > MaxNameBytes {
		return nil, fmt.Errorf("meta name %q: want [a-z0-9_]+ of at most %d bytes", m.Name, MaxNameBytes)
	}
	if reserved != nil && reserved(m.Name) {
		return nil, fmt.Errorf("meta name %q is a built-in decoder's name", m.Name)
	}
	if !versionRe.MatchString(m.Version) {
		return nil, fmt.Errorf("meta version %q: want a semantic version like 1.0.0", m.Version)
	}
	if m.ABI != ABIVersion {
		return nil, fmt.Errorf("meta abi %d: this host implements %d", m.ABI, ABIVersion)
	}
	if len(m.Transports) == 0 {
		return nil, errors.New("meta transports: want at least one of tcp, udp")
	}
	for i, t := range m.Transports {
		if t != "tcp" && t != "udp" || slices.Contains(m.Transports[:i], t) {
			return nil, fmt.Errorf("meta transports %q: want tcp and/or udp, each once", m.Transports)
		}
	}
	if m.DefaultPort < 1 || m.DefaultPort > 65535 {
		return nil, fmt.Errorf("meta default_port %d: want 1..65535", m.DefaultPort)
	}
	if m.MaxFrame < 0 || m.MaxFrame > math.MaxInt32 {
		return nil, fmt.Errorf("meta max_frame %d: want 0 (the listener's cap) or a positive byte count", m.MaxFrame)
	}
	if m.StateVersion < 0 || m.StateVersion > math.MaxInt32 {
		return nil, fmt.Errorf("meta state_version %d: want a whole number ≥ 0", m.StateVersion)
	}
	if m.StateMax < 0 || m.StateMax > caps.State {
		return nil, fmt.Errorf("meta state_max %d: want 0..%d (the host's state cap)", m.StateMax, caps.State)
	}
	if len(m.Options) > MaxOptions {
		return nil, fmt.Errorf("meta options: %d declared, limit %d", len(m.Options), MaxOptions)
	}
	opts := make([]plugins.Option, 0, len(m.Options))
	for i := range m.Options {
		o := &m.Options[i]
		if slices.ContainsFunc(m.Options[:i], func(p OptionMeta) bool { return p.Name == o.Name }) {
			return nil, fmt.Errorf("meta option %q declared twice", o.Name)
		}
		opt, err := o.option()
		if err != nil {
			return nil, fmt.Errorf("meta option %q: %w", o.Name, err)
		}
		opts = append(opts, opt)
	}
	if len(m.Tests) > MaxTests {
		return nil, fmt.Errorf("meta tests: %d, limit %d", len(m.Tests), MaxTests)
	}
	for i := range m.Tests {
		if err := m.validateTest(&m.Tests[i]); err != nil {
			return nil, fmt.Errorf("meta test %d %q: %w", i, m.Tests[i].Name, err)
		}
	}
	return opts, nil
}

// option turns a declaration into the plugins.Option a listener's raw
// option strings are parsed with.
func (o *OptionMeta) option() (plugins.Option, error) {
	if !optionNameRe.MatchString(o.Name) || len(o.Name) > 64 {
		return nil, errors.New("name: want snake_case ([a-z][a-z0-9_]*, at most 64 bytes)")
	}
	if strings.TrimSpace(o.Help) == "" {
		return nil, errors.New("help is empty: every option is documented")
	}
	if (o.Min != nil || o.Max != nil) && o.Type != "int" && o.Type != "float" {
		return nil, fmt.Errorf("min/max are for int and float options, not %s", o.Type)
	}
	if len(o.Values) > 0 && o.Type != "enum" {
		return nil, fmt.Errorf("values are for enum options, not %s", o.Type)
	}
	hasDefault := len(o.Default) > 0 && string(o.Default) != "null"
	var opt plugins.Option
	switch o.Type {
	case "bool":
		b := plugins.BoolOption{Name: o.Name, Doc: o.Help}
		if hasDefault && json.Unmarshal(o.Default, &b.Default) != nil {
			return nil, fmt.Errorf("default %s is not a boolean", o.Default)
		}
		opt = b
	case "int":
		n := plugins.IntOption{Name: o.Name, Doc: o.Help}
		if hasDefault {
			v, err := strconv.ParseInt(string(o.Default), 10, 64)
			if err != nil || v < math.MinInt32 || v > math.MaxInt32 {
				return nil, fmt.Errorf("default %s is not a whole number in the int32 range", o.Default)
			}
			n.Default = int(v)
		}
		lo, hi, err := intBounds(o.Min, o.Max)
		if err != nil {
			return nil, err
		}
		n.Min, n.Max = lo, hi
		if n.Min != 0 || n.Max != 0 {
			if n.Default < n.Min || n.Default > n.Max {
				return nil, fmt.Errorf("default %d outside %d..%d", n.Default, n.Min, n.Max)
			}
		}
		opt = n
	case "float":
		f := plugins.FloatOption{Name: o.Name, Doc: o.Help}
		if hasDefault && json.Unmarshal(o.Default, &f.Default) != nil {
			return nil, fmt.Errorf("default %s is not a number", o.Default)
		}
		// Both bounds 0 (an SDK writing its zero values) means unbounded, as
		// for plugins.FloatOption.
		if (o.Min != nil || o.Max != nil) && !(o.Min != nil && o.Max != nil && *o.Min == 0 && *o.Max == 0) {
			f.Min, f.Max = -math.MaxFloat64, math.MaxFloat64
			if o.Min != nil {
				f.Min = *o.Min
			}
			if o.Max != nil {
				f.Max = *o.Max
			}
			if f.Min > f.Max || f.Default < f.Min || f.Default > f.Max {
				return nil, fmt.Errorf("default %g or bounds %g..%g inconsistent", f.Default, f.Min, f.Max)
			}
		}
		opt = f
	case "string":
		s := plugins.StringOption{Name: o.Name, Doc: o.Help}
		if hasDefault && json.Unmarshal(o.Default, &s.Default) != nil {
			return nil, fmt.Errorf("default %s is not a string", o.Default)
		}
		opt = s
	case "enum":
		e := plugins.EnumOption{Name: o.Name, Values: o.Values, Doc: o.Help}
		if len(o.Values) == 0 {
			return nil, errors.New("enum without values")
		}
		for i, v := range o.Values {
			if v == "" || slices.Contains(o.Values[:i], v) {
				return nil, fmt.Errorf("enum value %q is empty or listed twice", v)
			}
		}
		if !hasDefault {
			return nil, errors.New("enum without a default")
		}
		if json.Unmarshal(o.Default, &e.Default) != nil || !slices.Contains(o.Values, e.Default) {
			return nil, fmt.Errorf("default %s is not one of %q", o.Default, o.Values)
		}
		opt = e
	default:
		return nil, fmt.Errorf("type %q: want bool, int, float, string or enum", o.Type)
	}
	return opt, nil
}

// intBounds turns JSON bounds into an IntOption's (both 0: unbounded; one
// bound given: the other is the int32 extreme).
func intBounds(lo, hi *float64) (int, int, error) {
	if lo == nil && hi == nil {
		return 0, 0, nil
	}
	a, b := float64(math.MinInt32), float64(math.MaxInt32)
	if lo != nil {
		a = *lo
	}
	if hi != nil {
		b = *hi
	}
	if a != math.Trunc(a) || b != math.Trunc(b) || a < math.MinInt32 || b > math.MaxInt32 || a > b {
		return 0, 0, fmt.Errorf("bounds %g..%g: want whole numbers in the int32 range, min ≤ max", a, b)
	}
	return int(a), int(b), nil
}

func (m *Meta) validateTest(tc *TestCase) error {
	switch tc.Transport {
	case "":
		tc.Transport = "tcp"
		if !slices.Contains(m.Transports, "tcp") {
			tc.Transport = "udp"
		}
	case "tcp", "udp":
		if !slices.Contains(m.Transports, tc.Transport) {
			return fmt.Errorf("transport %q is not in the meta transports", tc.Transport)
		}
	default:
		return fmt.Errorf("transport %q: want tcp or udp", tc.Transport)
	}
	if len(tc.Frames) == 0 || len(tc.Frames) > MaxTestFrames {
		return fmt.Errorf("%d frames: want 1..%d", len(tc.Frames), MaxTestFrames)
	}
	for k := range tc.Options {
		if !slices.ContainsFunc(m.Options, func(o OptionMeta) bool { return o.Name == k }) {
			return fmt.Errorf("option %q is not declared", k)
		}
	}
	for i := range tc.Frames {
		f := &tc.Frames[i]
		switch {
		case f.Hex != "" && f.Text != "", f.Hex == "" && f.Text == "":
			return fmt.Errorf("frame %d: want exactly one of hex and text", i)
		case f.Hex != "":
			b, err := hex.DecodeString(strings.ReplaceAll(f.Hex, " ", ""))
			if err != nil {
				return fmt.Errorf("frame %d: hex: %w", i, err)
			}
			f.bytes = b
		default:
			f.bytes = []byte(f.Text)
		}
		if f.RecvMs == 0 {
			f.RecvMs = DefaultTestRecv
		}
		if f.Want.Error != "" && errorNames[f.Want.Error] == nil {
			return fmt.Errorf("frame %d: want.error %q: want one of %s", i, f.Want.Error, strings.Join(errorList(), ", "))
		}
		if f.Want.AckHex != nil && f.Want.AckText != nil {
			return fmt.Errorf("frame %d: want ack_hex or ack_text, not both", i)
		}
		for _, h := range []*string{f.Want.AckHex, f.Want.RejectHex} {
			if h != nil {
				if _, err := hex.DecodeString(strings.ReplaceAll(*h, " ", "")); err != nil {
					return fmt.Errorf("frame %d: want hex %q: %w", i, *h, err)
				}
			}
		}
		for j, s := range f.Want.Signals {
			for k := range s {
				if _, ok := signal.FieldByName(k); !ok && !wantKeys[k] {
					return fmt.Errorf("frame %d: want.signals[%d]: key %q is not a signal field", i, j, k)
				}
			}
		}
	}
	return nil
}

func errorList() []string {
	out := make([]string, 0, len(errorNames))
	for k := range errorNames {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// rawOptions turns a test's options into the strings a listener gives.
func (tc *TestCase) rawOptions() (map[string]string, error) {
	out := make(map[string]string, len(tc.Options))
	for k, v := range tc.Options {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
			continue
		}
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return nil, fmt.Errorf("option %q: %w", k, err)
		}
		switch x.(type) {
		case bool, float64:
			out[k] = string(bytes.TrimSpace(v))
		default:
			return nil, fmt.Errorf("option %q: %s is not a string, number or boolean", k, v)
		}
	}
	return out, nil
}
