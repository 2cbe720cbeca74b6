// Command watch is the decoder of the kids' and elderly watches that speak
// the "[XX*id*len*content]" protocol (3G, SG, CS, ZJ, … manufacturers;
// Traccar's "watch"), as a fleetcore WebAssembly decoder built with the Go
// guest SDK: `make decoders` writes protocols/wasm/build/decoders/watch.wasm,
// which the default config's decoder folder serves. It is a pure function
// of (state blob, frame): the device id lives in the state blob. See
// README.md.
package main

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/fleetcore/fleetcore/protocols/wasm/sdk"
)

// optMedia says what happens to voice and picture frames (JXTK, TK, img),
// which fleetcore does not store.
var optMedia = sdk.EnumOption{
	Name: "media", Default: "refuse", Values: []string{"refuse", "ack"},
	Help: "voice/picture frames (JXTK, TK, img): refuse = quarantined with the reason and the connection closed; ack = acknowledged as the device expects and dropped",
}

type decoder struct{}

// Frame returns the length of the frame at the start of buf: from its '['
// to the first ']' (the devices escape ']' inside binary content, so the
// first one ends the frame). The length field is not used to frame: see
// README "Length field".
func (decoder) Frame(c *sdk.Call, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	if buf[0] != '[' {
		return 0, sdk.Errorf(sdk.ErrMalformed, "start byte 0x%02x, want '['", buf[0])
	}
	max := c.MaxFrame()
	lim := min(len(buf), max)
	end := bytes.IndexByte(buf[1:lim], ']')
	if end >= 0 {
		end++ // index in buf
		if j := bytes.IndexByte(buf[1:end], '['); j >= 0 {
			return 0, sdk.Errorf(sdk.ErrMalformed, "'[' at offset %d inside a frame: the frame before it was cut", j+1)
		}
		return end + 1, nil
	}
	if j := bytes.IndexByte(buf[1:lim], '['); j >= 0 {
		return 0, sdk.Errorf(sdk.ErrMalformed, "'[' at offset %d inside a frame: the frame before it was cut", j+1)
	}
	if len(buf) >= max {
		return 0, sdk.Errorf(sdk.ErrTooLarge, "no ']' within %d bytes", max)
	}
	return 0, nil
}

// Decode decodes one frame against the session's state.
func (decoder) Decode(c *sdk.Call, frame []byte, out *sdk.Output) error {
	m, err := parseMessage(frame)
	if err != nil {
		return err
	}
	if st := c.State(); len(st) < 2 || st[0] != stateV1 || string(st[1:]) != m.id {
		out.SetDevice(m.id)
		out.SetState(append([]byte{stateV1}, m.id...))
	}
	typ := m.typ
	switch {
	case strings.HasPrefix(typ, "UD") || strings.HasPrefix(typ, "AL") || strings.HasPrefix(typ, "WT"):
		f, err := fields(m.body, m.hasArg)
		if err != nil {
			return err
		}
		p, err := parsePosition(typ, f)
		if err != nil {
			return err
		}
		p.emit(out)
		if strings.HasPrefix(typ, "AL") {
			ack(out, &m, "AL")
		}
		return nil
	case typ == "LK":
		f, err := fields(m.body, m.hasArg)
		if err != nil {
			return err
		}
		// LK[,steps,tumbles,battery]: a record only with the values.
		if len(f) >= 3 {
			var v [3]int64
			for i, name := range []string{"steps", "tumbles", "battery_level"} {
				if v[i], err = nonNegInt(f[i]); err != nil {
					return sdk.Errorf(sdk.ErrMalformed, "LK %s %q, want a non-negative integer", name, clipS(f[i]))
				}
			}
			serverRecord(out).I64("steps", v[0]).I64("tumbles", v[1]).I64("battery_level", v[2])
		}
		ack(out, &m, "LK")
		return nil
	case typ == "INIT":
		ack(out, &m, "INIT,1")
		return nil
	case typ == "TKQ" || typ == "TKQ2":
		ack(out, &m, typ)
		return nil
	case isHealth(typ):
		f, err := fields(m.body, m.hasArg)
		if err != nil {
			return err
		}
		return health(out, typ, f)
	case typ == "JXTK" || typ == "TK" || typ == "img":
		return media(c, out, &m)
	}
	return sdk.Errorf(sdk.ErrUnsupported, "message type %q", typ)
}

// ack appends the answer the devices expect: the same manufacturer, id
// and index, the content's length as 4 lowercase hex digits.
func ack(out *sdk.Output, m *message, content string) {
	const digits = "0123456789abcdef"
	n := len(content)
	out.AckString("[" + m.maker + "*" + m.id + "*")
	if m.index != "" {
		out.AckString(m.index + "*")
	}
	out.Ack([]byte{digits[n>>12&15], digits[n>>8&15], digits[n>>4&15], digits[n&15], '*'})
	out.AckString(content + "]")
}

// serverRecord starts a record timed by the server (the message has no
// time of its own).
func serverRecord(out *sdk.Output) *sdk.Record {
	return out.Record().ServerTimeSeconds().String("time_source", "server")
}

func isHealth(typ string) bool {
	switch strings.ToLower(typ) {
	case "heart", "pulse", "blood", "bphrt", "btemp2", "oxygen":
		return true
	}
	return false
}

// health decodes the health values: heart,RATE / PULSE,RATE;
// bphrt,HIGH,LOW,RATE,… / BLOOD,HIGH,LOW[,RATE]; btemp2,FLAG,°C;
// oxygen,FLAG,SpO2%. A flag of 0 (no measurement) gives no record.
func health(out *sdk.Output, typ string, f []string) error {
	lt := strings.ToLower(typ)
	bad := func(what, v string) error {
		return sdk.Errorf(sdk.ErrMalformed, "%s %s %q, want a number", typ, what, clipS(v))
	}
	switch lt {
	case "heart", "pulse":
		if len(f) < 1 {
			return sdk.Errorf(sdk.ErrMalformed, "%s without a value", typ)
		}
		v, err := nonNegInt(f[0])
		if err != nil || v > 300 {
			return bad("heart rate", f[0])
		}
		serverRecord(out).I64("heart_rate", v)
	case "bphrt", "blood":
		if len(f) < 2 {
			return sdk.Errorf(sdk.ErrMalformed, "%s with %d values, want systolic,diastolic[,heart rate]", typ, len(f))
		}
		hi, err1 := nonNegInt(f[0])
		lo, err2 := nonNegInt(f[1])
		if err1 != nil || hi > 400 {
			return bad("systolic pressure", f[0])
		}
		if err2 != nil || lo > 400 {
			return bad("diastolic pressure", f[1])
		}
		r := serverRecord(out).I64("pressure_high", hi).I64("pressure_low", lo)
		if len(f) > 2 && strings.TrimSpace(f[2]) != "" {
			v, err := nonNegInt(f[2])
			if err != nil || v > 300 {
				return bad("heart rate", f[2])
			}
			r.I64("heart_rate", v)
		}
	case "btemp2", "oxygen":
		if len(f) < 2 {
			return sdk.Errorf(sdk.ErrMalformed, "%s with %d values, want flag,value", typ, len(f))
		}
		flag, err := nonNegInt(f[0])
		if err != nil {
			return bad("flag", f[0])
		}
		if flag == 0 && lt == "btemp2" {
			return nil // no measurement
		}
		s := strings.TrimSpace(f[1])
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || strings.ContainsAny(s, "eEnNiI") {
			return bad("value", f[1])
		}
		if lt == "btemp2" {
			if v < 20 || v > 50 {
				return bad("body temperature (20-50 °C)", f[1])
			}
			serverRecord(out).F64("temp1", v)
			return nil
		}
		if v < 0 || v > 100 {
			return bad("blood oxygen (0-100 %)", f[1])
		}
		serverRecord(out).F64("blood_oxygen", v)
	}
	return nil
}

// media handles voice (JXTK chunks, TK) and picture (img) frames, which
// fleetcore does not store: refused with the reason (quarantined, so the
// bytes are kept), or with media = "ack" acknowledged and dropped.
func media(c *sdk.Call, out *sdk.Output, m *message) error {
	what := "picture"
	if m.typ != "img" {
		what = "voice message"
	}
	desc := strconv.Itoa(len(m.body)) + " bytes"
	if m.typ == "JXTK" {
		// JXTK,<?>,<file>,<part>,<parts>,<AMR bytes>
		f := bytes.SplitN(m.body, []byte{','}, 5)
		if len(f) < 5 {
			return sdk.Errorf(sdk.ErrMalformed, "JXTK with %d header fields, want 4 before the audio", len(f)-1)
		}
		part, err1 := nonNegInt(string(f[2]))
		parts, err2 := nonNegInt(string(f[3]))
		if err1 != nil || err2 != nil || part < 1 || part > parts {
			return sdk.Errorf(sdk.ErrMalformed, "JXTK part %q of %q", clip(f[2]), clip(f[3]))
		}
		desc = "part " + strconv.FormatInt(part, 10) + "/" + strconv.FormatInt(parts, 10) + " of " + clip(f[1]) + ", " + strconv.Itoa(len(f[4])) + " bytes"
	}
	if optMedia.Get(c) != "ack" {
		return sdk.Errorf(sdk.ErrUnsupported, "%s %s (%s): fleetcore stores no media (listener option media = \"ack\" acknowledges and drops them)", m.typ, what, desc)
	}
	if m.typ == "JXTK" {
		ack(out, m, "JXTKR,1")
	}
	return nil
}

func nonNegInt(s string) (int64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseInt(s, 10, 64)
	if err == nil && (v < 0 || v > 1<<40) {
		err = strconv.ErrRange
	}
	return v, err
}

func init() {
	sdk.Register(sdk.Meta{
		Name:         "watch",
		Version:      "1.0.0",
		Description:  "kids' and elderly watches, [XX*id*len*content] (3G, SG, CS, ZJ…): UD/AL/WT positions, LK links, alarms, health values; TCP",
		Transports:   []sdk.Transport{sdk.TCP},
		DefaultPort:  defaultPort,
		StateVersion: 1,
		StateMax:     1 + maxID,
		Options:      []sdk.Option{optMedia},
		Tests:        selfTests,
	}, decoder{})
}

func main() {}

// defaultPort: Traccar serves watches on 5093, which the default config
// gives to obddongle; 5193 is free there (README "Port").
const defaultPort = 5193
