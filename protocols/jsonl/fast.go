package jsonl

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/fleetcore/fleetcore/signal"
)

// parseFast decodes the common shape of a line without encoding/json: one
// object whose keys are exactly the canonical names, string values
// without escapes, numbers, booleans, a dtcs array of strings and an attrs
// object of scalars. It reports false for anything else (escapes, null,
// nested values, other key spellings, invalid JSON, values out of range),
// and Parse then takes encoding/json's path, which decides and names the
// error. Where it reports true its result is what that path would give
// (FuzzFastMatchesEncodingJSON).
func parseFast(line []byte, p *parsed) bool {
	s := scanner{b: line}
	sig := &p.sig
	sig.ClearNumbers()
	s.ws()
	if !s.byte('{') {
		return false
	}
	s.ws()
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			key, ok := s.str()
			if !ok {
				return false
			}
			s.ws()
			if !s.byte(':') {
				return false
			}
			s.ws()
			if !p.field(&s, key) {
				return false
			}
			s.ws()
			if s.byte(',') {
				s.ws()
				continue
			}
			if s.byte('}') {
				break
			}
			return false
		}
	}
	s.ws()
	return s.i == len(s.b)
}

// field decodes the value of one top-level key.
func (p *parsed) field(s *scanner, key []byte) bool {
	sig := &p.sig
	var f *float64
	switch string(key) {
	case "device_id":
		v, ok := s.str()
		if !ok {
			return false
		}
		sig.DeviceID = string(v)
		return true
	case "ts", "recv":
		t, ok := s.time()
		if !ok {
			return false
		}
		if key[0] == 't' {
			p.ts, p.hasTS = t, true
		}
		return true
	case "protocol":
		v, ok := s.str()
		if !ok {
			return false
		}
		p.src = string(v)
		return true
	case "path", "decoder_version":
		_, ok := s.str()
		return ok
	case "valid":
		b, ok := s.boolean()
		if !ok {
			return false
		}
		sig.Valid = signal.FlagOf(b)
		return true
	case "dtcs":
		return p.dtcs(s)
	case "attrs":
		return p.attrs(s)
	case "lat":
		f = &sig.Lat
	case "lon":
		f = &sig.Lon
	case "alt":
		f = &sig.Alt
	case "speed":
		f = &sig.Speed
	case "heading":
		f = &sig.Heading
	case "sats":
		f = &sig.Sats
	case "hdop":
		f = &sig.HDOP
	case "rpm":
		f = &sig.RPM
	case "coolant":
		f = &sig.Coolant
	case "fuel":
		f = &sig.Fuel
	case "voltage":
		f = &sig.Voltage
	case "odometer":
		f = &sig.Odometer
	case "engine_load":
		f = &sig.EngineLoad
	case "throttle":
		f = &sig.Throttle
	default:
		return false
	}
	n, ok := s.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return false
	}
	*f = v
	return true
}

func (p *parsed) dtcs(s *scanner) bool {
	if !s.byte('[') {
		return false
	}
	d := make([]string, 0, 4)
	s.ws()
	if s.byte(']') {
		p.sig.DTCs = d
		return true
	}
	for {
		v, ok := s.str()
		if !ok {
			return false
		}
		d = append(d, string(v))
		s.ws()
		if s.byte(',') {
			s.ws()
			continue
		}
		if s.byte(']') {
			p.sig.DTCs = d
			return true
		}
		return false
	}
}

// attrs decodes an object of scalars as encoding/json with UseNumber and
// signal's normalisation do: integers as int64, other numbers as
// float64, strings, booleans.
func (p *parsed) attrs(s *scanner) bool {
	if !s.byte('{') {
		return false
	}
	s.ws()
	if s.byte('}') {
		return true
	}
	for {
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if !s.byte(':') {
			return false
		}
		s.ws()
		var v any
		switch c := s.peek(); {
		case c == '"':
			str, ok := s.str()
			if !ok {
				return false
			}
			v = string(str)
		case c == 't' || c == 'f':
			b, ok := s.boolean()
			if !ok {
				return false
			}
			v = b
		default:
			n, ok := s.number()
			if !ok {
				return false
			}
			if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
				v = i
			} else if f, err := strconv.ParseFloat(string(n), 64); err == nil && !math.IsInf(f, 0) {
				v = f
			} else {
				return false
			}
		}
		p.sig.SetAttr(string(key), v)
		s.ws()
		if s.byte(',') {
			s.ws()
			continue
		}
		return s.byte('}')
	}
}

// scanner reads JSON tokens from b at i.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) byte(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str reads a string without escapes or control characters, valid UTF-8,
// and returns its contents (aliasing b).
func (s *scanner) str() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, utf8.Valid(v)
		case c == '\\' || c < 0x20:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// time reads an RFC 3339 string as time.Time's UnmarshalJSON does.
func (s *scanner) time() (time.Time, bool) {
	start := s.i
	if _, ok := s.str(); !ok {
		return time.Time{}, false
	}
	var t time.Time
	if err := t.UnmarshalJSON(s.b[start:s.i]); err != nil {
		return time.Time{}, false
	}
	return t, true
}

func (s *scanner) boolean() (bool, bool) {
	switch {
	case s.lit("true"):
		return true, true
	case s.lit("false"):
		return false, true
	}
	return false, false
}

func (s *scanner) lit(w string) bool {
	if len(s.b)-s.i >= len(w) && string(s.b[s.i:s.i+len(w)]) == w {
		s.i += len(w)
		return true
	}
	return false
}

// number reads a JSON number (RFC 8259 grammar) and returns its text.
func (s *scanner) number() ([]byte, bool) {
	start := s.i
	s.byte('-')
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return nil, false
	}
	if s.byte('.') {
		if !s.digits() {
			return nil, false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
