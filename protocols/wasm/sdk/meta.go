package sdk

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Transport names a listener kind.
type Transport string

// The transports of ABI v1 (input byte 4: 1 tcp, 2 udp).
const (
	TCP Transport = "tcp"
	UDP Transport = "udp"
)

// Meta is the decoder's metadata, rendered as the fc_meta JSON document
// (ABI.md "Metadata").
type Meta struct {
	Name        string // [a-z0-9_]+, at most 32 bytes, not a built-in decoder's name
	Version     string // e.g. 1.0.0
	Description string
	Transports  []Transport // tcp, udp or both
	DefaultPort int
	// MaxFrame is the decoder's own frame cap in bytes (0: the host's
	// default). The listener's cap reaches each call as Call.MaxFrame.
	MaxFrame int
	// StateVersion tells state blobs of different layouts apart: a
	// connection whose state a module with another StateVersion made
	// keeps that module until it closes.
	StateVersion int
	// StateMax is the largest state blob the decoder returns, in bytes (0:
	// it keeps no state).
	StateMax int
	Options  []Option
	Tests    []Test // self-tests the host runs before the module goes live
}

// Option is a typed listener option declaration: BoolOption, IntOption,
// FloatOption, StringOption or EnumOption. Keep each in a package
// variable, list it in Meta.Options and read it with its Get.
type Option interface {
	spec() optionSpec
}

type optionKind uint8

const (
	kindBool optionKind = iota + 1
	kindInt
	kindFloat
	kindString
	kindEnum
)

var kindNames = [...]string{kindBool: "bool", kindInt: "int", kindFloat: "float", kindString: "string", kindEnum: "enum"}

// optionSpec is the common form of a declaration.
type optionSpec struct {
	name     string
	kind     optionKind
	help     string
	bounded  bool    // int/float: Min and Max apply
	min, max float64 // as float64: int bounds are exact up to 2^53
	imin     int64
	imax     int64
	values   []string
	def      optionValue
}

// optionValue is one option's value.
type optionValue struct {
	b bool
	i int64
	f float64
	s string
}

// BoolOption is true or false.
type BoolOption struct {
	Name    string
	Default bool
	Help    string
}

func (o BoolOption) spec() optionSpec {
	return optionSpec{name: o.Name, kind: kindBool, help: o.Help, def: optionValue{b: o.Default}}
}

// Get returns the option's value for this call's listener.
func (o BoolOption) Get(c *Call) bool { return c.option(o.Name, kindBool).b }

// IntOption is an integer. Min and Max bound it unless both are zero.
type IntOption struct {
	Name     string
	Default  int64
	Min, Max int64
	Help     string
}

func (o IntOption) spec() optionSpec {
	return optionSpec{name: o.Name, kind: kindInt, help: o.Help, bounded: o.Min != 0 || o.Max != 0,
		imin: o.Min, imax: o.Max, def: optionValue{i: o.Default}}
}

// Get returns the option's value for this call's listener.
func (o IntOption) Get(c *Call) int64 { return c.option(o.Name, kindInt).i }

// FloatOption is a finite number. Min and Max bound it unless both are
// zero.
type FloatOption struct {
	Name     string
	Default  float64
	Min, Max float64
	Help     string
}

func (o FloatOption) spec() optionSpec {
	return optionSpec{name: o.Name, kind: kindFloat, help: o.Help, bounded: o.Min != 0 || o.Max != 0,
		min: o.Min, max: o.Max, def: optionValue{f: o.Default}}
}

// Get returns the option's value for this call's listener.
func (o FloatOption) Get(c *Call) float64 { return c.option(o.Name, kindFloat).f }

// StringOption is free text.
type StringOption struct {
	Name    string
	Default string
	Help    string
}

func (o StringOption) spec() optionSpec {
	return optionSpec{name: o.Name, kind: kindString, help: o.Help, def: optionValue{s: o.Default}}
}

// Get returns the option's value for this call's listener.
func (o StringOption) Get(c *Call) string { return c.option(o.Name, kindString).s }

// EnumOption is one of Values.
type EnumOption struct {
	Name    string
	Values  []string
	Default string
	Help    string
}

func (o EnumOption) spec() optionSpec {
	return optionSpec{name: o.Name, kind: kindEnum, help: o.Help, values: o.Values, def: optionValue{s: o.Default}}
}

// Get returns the option's value for this call's listener.
func (o EnumOption) Get(c *Call) string { return c.option(o.Name, kindEnum).s }

// Test is one self-test: frames fed in order through one session.
type Test struct {
	Name      string
	Transport Transport         // "" = tcp
	Options   map[string]string // listener option strings, as a config gives them
	Frames    []TestFrame
}

// TestFrame is one frame of a self-test and what it must produce. A TCP
// frame goes through fc_frame first and must be framed whole.
type TestFrame struct {
	Hex    string // the frame as hex, or
	Text   string // the frame as text
	RecvMs int64  // the receive time, Unix ms (0: the host's choice)
	Want   Want
}

// Want is what a self-test frame must produce.
type Want struct {
	AckHex string // the ack bytes as hex; "" = not compared (NoAck: must be empty)
	// AckText is the ack as text ("" = not compared).
	AckText string
	// NoAck: the frame must produce no ack bytes.
	NoAck bool
	// RejectHex is the reject reply as hex ("" = not compared).
	RejectHex string
	// Close: the frame must close the connection after the ack.
	Close  bool
	Device string // the session's device id after the frame; "" = not compared
	// Error is the sentinel the frame is refused with: malformed,
	// checksum, too_large, unauthorized, no_device or unsupported.
	Error string
	// Signals are compared by count and by the keys each lists
	// (device_id, ts as RFC 3339, lat, lon, …, valid, attrs, dtcs). Nil:
	// not compared; an empty non-nil slice: the frame has no records.
	Signals []map[string]any
}

// JSON validates the metadata and renders the fc_meta document.
func (m *Meta) JSON() (string, error) {
	if err := m.validate(); err != nil {
		return "", err
	}
	doc := metaDoc{
		Name: m.Name, Version: m.Version, ABI: ABIVersion, Description: m.Description,
		Transports: m.Transports, DefaultPort: m.DefaultPort, MaxFrame: m.MaxFrame,
		StateVersion: m.StateVersion, StateMax: m.StateMax,
		Options: []optionDoc{}, Tests: []testDoc{},
	}
	for _, o := range m.Options {
		doc.Options = append(doc.Options, o.spec().doc())
	}
	for _, t := range m.Tests {
		td := testDoc{Name: t.Name, Transport: t.Transport, Options: t.Options}
		for _, f := range t.Frames {
			w := f.Want
			fd := frameDoc{Hex: f.Hex, Text: f.Text, RecvMs: f.RecvMs, Want: wantDoc{Error: w.Error}}
			fd.Want.AckHex = optString(w.AckHex)
			if w.NoAck {
				empty := ""
				fd.Want.AckHex = &empty
			}
			fd.Want.AckText = optString(w.AckText)
			fd.Want.RejectHex = optString(w.RejectHex)
			fd.Want.Device = optString(w.Device)
			if w.Close {
				fd.Want.Close = &w.Close
			}
			if f.Want.Signals != nil {
				s := f.Want.Signals
				fd.Want.Signals = &s
			}
			td.Frames = append(td.Frames, fd)
		}
		doc.Tests = append(doc.Tests, td)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("rendering decoder %q metadata: %w", m.Name, err)
	}
	return string(b), nil
}

type metaDoc struct {
	Name         string      `json:"name"`
	Version      string      `json:"version"`
	ABI          int         `json:"abi"`
	Description  string      `json:"description"`
	Transports   []Transport `json:"transports"`
	DefaultPort  int         `json:"default_port,omitempty"`
	MaxFrame     int         `json:"max_frame,omitempty"`
	StateVersion int         `json:"state_version"`
	StateMax     int         `json:"state_max"`
	Options      []optionDoc `json:"options"`
	Tests        []testDoc   `json:"tests"`
}

type optionDoc struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Default any      `json:"default"`
	Min     any      `json:"min,omitempty"`
	Max     any      `json:"max,omitempty"`
	Values  []string `json:"values,omitempty"`
	Help    string   `json:"help"`
}

type testDoc struct {
	Name      string            `json:"name"`
	Transport Transport         `json:"transport,omitempty"`
	Options   map[string]string `json:"options,omitempty"`
	Frames    []frameDoc        `json:"frames"`
}

type frameDoc struct {
	Hex    string  `json:"hex,omitempty"`
	Text   string  `json:"text,omitempty"`
	RecvMs int64   `json:"recv_ms,omitempty"`
	Want   wantDoc `json:"want"`
}

type wantDoc struct {
	Error     string            `json:"error,omitempty"`
	AckHex    *string           `json:"ack_hex,omitempty"`
	AckText   *string           `json:"ack_text,omitempty"`
	RejectHex *string           `json:"reject_hex,omitempty"`
	Device    *string           `json:"device,omitempty"`
	Close     *bool             `json:"close,omitempty"`
	Signals   *[]map[string]any `json:"signals,omitempty"`
}

// optString is nil for "" (a key not compared).
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s optionSpec) doc() optionDoc {
	d := optionDoc{Name: s.name, Type: kindNames[s.kind], Help: s.help}
	switch s.kind {
	case kindBool:
		d.Default = s.def.b
	case kindInt:
		d.Default = s.def.i
		if s.bounded {
			d.Min, d.Max = s.imin, s.imax
		}
	case kindFloat:
		d.Default = s.def.f
		if s.bounded {
			d.Min, d.Max = s.min, s.max
		}
	case kindString:
		d.Default = s.def.s
	case kindEnum:
		d.Default = s.def.s
		d.Values = s.values
	}
	return d
}

// validName reports whether s is [a-z0-9_]+ of at most max bytes.
func validName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// semver reports whether v is MAJOR.MINOR.PATCH with an optional
// pre-release or build suffix (after - or +), as the host requires.
func semver(v string) bool {
	i := 0
	for part := 0; part < 3; part++ {
		start := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
		if part < 2 {
			if i >= len(v) || v[i] != '.' {
				return false
			}
			i++
		}
	}
	if i == len(v) {
		return true
	}
	if v[i] != '-' && v[i] != '+' || i+1 == len(v) {
		return false
	}
	for _, c := range v[i+1:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '+' || c == '-') {
			return false
		}
	}
	return true
}

// maxNameLen is the ABI's cap on a decoder name.
const maxNameLen = 32

func (m *Meta) validate() error {
	if !validName(m.Name, maxNameLen) {
		return fmt.Errorf("decoder name %q is not [a-z0-9_]+ of at most %d bytes", m.Name, maxNameLen)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("decoder %q: %s", m.Name, fmt.Sprintf(format, args...))
	}
	if !semver(m.Version) {
		return fail("version %q is not a semantic version like 1.0.0", m.Version)
	}
	if len(m.Transports) == 0 {
		return fail("no transports (tcp, udp)")
	}
	seen := map[Transport]bool{}
	for _, t := range m.Transports {
		if t != TCP && t != UDP {
			return fail("transport %q is not tcp or udp", t)
		}
		if seen[t] {
			return fail("transport %q listed twice", t)
		}
		seen[t] = true
	}
	if m.DefaultPort < 1 || m.DefaultPort > 65535 {
		return fail("default port %d outside [1, 65535]", m.DefaultPort)
	}
	if m.MaxFrame < 0 || m.StateMax < 0 || m.StateVersion < 0 {
		return fail("max_frame %d, state_max %d, state_version %d: none may be negative", m.MaxFrame, m.StateMax, m.StateVersion)
	}
	names := map[string]optionSpec{}
	for i, o := range m.Options {
		if o == nil {
			return fail("option %d is nil", i)
		}
		s := o.spec()
		if err := s.check(); err != nil {
			return fail("option %q: %v", s.name, err)
		}
		if _, dup := names[s.name]; dup {
			return fail("option %q declared twice", s.name)
		}
		names[s.name] = s
	}
	for _, t := range m.Tests {
		if err := t.check(m, names); err != nil {
			return fail("self-test %q: %v", t.Name, err)
		}
	}
	return nil
}

func (s optionSpec) check() error {
	if !validName(s.name, 64) || s.name[0] < 'a' || s.name[0] > 'z' {
		return fmt.Errorf("name is not snake_case ([a-z][a-z0-9_]*, at most 64 bytes)")
	}
	if strings.TrimSpace(s.help) == "" {
		return fmt.Errorf("no help: every option is documented")
	}
	switch s.kind {
	case kindInt:
		for _, v := range [...]int64{s.def.i, s.imin, s.imax} {
			if v < math.MinInt32 || v > math.MaxInt32 {
				return fmt.Errorf("%d is outside the int32 range the host takes", v)
			}
		}
		if s.bounded && (s.imin > s.imax || s.def.i < s.imin || s.def.i > s.imax) {
			return fmt.Errorf("default %d outside [%d, %d]", s.def.i, s.imin, s.imax)
		}
	case kindFloat:
		if math.IsNaN(s.def.f) || math.IsInf(s.def.f, 0) {
			return fmt.Errorf("default %v is not finite", s.def.f)
		}
		if s.bounded && (s.min > s.max || s.def.f < s.min || s.def.f > s.max) {
			return fmt.Errorf("default %v outside [%v, %v]", s.def.f, s.min, s.max)
		}
	case kindEnum:
		if len(s.values) == 0 {
			return fmt.Errorf("enum without values")
		}
		found := false
		for i, v := range s.values {
			if v == "" {
				return fmt.Errorf("empty enum value")
			}
			for _, w := range s.values[:i] {
				if v == w {
					return fmt.Errorf("enum value %q listed twice", v)
				}
			}
			found = found || v == s.def.s
		}
		if !found {
			return fmt.Errorf("default %q is not one of %v", s.def.s, s.values)
		}
	}
	return nil
}

func (t Test) check(m *Meta, opts map[string]optionSpec) error {
	if t.Name == "" {
		return fmt.Errorf("no name")
	}
	tr := t.Transport
	if tr == "" {
		// The host's default: tcp when the decoder takes it, else udp.
		tr = TCP
		if !slices.Contains(m.Transports, TCP) {
			tr = UDP
		}
	}
	ok := false
	for _, x := range m.Transports {
		ok = ok || x == tr
	}
	if !ok {
		return fmt.Errorf("transport %q is not one of the decoder's %v", tr, m.Transports)
	}
	for k, v := range t.Options {
		s, declared := opts[k]
		if !declared {
			return fmt.Errorf("option %q is not declared", k)
		}
		if _, err := s.parse(v); err != nil {
			return fmt.Errorf("option %q: %v", k, err)
		}
	}
	if len(t.Frames) == 0 {
		return fmt.Errorf("no frames")
	}
	for i, f := range t.Frames {
		if (f.Hex == "") == (f.Text == "") {
			return fmt.Errorf("frame %d: give exactly one of Hex and Text", i+1)
		}
		if f.Hex != "" {
			if _, err := hex.DecodeString(f.Hex); err != nil {
				return fmt.Errorf("frame %d: hex: %v", i+1, err)
			}
		}
		for _, h := range [...]string{f.Want.AckHex, f.Want.RejectHex} {
			if _, err := hex.DecodeString(h); err != nil {
				return fmt.Errorf("frame %d: want hex %q: %v", i+1, h, err)
			}
		}
		if f.Want.NoAck && (f.Want.AckHex != "" || f.Want.AckText != "") {
			return fmt.Errorf("frame %d: NoAck with an ack", i+1)
		}
		if f.Want.Error != "" && !errorName(f.Want.Error) {
			return fmt.Errorf("frame %d: error %q is not malformed, checksum, too_large, unauthorized, no_device or unsupported", i+1, f.Want.Error)
		}
	}
	return nil
}

// parse reads a listener option string (as a config gives it) the way the
// host does: bool as strconv.ParseBool, numbers as Go parses them, enum
// values exactly.
func (s optionSpec) parse(raw string) (optionValue, error) {
	raw = strings.TrimSpace(raw)
	switch s.kind {
	case kindBool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return optionValue{}, fmt.Errorf("%q is not true or false", raw)
		}
		return optionValue{b: b}, nil
	case kindInt:
		i, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return optionValue{}, fmt.Errorf("%q is not an integer", raw)
		}
		if s.bounded && (i < s.imin || i > s.imax) {
			return optionValue{}, fmt.Errorf("%d outside [%d, %d]", i, s.imin, s.imax)
		}
		return optionValue{i: i}, nil
	case kindFloat:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return optionValue{}, fmt.Errorf("%q is not a finite number", raw)
		}
		if s.bounded && (f < s.min || f > s.max) {
			return optionValue{}, fmt.Errorf("%v outside [%v, %v]", f, s.min, s.max)
		}
		return optionValue{f: f}, nil
	case kindEnum:
		for _, v := range s.values {
			if v == raw {
				return optionValue{s: raw}, nil
			}
		}
		return optionValue{}, fmt.Errorf("%q is not one of %v", raw, s.values)
	}
	return optionValue{s: raw}, nil
}

// OptionsJSON renders the options bytes the host sends a decoder declared
// by m: every declared option with the listener's value (set, as config
// strings) or its default, keys sorted, compact. Native tests use it to
// build Input.Options.
func OptionsJSON(m Meta, set map[string]string) ([]byte, error) {
	specs := map[string]optionSpec{}
	for _, o := range m.Options {
		s := o.spec()
		specs[s.name] = s
	}
	for k := range set {
		if _, ok := specs[k]; !ok {
			return nil, fmt.Errorf("option %q is not declared by decoder %q", k, m.Name)
		}
	}
	keys := make([]string, 0, len(specs))
	for k := range specs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b []byte
	b = append(b, '{')
	for i, k := range keys {
		s := specs[k]
		v := s.def
		if raw, ok := set[k]; ok {
			var err error
			if v, err = s.parse(raw); err != nil {
				return nil, fmt.Errorf("option %q: %w", k, err)
			}
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, k)
		b = append(b, ':')
		switch s.kind {
		case kindBool:
			b = strconv.AppendBool(b, v.b)
		case kindInt:
			b = strconv.AppendInt(b, v.i, 10)
		case kindFloat:
			b = strconv.AppendFloat(b, v.f, 'g', -1, 64)
		default:
			q, _ := json.Marshal(v.s)
			b = append(b, q...)
		}
	}
	return append(b, '}'), nil
}
