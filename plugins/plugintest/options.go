package plugintest

import "github.com/fleetcore/fleetcore/plugins"

// decodedOptions decodes a case's raw listener options as a listener's
// configuration does; options the decoder refuses are a broken test case
// (it panics naming them).
func decodedOptions(dec plugins.Decoder, raw map[string]string) plugins.Options {
	return plugins.MustDecodeOptions(dec, raw)
}
