package plugins_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
)

var (
	optFlag  = plugins.BoolOption{Name: "flag", Doc: "a flag"}
	optCount = plugins.IntOption{Name: "count", Default: 5, Min: 1, Max: 10, Doc: "a count"}
	optAuto  = plugins.IntOption{Name: "auto", Min: 32, Max: 64, NoDefault: "auto-detect", Doc: "auto"}
	optRatio = plugins.FloatOption{Name: "ratio", Default: 0.5, Min: 0, Max: 1, Doc: "a ratio"}
	optName  = plugins.StringOption{Name: "name", Default: "x", MaxLen: 4, Doc: "a name"}
	optUnit  = plugins.EnumOption{Name: "unit", Default: "kn", Values: []string{"kn", "kmh"}, Aliases: map[string]string{"kph": "kmh"}, Doc: "a unit"}
	optWait  = plugins.DurationOption{Name: "wait", Default: time.Second, Min: time.Millisecond, Max: time.Minute, Doc: "a wait"}
	optTags  = plugins.ListOption{Name: "tags", Default: []string{"a"}, Values: []string{"a", "b"}, Doc: "tags"}
)

// optDecoder declares one option of each kind; with needsCount set it
// refuses "flag" without "count" (a cross-option check).
type optDecoder struct{ opts []plugins.Option }

func (d optDecoder) Info() plugins.Info {
	return plugins.Info{Name: "opt", Transports: []plugins.Transport{plugins.TCP}, Options: d.opts}
}
func (optDecoder) NewSession(plugins.SessionConfig) plugins.Session { return nil }

type validatingDecoder struct{ optDecoder }

func (validatingDecoder) ValidateOptions(o plugins.Options) error {
	if optFlag.Get(o) && !o.IsSet(optCount) {
		return errors.New("flag needs count")
	}
	return nil
}

var allOpts = []plugins.Option{optFlag, optCount, optAuto, optRatio, optName, optUnit, optWait, optTags}

func TestDecodeOptionsDefaults(t *testing.T) {
	for _, o := range []plugins.Options{{}, plugins.MustDecodeOptions(optDecoder{allOpts}, nil)} {
		if optFlag.Get(o) || optCount.Get(o) != 5 || optRatio.Get(o) != 0.5 || optName.Get(o) != "x" ||
			optUnit.Get(o) != "kn" || optWait.Get(o) != time.Second || strings.Join(optTags.Get(o), ",") != "a" {
			t.Errorf("defaults not applied: %v %v %v %q %q %v %v", optFlag.Get(o), optCount.Get(o), optRatio.Get(o), optName.Get(o), optUnit.Get(o), optWait.Get(o), optTags.Get(o))
		}
		if _, set := optAuto.Lookup(o); set {
			t.Error("an unset option without default reads as set")
		}
	}
}

func TestDecodeOptionsValues(t *testing.T) {
	o, err := plugins.DecodeOptions(optDecoder{allOpts}, map[string]string{
		"flag": "true", "count": " 10", "auto": "45", "ratio": "1", "name": "abcd", "unit": "KPH", "wait": "2s", "tags": "b, a",
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, set := optAuto.Lookup(o); !set || v != 45 {
		t.Errorf("auto = %d, %v", v, set)
	}
	if !optFlag.Get(o) || optCount.Get(o) != 10 || optRatio.Get(o) != 1 || optName.Get(o) != "abcd" ||
		optUnit.Get(o) != "kmh" || optWait.Get(o) != 2*time.Second || strings.Join(optTags.Get(o), ",") != "b,a" {
		t.Errorf("values: %v %v %v %q %q %v %v", optFlag.Get(o), optCount.Get(o), optRatio.Get(o), optName.Get(o), optUnit.Get(o), optWait.Get(o), optTags.Get(o))
	}
}

func TestDecodeOptionsRefuses(t *testing.T) {
	tests := []struct {
		name string
		dec  plugins.Decoder
		raw  map[string]string
		want []string // one OptionError per key, in key order
	}{
		{"bad bool", optDecoder{allOpts}, map[string]string{"flag": "of"}, []string{`option "flag": "of" is not true or false`}},
		{"not a number", optDecoder{allOpts}, map[string]string{"count": "abc"}, []string{`option "count": "abc" is not a whole number`}},
		{"below min", optDecoder{allOpts}, map[string]string{"count": "0"}, []string{`option "count": 0 is outside 1–10`}},
		{"above max", optDecoder{allOpts}, map[string]string{"auto": "65"}, []string{`option "auto": 65 is outside 32–64`}},
		{"float range", optDecoder{allOpts}, map[string]string{"ratio": "1.5"}, []string{`option "ratio": 1.5 is outside 0–1`}},
		{"float NaN", optDecoder{allOpts}, map[string]string{"ratio": "NaN"}, []string{`option "ratio": "NaN" is not a number`}},
		{"string too long", optDecoder{allOpts}, map[string]string{"name": "abcde"}, []string{`option "name": longer than 4 bytes`}},
		{"enum", optDecoder{allOpts}, map[string]string{"unit": "mph"}, []string{`option "unit": "mph" is not one of kn, kmh`}},
		{"duration", optDecoder{allOpts}, map[string]string{"wait": "5"}, []string{`option "wait": "5" is not a duration`}},
		{"duration range", optDecoder{allOpts}, map[string]string{"wait": "2m"}, []string{`option "wait": 2m0s is outside 1ms–1m0s`}},
		{"list item", optDecoder{allOpts}, map[string]string{"tags": "a,c"}, []string{`option "tags": item "c" is not one of a, b`}},
		{"list empty item", optDecoder{allOpts}, map[string]string{"tags": "a,,b"}, []string{`option "tags": "a,,b" has an empty item`}},
		{"unknown key", optDecoder{allOpts}, map[string]string{"nosuch": "1"}, []string{`option "nosuch": unknown option (opt takes flag, count, auto, ratio, name, unit, wait, tags)`}},
		{"no options", optDecoder{}, map[string]string{"x": "1"}, []string{`option "x": unknown option: protocol opt takes no options`}},
		{"every problem", optDecoder{allOpts}, map[string]string{"flag": "2", "count": "x", "zz": ""}, []string{`option "count"`, `option "flag"`, `option "zz"`}},
		{"cross-option", validatingDecoder{optDecoder{allOpts}}, map[string]string{"flag": "true"}, []string{"validating opt options: flag needs count"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := plugins.DecodeOptions(tt.dec, tt.raw)
			if err == nil {
				t.Fatal("accepted")
			}
			var errs []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			} else {
				errs = []error{err}
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("%d errors, want %d: %v", len(errs), len(tt.want), err)
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tt.want[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, e, tt.want[i])
				}
			}
			if tt.name == "unknown key" && !errors.Is(err, plugins.ErrUnknownOption) {
				t.Error("unknown key does not wrap ErrUnknownOption")
			}
		})
	}
	if _, err := plugins.DecodeOptions(validatingDecoder{optDecoder{allOpts}}, map[string]string{"flag": "true", "count": "2"}); err != nil {
		t.Errorf("the cross-option check refused valid options: %v", err)
	}
}

func TestRegisterRefusesMalformedOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []plugins.Option
	}{
		{"duplicate", []plugins.Option{optFlag, optFlag}},
		{"not snake_case", []plugins.Option{plugins.BoolOption{Name: "Flag", Doc: "x"}}},
		{"empty name", []plugins.Option{plugins.BoolOption{Doc: "x"}}},
		{"no doc", []plugins.Option{plugins.BoolOption{Name: "flag"}}},
		{"int default out of range", []plugins.Option{plugins.IntOption{Name: "n", Min: 1, Max: 2, Doc: "x"}}},
		{"enum default not a value", []plugins.Option{plugins.EnumOption{Name: "e", Default: "z", Values: []string{"a"}, Doc: "x"}}},
		{"enum alias to nothing", []plugins.Option{plugins.EnumOption{Name: "e", Default: "a", Values: []string{"a"}, Aliases: map[string]string{"b": "c"}, Doc: "x"}}},
		{"duration default below min", []plugins.Option{plugins.DurationOption{Name: "d", Min: time.Second, Doc: "x"}}},
		{"list default not a value", []plugins.Option{plugins.ListOption{Name: "l", Default: []string{"z"}, Values: []string{"a"}, Doc: "x"}}},
		{"nil", []plugins.Option{nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Register accepted a malformed declaration")
				}
			}()
			plugins.NewRegistry().Register(optDecoder{tt.opts})
		})
	}
	plugins.NewRegistry().Register(optDecoder{allOpts}) // well-formed: no panic
}

func TestReadingAnUndeclaredOptionPanics(t *testing.T) {
	o := plugins.MustDecodeOptions(optDecoder{[]plugins.Option{optFlag}}, nil)
	defer func() {
		if recover() == nil {
			t.Error("reading an option the decoder did not declare did not panic")
		}
	}()
	optCount.Get(o)
}
