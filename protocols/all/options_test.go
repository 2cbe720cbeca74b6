package all_test

import (
	"errors"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

// TestBuiltinOptions: every built-in decoder refuses bad values and
// unknown keys when its listener is configured, and takes its good ones.
func TestBuiltinOptions(t *testing.T) {
	tests := []struct {
		protocol string
		raw      map[string]string
		ok       bool
	}{
		{"teltonika", map[string]string{"extended": "true"}, true},
		{"teltonika", map[string]string{"extended": "yes"}, false},
		{"gt06", map[string]string{"device_time": "UTC", "model": "vl103"}, true},
		{"gt06", map[string]string{"device_time": "local"}, false},
		{"h02", map[string]string{"ack": "off", "binary_length": "45"}, true},
		{"h02", map[string]string{"ack": "of"}, false},
		{"h02", map[string]string{"binary_length": "abc"}, false},
		{"h02", map[string]string{"binary_length": "31"}, false},
		{"h02", map[string]string{"binary_length": "1025"}, false},
		{"osmand", map[string]string{"speed_unit": "km/h"}, true},
		{"osmand", map[string]string{"speed_unit": "knots"}, false},
		{"freematics", map[string]string{"server_key": "secret"}, true},
		{"jsonl", map[string]string{"anything": "1"}, false},
		{"acme", map[string]string{"anything": "1"}, false},
		{"teltonika", map[string]string{"extnded": "true"}, false},
	}
	decs := decoders()
	for _, tt := range tests {
		t.Run(tt.protocol, func(t *testing.T) {
			dec := decs[tt.protocol]
			if _, err := plugins.DecodeOptions(dec, nil); err != nil {
				t.Fatalf("no options refused: %v", err)
			}
			_, err := plugins.DecodeOptions(dec, tt.raw)
			if tt.ok && err != nil {
				t.Fatalf("%v refused: %v", tt.raw, err)
			}
			var oe *plugins.OptionError
			if !tt.ok && !errors.As(err, &oe) {
				t.Fatalf("%v accepted or not an OptionError: %v", tt.raw, err)
			}
		})
	}
}
