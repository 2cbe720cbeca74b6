package plugins_test

import (
	"fmt"

	"github.com/fleetcore/fleetcore/plugins"
)

// optUnitExample is how a decoder declares an option: once, in a package variable
// that Info lists and NewSession reads.
var optUnitExample = plugins.EnumOption{
	Name: "speed_unit", Default: "kn", Values: []string{"kn", "kmh"},
	Doc: "the unit of the speed parameter",
}

type exampleDecoder struct{}

func (exampleDecoder) Info() plugins.Info {
	return plugins.Info{Name: "example", Transports: []plugins.Transport{plugins.TCP}, Options: []plugins.Option{optUnitExample}}
}

func (exampleDecoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	fmt.Println("session speed unit:", optUnitExample.Get(cfg.Options))
	return nil
}

func ExampleDecodeOptions() {
	dec := exampleDecoder{}
	// When the listener is configured: decoded and validated once.
	if _, err := plugins.DecodeOptions(dec, map[string]string{"speed_unit": "knots"}); err != nil {
		fmt.Println(err)
	}
	opts, _ := plugins.DecodeOptions(dec, map[string]string{"speed_unit": "KMH"})
	// Every session gets the typed values.
	dec.NewSession(plugins.SessionConfig{Options: opts})
	dec.NewSession(plugins.SessionConfig{}) // no options: the default
	// Output:
	// option "speed_unit": "knots" is not one of kn, kmh
	// session speed unit: kmh
	// session speed unit: kn
}
