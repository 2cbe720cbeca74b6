package sdk

import (
	"fmt"
)

// ABIVersion is the decoder ABI version the SDK implements (fc_abi).
const ABIVersion = 1

// Decoder is a protocol written against the SDK. Its methods are called
// for every connection of every listener the module serves, on pooled
// instances: keep nothing per connection in the decoder or in globals;
// per-connection data lives in the state blob (Call.State,
// Output.SetState).
type Decoder interface {
	// Frame returns the length of the first complete frame at the start
	// of buf (the bytes buffered on a TCP connection, starting at a frame
	// boundary), 0 when more bytes are needed, or an error wrapping a
	// sentinel when buf cannot start a valid frame. Never more than
	// len(buf). Not called for UDP.
	Frame(c *Call, buf []byte) (int, error)
	// Decode decodes one frame (a framed TCP frame or a UDP datagram)
	// into out. An error wrapping a sentinel refuses the frame: the host
	// quarantines it, writes the reject reply and closes the connection;
	// the records, ack and state set so far are dropped.
	Decode(c *Call, frame []byte, out *Output) error
}

// Module is one decoder and the buffers its calls reuse: what the wasip1
// exports call, and what native tests drive with the bytes the host
// exchanges. It is used by one caller at a time.
type Module struct {
	meta     Meta
	metaJSON string
	dec      Decoder
	specs    []optionSpec
	optCache [optionCacheSize]optionSet
	tick     uint64
	call     Call
	out      Output
	outBuf   []byte
	errMsg   []byte
}

// NewModule validates the metadata and returns a module serving d.
func NewModule(m Meta, d Decoder) (*Module, error) {
	if d == nil {
		return nil, fmt.Errorf("decoder %q: nil Decoder", m.Name)
	}
	js, err := m.JSON()
	if err != nil {
		return nil, err
	}
	mod := &Module{meta: m, metaJSON: js, dec: d}
	for _, o := range m.Options {
		mod.specs = append(mod.specs, o.spec())
	}
	return mod, nil
}

// MetaJSON is the fc_meta document.
func (m *Module) MetaJSON() string { return m.metaJSON }

// Meta is the module's metadata.
func (m *Module) Meta() Meta { return m.meta }

// Error is the message of the last negative Frame result (fc_error).
func (m *Module) Error() []byte { return m.errMsg }

func (m *Module) setError(msg string) {
	if len(msg) > MaxMessage {
		msg = clipUTF8(msg, MaxMessage)
	}
	m.errMsg = append(m.errMsg[:0], msg...)
}

// Frame runs fc_frame on an input block: 0 need more, n > 0 a frame of n
// bytes, a negative Code on error (message in Error).
func (m *Module) Frame(input []byte) (n int32) {
	m.errMsg = m.errMsg[:0]
	data, err := m.parseInput(input, &m.call)
	if err != nil {
		m.setError("sdk: " + err.Error())
		return int32(CodeABI)
	}
	defer func() {
		if p := recover(); p != nil {
			m.setError(fmt.Sprintf("panic in %s Frame: %v", m.meta.Name, p))
			n = int32(CodeABI)
		}
	}()
	got, err := m.dec.Frame(&m.call, data)
	if err != nil {
		c := CodeOf(err)
		if c == CodeABI {
			m.setError("sdk: Frame returned an error wrapping no sdk sentinel: " + err.Error())
		} else {
			m.setError(err.Error())
		}
		return int32(c)
	}
	if got < 0 || got > len(data) {
		m.setError(fmt.Sprintf("sdk: Frame returned %d with %d bytes buffered", got, len(data)))
		return int32(CodeABI)
	}
	return int32(got)
}

// Decode runs fc_decode on an input block and returns the output block
// (valid until the next call: the buffer is reused).
func (m *Module) Decode(input []byte) (res []byte) {
	m.out.reset()
	data, err := m.parseInput(input, &m.call)
	if err != nil {
		m.outBuf = m.out.encode(m.outBuf, CodeABI, "sdk: "+err.Error())
		return m.outBuf
	}
	defer func() {
		if p := recover(); p != nil {
			m.outBuf = m.out.encode(m.outBuf, CodeABI, fmt.Sprintf("panic in %s Decode: %v", m.meta.Name, p))
			res = m.outBuf
		}
	}()
	err = m.dec.Decode(&m.call, data, &m.out)
	switch {
	case err != nil:
		c := CodeOf(err)
		msg := err.Error()
		if c == CodeABI {
			msg = "sdk: Decode returned an error wrapping no sdk sentinel: " + msg
		}
		m.outBuf = m.out.encode(m.outBuf, c, msg)
	case m.out.err != nil:
		m.outBuf = m.out.encode(m.outBuf, CodeABI, "sdk: "+m.meta.Name+": "+m.out.err.Error())
	case m.meta.StateMax >= 0 && m.out.stateSet && len(m.out.state) > m.meta.StateMax:
		m.outBuf = m.out.encode(m.outBuf, CodeABI, fmt.Sprintf("sdk: %s: state of %d bytes exceeds state_max %d", m.meta.Name, len(m.out.state), m.meta.StateMax))
	default:
		m.outBuf = m.out.encode(m.outBuf, 0, "")
	}
	return m.outBuf
}

// registered is the module of this wasm binary (Register).
var registered *Module

// Register installs the decoder of this module; call it from init (a
// wasip1 reactor never runs main). It panics on invalid metadata and on a
// second call: both are programming mistakes found at build-test time.
func Register(m Meta, d Decoder) {
	if registered != nil {
		panic(fmt.Sprintf("sdk: Register called twice (%q, then %q)", registered.meta.Name, m.Name))
	}
	mod, err := NewModule(m, d)
	if err != nil {
		panic("sdk: " + err.Error())
	}
	registered = mod
}

// Registered is the module Register installed (nil before).
func Registered() *Module { return registered }
