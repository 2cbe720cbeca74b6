// Command wialon is the Wialon IPS 1.1 and 2.0 decoder (Traccar's "wialon"
// port 5039) as a fleetcore WebAssembly decoder, built with the Go guest
// SDK: `make decoders` writes protocols/wasm/build/decoders/wialon.wasm,
// which the default config's decoder folder serves. It is a pure function
// of (state blob, frame): the login id and protocol version live in the
// state blob. See README.md.
package main

import (
	"errors"
	"strconv"
	"strings"

	"github.com/fleetcore/fleetcore/protocols/wasm/sdk"
)

type decoder struct{}

// Frame returns the length of the line at the start of buf, its "\n"
// included (devices end every message with "\r\n").
func (decoder) Frame(c *sdk.Call, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	if b := buf[0]; b != '#' && !(b >= '0' && b <= '9') && !(b >= 'A' && b <= 'Z') && !(b >= 'a' && b <= 'z') {
		return 0, sdk.Errorf(sdk.ErrMalformed, "start byte 0x%02x, want '#' or a device id", b)
	}
	max := c.MaxFrame()
	lim := min(len(buf), max)
	for i := 0; i < lim; i++ {
		switch buf[i] {
		case '\n':
			return i + 1, nil
		case 0:
			return 0, sdk.Errorf(sdk.ErrMalformed, "NUL byte at offset %d", i)
		}
	}
	if len(buf) >= max {
		return 0, sdk.Errorf(sdk.ErrTooLarge, "no line end within %d bytes", max)
	}
	return 0, nil
}

// Decode decodes one message (a TCP line, or a UDP datagram) against the
// session's state.
func (decoder) Decode(c *sdk.Call, frame []byte, out *sdk.Output) error {
	// Every message ends with "\r\n", datagrams too: without it a cut
	// message could pass for a whole one (1.1 has no checksum).
	if len(frame) == 0 || frame[len(frame)-1] != '\n' {
		return sdk.Errorf(sdk.ErrMalformed, "message without its line end (\\r\\n)")
	}
	line := strings.TrimSuffix(string(frame[:len(frame)-1]), "\r")
	if strings.ContainsAny(line, "\r\n\x00") {
		return sdk.Errorf(sdk.ErrMalformed, "a control byte inside the message")
	}
	res, err := decode(parseState(c.State()), line)
	if err != nil {
		var f *failure
		if errors.As(err, &f) {
			out.RejectString(f.answer)
			return sdk.Errorf(sentinel(f.kind), "%s", f.msg)
		}
		return err
	}
	if res.device != "" {
		out.SetDevice(res.device)
	}
	if res.setState {
		out.SetState(res.state.bytes())
	}
	for i := range res.records {
		emit(out.Record(), &res.records[i])
	}
	out.AckString(res.ack)
	return nil
}

func sentinel(k kind) error {
	switch k {
	case kChecksum:
		return sdk.ErrChecksum
	case kNoDevice:
		return sdk.ErrNoDevice
	case kUnsupported:
		return sdk.ErrUnsupported
	case kTooLarge:
		return sdk.ErrTooLarge
	}
	return sdk.ErrMalformed
}

// emit writes a record to the output.
func emit(o *sdk.Record, r *record) {
	if r.hasTS {
		o.Time(r.ts)
	} else {
		o.String("time_source", "server")
	}
	o.Lat(r.lat).Lon(r.lon).Speed(r.speed).Heading(r.course).Alt(r.alt).Sats(r.sats).HDOP(r.hdop)
	if r.valid >= 0 {
		o.Valid(r.valid == 1)
	}
	if r.hasInputs {
		o.I64("input", r.inputs)
	}
	if r.hasOutputs {
		o.I64("output", r.outputs)
	}
	if r.driverID != "" {
		o.String("driver_id", r.driverID)
	}
	if r.archive {
		o.Bool("archive", true)
	}
	if r.message != "" {
		o.String("message", r.message)
	}
	for _, v := range r.attrs {
		switch v.kind {
		case 'i':
			o.I64(v.name, v.i)
		case 'f':
			o.F64(v.name, v.f)
		case 'b':
			o.Bool(v.name, v.b)
		default:
			o.String(v.name, v.s)
		}
	}
}

// result is what one message produced.
type result struct {
	device   string // the session's device from now on ("" unchanged)
	state    state
	setState bool
	records  []record
	ack      string
}

// decode is the whole decoder as a function of the state and the message
// (without its line end).
func decode(st state, line string) (result, error) {
	p, err := splitPacket(line)
	if err != nil {
		return result{}, err
	}
	version := st.version
	if p.version != "" {
		version = v20 // the UDP form of 2.0 ("2.0;IMEI#…") carries its version
	}
	device := p.imei
	if device == "" {
		device = st.imei
	}
	needDevice := func() error {
		if device == "" {
			return fail(kNoDevice, "", "#%s# before a login (#L#) or a packet naming the device", p.typ)
		}
		return nil
	}
	res := result{device: p.imei}
	switch p.typ {
	case "L":
		l, err := parseLogin(p.body)
		if err != nil {
			return result{}, err
		}
		return result{device: l.imei, state: state(l), setState: true, ack: "#AL#1\r\n"}, nil
	case "P":
		res.ack = "#AP#\r\n"
		return res, nil
	case "SD", "D":
		if err := needDevice(); err != nil {
			return result{}, err
		}
		a, crcAnswer := answersD, "#AD#16\r\n"
		if p.typ == "SD" {
			a, crcAnswer = answersSD, "#ASD#13\r\n"
		}
		msg := p.body
		if version == v20 {
			if msg, err = checkCRC(p.body, ';', a.structure, crcAnswer); err != nil {
				return result{}, err
			}
		}
		r, err := parseRecord(msg, a)
		if err != nil {
			return result{}, err
		}
		res.records = []record{r}
		res.ack = "#A" + p.typ + "#1\r\n"
		return res, nil
	case "B":
		if err := needDevice(); err != nil {
			return result{}, err
		}
		msg := p.body
		if version == v20 {
			if msg, err = checkCRC(p.body, '|', "#AB#0\r\n", "#AB#\r\n"); err != nil {
				return result{}, err
			}
		}
		msgs := strings.Split(msg, "|")
		if len(msgs) > maxRecords {
			return result{}, fail(kMalformed, "#AB#0\r\n", "black box packet of %d messages, at most %d", len(msgs), maxRecords)
		}
		for i, m := range msgs {
			r, err := parseRecord(m, answersB)
			if err != nil {
				var f *failure
				if errors.As(err, &f) {
					f.msg = "message " + strconv.Itoa(i+1) + " of " + strconv.Itoa(len(msgs)) + ": " + f.msg
				}
				return result{}, err
			}
			r.archive = true
			res.records = append(res.records, r)
		}
		res.ack = "#AB#" + strconv.Itoa(len(msgs)) + "\r\n"
		return res, nil
	case "M":
		if err := needDevice(); err != nil {
			return result{}, err
		}
		msg := p.body
		if version == v20 {
			if msg, err = checkCRC(p.body, ';', "#AM#0\r\n", "#AM#01\r\n"); err != nil {
				return result{}, err
			}
		}
		if msg == "" || len(msg) > maxString {
			return result{}, fail(kMalformed, "#AM#0\r\n", "message to the driver of %d bytes (1–%d)", len(msg), maxString)
		}
		r := newRecord()
		r.message = msg
		res.records = []record{r}
		res.ack = "#AM#1\r\n"
		return res, nil
	}
	return result{}, fail(kUnsupported, "", "packet type #%s#", p.typ)
}

func init() {
	sdk.Register(sdk.Meta{
		Name:         "wialon",
		Version:      "1.0.0",
		Description:  "Wialon IPS 1.1 and 2.0 (#L#, #SD#, #D#, #B#, #P#, #M#; CRC-16 in 2.0), TCP lines and UDP datagrams",
		Transports:   []sdk.Transport{sdk.TCP, sdk.UDP},
		DefaultPort:  5039,
		StateVersion: 1,
		StateMax:     1 + maxIMEI,
		Tests:        selfTests,
	}, decoder{})
}

func main() {}
