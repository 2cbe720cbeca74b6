package gateway

import (
	"strings"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// BuiltinVersionPrefix starts the decoder version the gateway records on
// the signals of a built-in decoder: "builtin:" and the fleetcore build
// version (a built-in decoder is versioned with the binary it is part of).
const BuiltinVersionPrefix = "builtin:"

// DefaultBuildVersion is the build version of a gateway made without
// WithBuildVersion (tests, tools): what `fleetcore version` prints for a
// build without -ldflags.
const DefaultBuildVersion = "dev"

// WithBuildVersion sets the fleetcore build version that the gateway
// records as the decoder version ("builtin:<version>") of signals whose
// decoder left Signal.DecoderVersion empty and has no version of its own.
// It is cut to signal.MaxDecoderVersionBytes; an empty version keeps
// DefaultBuildVersion.
func WithBuildVersion(version string) Option {
	return func(g *Gateway) {
		if version != "" {
			g.builtinVersion = builtinVersion(version)
		}
	}
}

// builtinVersion is the decoder version of a built-in decoder of the
// given build: storable text (valid UTF-8 without NUL) within the cap, so
// that it never makes signal.Check refuse a record.
func builtinVersion(build string) string {
	v := strings.ToValidUTF8(strings.ReplaceAll(BuiltinVersionPrefix+build, "\x00", ""), "")
	for len(v) > signal.MaxDecoderVersionBytes {
		v = strings.ToValidUTF8(v[:signal.MaxDecoderVersionBytes], "")
	}
	return v
}

// versioned is a decoder that knows its own version (a WASM decoder:
// plugins/wasmdecoder's Module, "<meta version>+sha256:<12 hex>"). Its
// sessions normally stamp their signals themselves; the gateway fills the
// version only where they did not.
type versioned interface {
	Version() string
}

// decoderVersion is the version the gateway records on a frame's signals
// that carry none: the decoder's own version (asked per frame, since a
// hot-reloaded decoder changes it), else the build's built-in version.
func (g *Gateway) decoderVersion(dec plugins.Decoder) string {
	if v, ok := dec.(versioned); ok {
		if s := v.Version(); s != "" {
			return s
		}
	}
	return g.builtinVersion
}
