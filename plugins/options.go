package plugins

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// An Option is one declared listener option of a decoder (Info.Options).
// The concrete kinds are BoolOption, IntOption, FloatOption, StringOption,
// EnumOption, DurationOption and ListOption. A decoder keeps its options in
// package variables and reads a session's value with the option's own Get,
// so the name, the type and the default are written once:
//
//	var optExtended = plugins.BoolOption{Name: "extended", Doc: "…"}
//	…
//	s.extended = optExtended.Get(cfg.Options)
type Option interface {
	// Spec describes the option for docs and error messages.
	Spec() OptionSpec
	// parse turns a raw config value into the typed value.
	parse(raw string) (any, error)
	// check reports a malformed declaration (Register panics on it).
	check() error
}

// OptionSpec is what docs show of an option.
type OptionSpec struct {
	Name    string
	Type    string // bool, int, float, string, enum, duration, list
	Default string // as written in config; "" when it has none
	Doc     string
	// Range is the allowed values in words ("16–1024", "kn, kmh, mps,
	// mph"); "" when any value of the type is allowed.
	Range string
}

// OptionsValidator is an optional Decoder capability: checks across
// options (one option requires another). It runs once, after every option
// decoded; it is pure (no I/O) and its error is a configuration error.
type OptionsValidator interface {
	ValidateOptions(o Options) error
}

// OptionError is a problem with one listener option (Key), so a config
// loader can name the line the key is on.
type OptionError struct {
	Key string
	Err error
}

func (e *OptionError) Error() string { return fmt.Sprintf("option %q: %v", e.Key, e.Err) }
func (e *OptionError) Unwrap() error { return e.Err }

// ErrUnknownOption is wrapped by the OptionError of a key the decoder does
// not declare.
var ErrUnknownOption = errors.New("unknown option")

// Options are a listener's decoded, validated options, handed to every
// session (SessionConfig.Options). The zero value has no values set: every
// Get returns the option's default.
type Options struct {
	vals     map[string]any
	declared map[string]bool
}

// DecodeOptions turns a listener's raw options into typed values against
// the decoder's declaration: an unknown key and a value that does not
// parse or is out of range are errors (every one, joined; each an
// *OptionError), then the decoder's OptionsValidator runs. It is what a
// listener's configuration runs once, before any port opens.
func DecodeOptions(dec Decoder, raw map[string]string) (Options, error) {
	info := dec.Info()
	o := Options{vals: map[string]any{}, declared: map[string]bool{}}
	byName := map[string]Option{}
	for _, opt := range info.Options {
		byName[opt.Spec().Name] = opt
		o.declared[opt.Spec().Name] = true
	}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		opt, ok := byName[k]
		if !ok {
			errs = append(errs, &OptionError{Key: k, Err: unknownOption(info)})
			continue
		}
		v, err := opt.parse(raw[k])
		if err != nil {
			errs = append(errs, &OptionError{Key: k, Err: err})
			continue
		}
		o.vals[k] = v
	}
	if len(errs) > 0 {
		return Options{}, errors.Join(errs...)
	}
	if v, ok := dec.(OptionsValidator); ok {
		if err := v.ValidateOptions(o); err != nil {
			return Options{}, fmt.Errorf("validating %s options: %w", info.Name, err)
		}
	}
	return o, nil
}

func unknownOption(info Info) error {
	if len(info.Options) == 0 {
		return fmt.Errorf("%w: protocol %s takes no options", ErrUnknownOption, info.Name)
	}
	names := make([]string, len(info.Options))
	for i, opt := range info.Options {
		names[i] = opt.Spec().Name
	}
	return fmt.Errorf("%w (%s takes %s)", ErrUnknownOption, info.Name, strings.Join(names, ", "))
}

// value returns the decoded value of name. Reading an option the decoder
// did not declare is a programming mistake and panics, on the first
// session any test opens.
func (o Options) value(name string) (any, bool) {
	if o.declared != nil && !o.declared[name] {
		panic(fmt.Sprintf("plugins: option %q read but not declared in Info.Options", name))
	}
	v, ok := o.vals[name]
	return v, ok
}

// IsSet reports whether the listener set the option.
func (o Options) IsSet(opt Option) bool {
	_, ok := o.value(opt.Spec().Name)
	return ok
}

var optionName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// checkOptions is Register's check of a declaration.
func checkOptions(info Info) error {
	seen := map[string]bool{}
	for _, opt := range info.Options {
		if opt == nil {
			return errors.New("nil option")
		}
		s := opt.Spec()
		if !optionName.MatchString(s.Name) {
			return fmt.Errorf("option name %q is not snake_case", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("option %q declared twice", s.Name)
		}
		seen[s.Name] = true
		if strings.TrimSpace(s.Doc) == "" {
			return fmt.Errorf("option %q has no doc", s.Name)
		}
		if err := opt.check(); err != nil {
			return fmt.Errorf("option %q: %w", s.Name, err)
		}
	}
	return nil
}

// BoolOption is true or false (strconv.ParseBool: 1, t, true, 0, f, false…).
type BoolOption struct {
	Name    string
	Default bool
	Doc     string
}

// Spec implements Option.
func (b BoolOption) Spec() OptionSpec {
	return OptionSpec{Name: b.Name, Type: "bool", Default: strconv.FormatBool(b.Default), Doc: b.Doc, Range: "true, false"}
}

func (b BoolOption) parse(raw string) (any, error) {
	v, err := strconv.ParseBool(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%q is not true or false", raw)
	}
	return v, nil
}

func (BoolOption) check() error { return nil }

// Get returns the listener's value, else the default.
func (b BoolOption) Get(o Options) bool {
	if v, ok := o.value(b.Name); ok {
		return v.(bool)
	}
	return b.Default
}

// IntOption is a whole number in [Min, Max] (both 0: any int).
type IntOption struct {
	Name     string
	Default  int
	Min, Max int
	// NoDefault, when set, says what happens when the option is not set
	// ("auto-detect"); Default is then unused and the decoder reads the
	// option with Lookup.
	NoDefault string
	Doc       string
}

func (n IntOption) bounded() bool { return n.Min != 0 || n.Max != 0 }

// Spec implements Option.
func (n IntOption) Spec() OptionSpec {
	s := OptionSpec{Name: n.Name, Type: "int", Default: strconv.Itoa(n.Default), Doc: n.Doc}
	if n.NoDefault != "" {
		s.Default = ""
	}
	if n.bounded() {
		s.Range = fmt.Sprintf("%d–%d", n.Min, n.Max)
	}
	return s
}

func (n IntOption) parse(raw string) (any, error) {
	v, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%q is not a whole number", raw)
	}
	if n.bounded() && (v < n.Min || v > n.Max) {
		return nil, fmt.Errorf("%d is outside %d–%d", v, n.Min, n.Max)
	}
	return v, nil
}

func (n IntOption) check() error {
	if n.bounded() && n.Min > n.Max {
		return fmt.Errorf("min %d above max %d", n.Min, n.Max)
	}
	if n.NoDefault == "" && n.bounded() && (n.Default < n.Min || n.Default > n.Max) {
		return fmt.Errorf("default %d outside %d–%d", n.Default, n.Min, n.Max)
	}
	return nil
}

// Get returns the listener's value, else the default.
func (n IntOption) Get(o Options) int {
	if v, ok := n.Lookup(o); ok {
		return v
	}
	return n.Default
}

// Lookup returns the listener's value and whether it was set.
func (n IntOption) Lookup(o Options) (int, bool) {
	v, ok := o.value(n.Name)
	if !ok {
		return 0, false
	}
	return v.(int), true
}

// FloatOption is a number in [Min, Max] (both 0: any finite number).
type FloatOption struct {
	Name     string
	Default  float64
	Min, Max float64
	Doc      string
}

func (f FloatOption) bounded() bool { return f.Min != 0 || f.Max != 0 }

// Spec implements Option.
func (f FloatOption) Spec() OptionSpec {
	s := OptionSpec{Name: f.Name, Type: "float", Default: strconv.FormatFloat(f.Default, 'g', -1, 64), Doc: f.Doc}
	if f.bounded() {
		s.Range = fmt.Sprintf("%g–%g", f.Min, f.Max)
	}
	return s
}

func (f FloatOption) parse(raw string) (any, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
	if err != nil || v != v || v > 1e308 || v < -1e308 {
		return nil, fmt.Errorf("%q is not a number", raw)
	}
	if f.bounded() && (v < f.Min || v > f.Max) {
		return nil, fmt.Errorf("%g is outside %g–%g", v, f.Min, f.Max)
	}
	return v, nil
}

func (f FloatOption) check() error {
	if f.bounded() && (f.Min > f.Max || f.Default < f.Min || f.Default > f.Max) {
		return fmt.Errorf("default %g or bounds %g–%g inconsistent", f.Default, f.Min, f.Max)
	}
	return nil
}

// Get returns the listener's value, else the default.
func (f FloatOption) Get(o Options) float64 {
	if v, ok := o.value(f.Name); ok {
		return v.(float64)
	}
	return f.Default
}

// StringOption is any text (MaxLen bytes at most when not 0).
type StringOption struct {
	Name    string
	Default string
	MaxLen  int
	Doc     string
}

// Spec implements Option.
func (s StringOption) Spec() OptionSpec {
	return OptionSpec{Name: s.Name, Type: "string", Default: s.Default, Doc: s.Doc}
}

func (s StringOption) parse(raw string) (any, error) {
	if s.MaxLen > 0 && len(raw) > s.MaxLen {
		return nil, fmt.Errorf("longer than %d bytes", s.MaxLen)
	}
	return raw, nil
}

func (StringOption) check() error { return nil }

// Get returns the listener's value, else the default.
func (s StringOption) Get(o Options) string {
	if v, ok := o.value(s.Name); ok {
		return v.(string)
	}
	return s.Default
}

// EnumOption is one of Values, matched without regard to case; Get returns
// the value as declared. Aliases map other accepted spellings to a value.
type EnumOption struct {
	Name    string
	Default string
	Values  []string
	Aliases map[string]string
	Doc     string
}

// Spec implements Option.
func (e EnumOption) Spec() OptionSpec {
	return OptionSpec{Name: e.Name, Type: "enum", Default: e.Default, Doc: e.Doc, Range: strings.Join(e.Values, ", ")}
}

func (e EnumOption) parse(raw string) (any, error) {
	r := strings.TrimSpace(raw)
	for _, v := range e.Values {
		if strings.EqualFold(r, v) {
			return v, nil
		}
	}
	for a, v := range e.Aliases {
		if strings.EqualFold(r, a) {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%q is not one of %s", raw, strings.Join(e.Values, ", "))
}

func (e EnumOption) check() error {
	if len(e.Values) == 0 {
		return errors.New("enum without values")
	}
	if !slices.Contains(e.Values, e.Default) {
		return fmt.Errorf("default %q is not one of the values", e.Default)
	}
	for a, v := range e.Aliases {
		if !slices.Contains(e.Values, v) {
			return fmt.Errorf("alias %q names %q, not a value", a, v)
		}
	}
	return nil
}

// Get returns the listener's value, else the default.
func (e EnumOption) Get(o Options) string {
	if v, ok := o.value(e.Name); ok {
		return v.(string)
	}
	return e.Default
}

// DurationOption is a Go duration (500ms, 10s, 5m) in [Min, Max] (Max 0:
// no upper bound); negative durations are refused.
type DurationOption struct {
	Name     string
	Default  time.Duration
	Min, Max time.Duration
	Doc      string
}

// Spec implements Option.
func (d DurationOption) Spec() OptionSpec {
	s := OptionSpec{Name: d.Name, Type: "duration", Default: d.Default.String(), Doc: d.Doc}
	if d.Max > 0 {
		s.Range = d.Min.String() + "–" + d.Max.String()
	} else if d.Min > 0 {
		s.Range = "at least " + d.Min.String()
	}
	return s
}

func (d DurationOption) parse(raw string) (any, error) {
	v, err := time.ParseDuration(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%q is not a duration (like 500ms, 10s, 5m)", raw)
	}
	if v < d.Min || v < 0 || (d.Max > 0 && v > d.Max) {
		return nil, fmt.Errorf("%s is outside %s", v, d.Spec().Range)
	}
	return v, nil
}

func (d DurationOption) check() error {
	if d.Min < 0 || (d.Max > 0 && d.Min > d.Max) || d.Default < d.Min || (d.Max > 0 && d.Default > d.Max) {
		return fmt.Errorf("default %s or bounds inconsistent", d.Default)
	}
	return nil
}

// Get returns the listener's value, else the default.
func (d DurationOption) Get(o Options) time.Duration {
	if v, ok := o.value(d.Name); ok {
		return v.(time.Duration)
	}
	return d.Default
}

// ListOption is a comma-separated list of non-empty items (spaces around
// items trimmed), each one of Values when Values is set.
type ListOption struct {
	Name    string
	Default []string
	Values  []string
	Doc     string
}

// Spec implements Option.
func (l ListOption) Spec() OptionSpec {
	return OptionSpec{Name: l.Name, Type: "list", Default: strings.Join(l.Default, ","), Doc: l.Doc, Range: strings.Join(l.Values, ", ")}
}

func (l ListOption) parse(raw string) (any, error) {
	var out []string
	for item := range strings.SplitSeq(raw, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("%q has an empty item", raw)
		}
		if len(l.Values) > 0 && !slices.Contains(l.Values, item) {
			return nil, fmt.Errorf("item %q is not one of %s", item, strings.Join(l.Values, ", "))
		}
		out = append(out, item)
	}
	return out, nil
}

func (l ListOption) check() error {
	for _, d := range l.Default {
		if len(l.Values) > 0 && !slices.Contains(l.Values, d) {
			return fmt.Errorf("default item %q is not one of the values", d)
		}
	}
	return nil
}

// Get returns the listener's value (a fresh slice), else the default.
func (l ListOption) Get(o Options) []string {
	if v, ok := o.value(l.Name); ok {
		return slices.Clone(v.([]string))
	}
	return slices.Clone(l.Default)
}

// OptionsTable renders a decoder's options as the Markdown table the
// protocol READMEs carry (a test compares them).
func OptionsTable(opts []Option) string {
	if len(opts) == 0 {
		return "This protocol takes no listener options.\n"
	}
	var b strings.Builder
	b.WriteString("| option | type | default | values | meaning |\n|---|---|---|---|---|\n")
	for _, opt := range opts {
		s := opt.Spec()
		def := "`" + s.Default + "`"
		if s.Default == "" {
			def = "unset"
			if n, ok := opt.(IntOption); ok && n.NoDefault != "" {
				def = "unset: " + n.NoDefault
			}
		}
		rng := s.Range
		if rng == "" {
			rng = "any"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", s.Name, s.Type, def, strings.ReplaceAll(rng, "|", `\|`), strings.ReplaceAll(s.Doc, "|", `\|`))
	}
	return b.String()
}

// MustDecodeOptions is DecodeOptions for tests and examples, where options
// that do not decode are a mistake in the code: it panics on an error.
func MustDecodeOptions(dec Decoder, raw map[string]string) Options {
	o, err := DecodeOptions(dec, raw)
	if err != nil {
		panic(fmt.Sprintf("plugins: decoding %s options: %v", dec.Info().Name, err))
	}
	return o
}
