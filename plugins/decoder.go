package plugins

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/signal"
)

// Transport names a listener kind.
type Transport string

// Transports a decoder may support. HTTP protocols are framed over TCP by
// the decoder itself (it parses the HTTP/1.1 request and writes the
// response as its ack), so the gateway needs no HTTP knowledge.
const (
	TCP Transport = "tcp"
	UDP Transport = "udp"
)

// Sentinel errors a session wraps so the gateway can label the rejection.
var (
	// ErrMalformed: the bytes can never form a valid frame (garbage, bad
	// header, impossible length). The connection is closed.
	ErrMalformed = errors.New("malformed frame")
	// ErrChecksum: the frame's CRC/checksum does not match.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrTooLarge: a length field exceeds the frame cap.
	ErrTooLarge = errors.New("frame too large")
	// ErrUnauthorized: the device is not allowed (allow-list).
	ErrUnauthorized = errors.New("device not allowed")
	// ErrNoDevice: a data frame arrived before the device identified itself.
	ErrNoDevice = errors.New("no device identification")
	// ErrUnsupported: a well-formed frame of a kind the decoder does not
	// handle (it is rejected and quarantined, not silently acked).
	ErrUnsupported = errors.New("unsupported frame")
	// ErrPanic: the session's Frame or Decode panicked. The gateway wraps
	// it with the panic value, quarantines the frame and closes only that
	// connection (UDP: drops the source's session); a decoder never
	// returns it.
	ErrPanic = errors.New("decoder panicked")
)

// Info describes a decoder.
type Info struct {
	Name        string      // registry id, lowercase, e.g. "teltonika"
	Transports  []Transport // transports it supports
	DefaultPort int         // its conventional port
	Description string
	// Options are the listener options the decoder accepts, in the order
	// docs list them; any other key is a configuration error. A session
	// reads them from SessionConfig.Options with each option's Get.
	Options []Option
}

// SessionConfig is what the gateway hands to a new session.
type SessionConfig struct {
	Transport  Transport
	RemoteAddr net.Addr
	// MaxFrame is the cap on a frame's length in bytes; a length field
	// beyond it is ErrTooLarge.
	MaxFrame int
	// AllowDevice, when not nil, reports whether a device id may connect.
	AllowDevice func(deviceID string) bool
	// Options are the listener's options, decoded and validated once
	// against Info.Options (DecodeOptions) when the listener was
	// configured; the zero value gives every option its default.
	Options Options
	Logger  hclog.Logger
}

// Decoder is a registered protocol. It is safe for concurrent use and makes
// one Session per connection (TCP) or per datagram source (UDP).
type Decoder interface {
	Info() Info
	NewSession(cfg SessionConfig) Session
}

// Session is one connection's protocol state (the device id after login,
// sequence numbers). It is used by one goroutine at a time.
type Session interface {
	// Frame returns the length of the first complete frame at the start of
	// buf, 0 when more bytes are needed, or an error (wrapping one of the
	// sentinels) when buf cannot start a valid frame. For UDP the whole
	// datagram is one frame and Frame is not called.
	Frame(buf []byte) (int, error)
	// Decode decodes one complete frame received at recv. The frame slice
	// is only valid during the call; signals must not retain it except via
	// a copy (set Signal.Frame to a copy).
	Decode(frame []byte, recv time.Time) (Result, error)
}

// Result is what one frame produced.
type Result struct {
	// Signals decoded from the frame (may be empty: login, heartbeat).
	Signals []signal.Signal
	// Ack is written to the device once every signal is durable; when
	// there are no signals it is written at once. Nil writes nothing.
	Ack []byte
	// Close closes the connection after the ack is written (e.g. a refused
	// login).
	Close bool
	// DeviceID is the device the frame belongs to, when known (for logs
	// and the quarantine table).
	DeviceID string
}

// CheckSignals refuses a frame with a record that cannot be stored (see
// signal.Check, which names the field, the value and the cap): such a
// record would fail the whole batch it lands in, and with it other devices'
// records. The error wraps ErrMalformed and signal.ErrInvalid. Every path
// that turns frames into records runs it: the gateway before it submits a
// frame's records, and replay (`fleetcore decode`, the corpus tests).
func CheckSignals(sigs []signal.Signal) error {
	for i := range sigs {
		if err := sigs[i].Check(); err != nil {
			return fmt.Errorf("%w: record %d: %w", ErrMalformed, i, err)
		}
	}
	return nil
}

// Rejecter is an optional Session capability: the reply to send before the
// connection closes on a rejected frame (e.g. an HTTP 400 with a reason).
type Rejecter interface {
	Reject(err error) []byte
}

// DeviceIdentifier is an optional Session capability: the device id known
// to the session so far (used to label rejected frames).
type DeviceIdentifier interface {
	DeviceID() string
}

// Registry maps decoder names to decoders. The zero value is not usable;
// use NewRegistry. Tests create their own empty registries.
type Registry struct {
	mu sync.RWMutex
	m  map[string]Decoder
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{m: map[string]Decoder{}} }

// Register adds a decoder. It panics on an empty or duplicate name or a
// malformed option declaration: that is a programming mistake found at init
// time.
func (r *Registry) Register(d Decoder) {
	info := d.Info()
	name := info.Name
	if name == "" {
		panic("plugins: decoder with empty name")
	}
	if err := checkOptions(info); err != nil {
		panic(fmt.Sprintf("plugins: decoder %q: %v", name, err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		panic(fmt.Sprintf("plugins: decoder %q registered twice", name))
	}
	r.m[name] = d
}

// Lookup returns the decoder by name.
func (r *Registry) Lookup(name string) (Decoder, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.m[name]
	return d, ok
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.m))
	for n := range r.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Decoders is the process-wide registry that built-in decoders register
// into from init (import protocols/all).
var Decoders = NewRegistry()

// Register adds a decoder to the process-wide registry.
func Register(d Decoder) { Decoders.Register(d) }
