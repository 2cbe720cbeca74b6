package loadgen

import (
	"bufio"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Record is one simulated device record.
type Record struct {
	TS      time.Time
	Lat     float64 // degrees
	Lon     float64 // degrees
	Alt     float64 // m
	Speed   float64 // km/h
	Heading float64 // degrees
	Sats    int
	Odo     float64 // km
	Volt    float64 // V
	// Engine carries the vehicle's engine readings; when it is set the
	// codecs that can (teltonika) send ignition, RPM, coolant and HDOP
	// explicitly instead of deriving the ignition from the speed.
	Engine *Engine
}

// Engine is what an OBD tracker reads besides the fix.
type Engine struct {
	Ignition bool
	RPM      float64 // 1/min
	Coolant  float64 // °C
	HDOP     float64
}

// ZeroFix reports whether the record is a "no fix" record (0,0, no sats).
func (r Record) ZeroFix() bool { return r.Lat == 0 && r.Lon == 0 && r.Sats == 0 }

// Codec encodes one protocol's frames and reads its acks, device side.
type Codec interface {
	// Name is the protocol's registry name.
	Name() string
	// Resolution is the device-time resolution of the protocol's records.
	Resolution() time.Duration
	// MaxPerFrame is how many records one frame can carry.
	MaxPerFrame() int
	// Hello is what the device writes after connecting (its login), nil
	// when the protocol has none.
	Hello(imei string, serial uint16) []byte
	// ReadHelloAck reads and checks the server's reply to Hello.
	ReadHelloAck(r *bufio.Reader) error
	// Encode appends one frame carrying recs (1..MaxPerFrame) to dst.
	// corrupt damages the frame the way a bad link would (a wrong CRC, or
	// for protocols without one, an unparseable frame).
	Encode(dst []byte, imei string, serial uint16, recs []Record, corrupt bool) []byte
	// ReadAck reads and checks the server's acknowledgement of one frame
	// carrying n records.
	ReadAck(r *bufio.Reader, serial uint16, n int) error
}

var codecs = map[string]Codec{}

func registerCodec(c Codec) { codecs[c.Name()] = c }

// CodecFor returns the device-side codec of a protocol.
func CodecFor(name string) (Codec, error) {
	c, ok := codecs[name]
	if !ok {
		return nil, fmt.Errorf("no load generator codec for protocol %q (have %s)", name, strings.Join(CodecNames(), ", "))
	}
	return c, nil
}

// CodecNames lists the protocols the generator speaks, sorted.
func CodecNames() []string {
	out := make([]string, 0, len(codecs))
	for n := range codecs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ErrNack is returned when the server answered with something other than
// the expected acknowledgement.
type ErrNack struct{ Got string }

func (e *ErrNack) Error() string { return "unexpected reply from server: " + e.Got }
