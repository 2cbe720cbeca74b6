// Package all registers every built-in decoder: import it for its side
// effects. One blank import per protocol, one per line. Only protocols of
// real devices belong here: the fictional worked example protocols/acme is
// built and tested (its own tests, the conformance suite) but not served.
package all

import (
	_ "github.com/fleetcore/fleetcore/protocols/acme"
	_ "github.com/fleetcore/fleetcore/protocols/atrack"
	_ "github.com/fleetcore/fleetcore/protocols/castel"
	_ "github.com/fleetcore/fleetcore/protocols/freematics"
	_ "github.com/fleetcore/fleetcore/protocols/galileo"
	_ "github.com/fleetcore/fleetcore/protocols/gl200"
	_ "github.com/fleetcore/fleetcore/protocols/gps103"
	_ "github.com/fleetcore/fleetcore/protocols/gt06"
	_ "github.com/fleetcore/fleetcore/protocols/h02"
	_ "github.com/fleetcore/fleetcore/protocols/jsonl"
	_ "github.com/fleetcore/fleetcore/protocols/jt808"
	_ "github.com/fleetcore/fleetcore/protocols/meiligao"
	_ "github.com/fleetcore/fleetcore/protocols/meitrack"
	_ "github.com/fleetcore/fleetcore/protocols/navis"
	_ "github.com/fleetcore/fleetcore/protocols/obddongle"
	_ "github.com/fleetcore/fleetcore/protocols/osmand"
	_ "github.com/fleetcore/fleetcore/protocols/ruptela"
	_ "github.com/fleetcore/fleetcore/protocols/suntech"
	_ "github.com/fleetcore/fleetcore/protocols/teltonika"
	_ "github.com/fleetcore/fleetcore/protocols/tk103"
	_ "github.com/fleetcore/fleetcore/protocols/ulbotech"
)
