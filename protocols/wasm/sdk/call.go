package sdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Call is what one fc_frame or fc_decode call gives the decoder: the
// listener's transport, frame cap and options, the frame's receive time
// and the session's state blob. It is valid during that call only.
type Call struct {
	mod       *Module
	transport Transport
	recvMs    int64
	maxFrame  int
	state     []byte
	opts      *optionSet
}

// Transport is the listener's transport, TCP or UDP.
func (c *Call) Transport() Transport { return c.transport }

// RecvMs is the server receive time of the frame in Unix milliseconds (0
// in Frame).
func (c *Call) RecvMs() int64 { return c.recvMs }

// MaxFrame is the listener's frame cap in bytes: a length field above it is
// ErrTooLarge.
func (c *Call) MaxFrame() int { return c.maxFrame }

// State is the session's state blob as the decoder last returned it
// (Output.SetState), empty at the start of a session. The bytes are
// read-only and valid during the call.
func (c *Call) State() []byte { return c.state }

// Bool is the value of the declared bool option name.
func (c *Call) Bool(name string) bool { return c.option(name, kindBool).b }

// Int is the value of the declared int option name.
func (c *Call) Int(name string) int64 { return c.option(name, kindInt).i }

// Float is the value of the declared float option name.
func (c *Call) Float(name string) float64 { return c.option(name, kindFloat).f }

// String is the value of the declared string or enum option name.
func (c *Call) String(name string) string {
	i := c.mod.optionIndex(name)
	if k := c.mod.specs[i].kind; k != kindString && k != kindEnum {
		panic(fmt.Sprintf("sdk: option %q is a %s option, read as string", name, kindNames[k]))
	}
	return c.opts.values[i].s
}

// option returns the value of the declared option name of kind k. Reading
// an undeclared option, or one of another kind, is a programming mistake:
// it panics, and the SDK turns the panic into an ABI error naming it.
func (c *Call) option(name string, k optionKind) *optionValue {
	i := c.mod.optionIndex(name)
	if dk := c.mod.specs[i].kind; dk != k {
		panic(fmt.Sprintf("sdk: option %q is a %s option, read as %s", name, kindNames[dk], kindNames[k]))
	}
	return &c.opts.values[i]
}

func (m *Module) optionIndex(name string) int {
	for i := range m.specs {
		if m.specs[i].name == name {
			return i
		}
	}
	panic(fmt.Sprintf("sdk: option %q is not declared in Meta.Options of decoder %q", name, m.meta.Name))
}

// optionSet is the parsed form of one options document, in the order of
// Meta.Options.
type optionSet struct {
	raw    []byte
	values []optionValue
	used   uint64 // last use, for eviction
}

// optionCacheSize is how many distinct options documents (listeners) a
// module keeps parsed.
const optionCacheSize = 8

// options returns the parsed options for raw, from the cache when the
// bytes were seen before.
func (m *Module) options(raw []byte) (*optionSet, error) {
	m.tick++
	var victim *optionSet
	for i := range m.optCache {
		o := &m.optCache[i]
		if o.values != nil && bytes.Equal(o.raw, raw) {
			o.used = m.tick
			return o, nil
		}
		if victim == nil || o.values == nil || (victim.values != nil && o.used < victim.used) {
			victim = o
		}
	}
	vals := make([]optionValue, len(m.specs))
	for i := range m.specs {
		vals[i] = m.specs[i].def
	}
	if err := m.parseOptions(raw, vals); err != nil {
		return nil, err
	}
	victim.raw = append(victim.raw[:0], raw...)
	victim.values = vals
	victim.used = m.tick
	return victim, nil
}

// parseOptions reads the options JSON object the host sends (ABI.md
// "Input"): keys of declared options with a bool, number or string value.
// Keys the decoder does not declare are ignored (a newer host may send
// more); an absent key keeps its default.
func (m *Module) parseOptions(raw []byte, vals []optionValue) error {
	p := jsonParser{b: raw}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if !p.expect('{') {
		return fmt.Errorf("options are not a JSON object: %.64q", raw)
	}
	if p.expect('}') {
		return p.end()
	}
	for {
		key, ok := p.str()
		if !ok || !p.expect(':') {
			return fmt.Errorf("options: bad key at byte %d of %.64q", p.i, raw)
		}
		idx := -1
		for i := range m.specs {
			if m.specs[i].name == key {
				idx = i
				break
			}
		}
		var v optionValue
		var err error
		if idx >= 0 {
			v, err = p.value(m.specs[idx])
		} else {
			err = p.skip()
		}
		if err != nil {
			return fmt.Errorf("options: %q: %w", key, err)
		}
		if idx >= 0 {
			vals[idx] = v
		}
		if p.expect(',') {
			continue
		}
		if p.expect('}') {
			return p.end()
		}
		return fmt.Errorf("options: want ',' or '}' at byte %d of %.64q", p.i, raw)
	}
}

// jsonParser is the small JSON reader of the options object: no
// reflection, no allocation beyond the strings it returns.
type jsonParser struct {
	b []byte
	i int
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *jsonParser) expect(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonParser) end() error {
	p.ws()
	if p.i != len(p.b) {
		return fmt.Errorf("options: %d bytes after the object", len(p.b)-p.i)
	}
	return nil
}

// str reads a JSON string.
func (p *jsonParser) str() (string, bool) {
	if !p.expect('"') {
		return "", false
	}
	var out []byte
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), true
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return "", false
			}
			e := p.b[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				if p.i+4 > len(p.b) {
					return "", false
				}
				r, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 16)
				if err != nil {
					return "", false
				}
				p.i += 4
				if r >= 0xD800 && r < 0xDC00 && p.i+6 <= len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					if lo, err := strconv.ParseUint(string(p.b[p.i+2:p.i+6]), 16, 16); err == nil && lo >= 0xDC00 && lo < 0xE000 {
						p.i += 6
						r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					}
				}
				out = utf8.AppendRune(out, rune(r))
			default:
				return "", false
			}
		case c < 0x20:
			return "", false
		default:
			out = append(out, c)
			p.i++
		}
	}
	return "", false
}

// number reads the text of a JSON number.
func (p *jsonParser) number() (string, bool) {
	p.ws()
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			p.i++
			continue
		}
		break
	}
	return string(p.b[start:p.i]), p.i > start
}

func (p *jsonParser) literal(w string) bool {
	p.ws()
	if bytes.HasPrefix(p.b[p.i:], []byte(w)) {
		p.i += len(w)
		return true
	}
	return false
}

// value reads the value of a declared option.
func (p *jsonParser) value(s optionSpec) (optionValue, error) {
	switch s.kind {
	case kindBool:
		switch {
		case p.literal("true"):
			return optionValue{b: true}, nil
		case p.literal("false"):
			return optionValue{b: false}, nil
		}
		return optionValue{}, fmt.Errorf("want true or false at byte %d", p.i)
	case kindInt, kindFloat:
		t, ok := p.number()
		if !ok {
			return optionValue{}, fmt.Errorf("want a number at byte %d", p.i)
		}
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return optionValue{}, fmt.Errorf("number %q: %w", t, err)
		}
		if s.kind == kindFloat {
			return optionValue{f: f}, nil
		}
		i, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			if f != float64(int64(f)) {
				return optionValue{}, fmt.Errorf("%q is not an integer", t)
			}
			i = int64(f)
		}
		return optionValue{i: i}, nil
	default:
		v, ok := p.str()
		if !ok {
			return optionValue{}, fmt.Errorf("want a string at byte %d", p.i)
		}
		return optionValue{s: v}, nil
	}
}

// skip reads over the value of an option the decoder does not declare.
func (p *jsonParser) skip() error {
	p.ws()
	if p.i >= len(p.b) {
		return fmt.Errorf("no value")
	}
	switch c := p.b[p.i]; {
	case c == '"':
		if _, ok := p.str(); !ok {
			return fmt.Errorf("bad string at byte %d", p.i)
		}
	case p.literal("true"), p.literal("false"), p.literal("null"):
	default:
		if _, ok := p.number(); !ok {
			return fmt.Errorf("unexpected byte %q at %d", c, p.i)
		}
	}
	return nil
}

// Input is the input block the host writes before fc_frame and fc_decode
// (ABI.md "Input"). Native tests build it with Encode.
type Input struct {
	Transport Transport
	RecvMs    int64
	MaxFrame  int
	Options   []byte // the options JSON (OptionsJSON)
	State     []byte
	Data      []byte
}

// InputMagic is the first four bytes of an input block.
var InputMagic = [4]byte{'F', 'C', 'I', '1'}

// InputHeaderSize is the size of the input header in bytes.
const InputHeaderSize = 32

// Encode renders the input block.
func (in Input) Encode() []byte {
	b := make([]byte, InputHeaderSize, InputHeaderSize+len(in.Options)+len(in.State)+len(in.Data))
	copy(b, InputMagic[:])
	b[4] = 1
	if in.Transport == UDP {
		b[4] = 2
	}
	binary.LittleEndian.PutUint64(b[8:], uint64(in.RecvMs))
	binary.LittleEndian.PutUint32(b[16:], uint32(in.MaxFrame))
	binary.LittleEndian.PutUint32(b[20:], uint32(len(in.Options)))
	binary.LittleEndian.PutUint32(b[24:], uint32(len(in.State)))
	binary.LittleEndian.PutUint32(b[28:], uint32(len(in.Data)))
	b = append(b, in.Options...)
	b = append(b, in.State...)
	return append(b, in.Data...)
}

// parseInput fills c from an input block and returns the data section.
func (m *Module) parseInput(in []byte, c *Call) ([]byte, error) {
	if len(in) < InputHeaderSize || [4]byte(in[:4]) != InputMagic {
		return nil, fmt.Errorf("input of %d bytes without the FCI1 header", len(in))
	}
	switch in[4] {
	case 1:
		c.transport = TCP
	case 2:
		c.transport = UDP
	default:
		return nil, fmt.Errorf("input transport %d is not 1 (tcp) or 2 (udp)", in[4])
	}
	c.recvMs = int64(binary.LittleEndian.Uint64(in[8:]))
	c.maxFrame = int(binary.LittleEndian.Uint32(in[16:]))
	no := uint64(binary.LittleEndian.Uint32(in[20:]))
	ns := uint64(binary.LittleEndian.Uint32(in[24:]))
	nd := uint64(binary.LittleEndian.Uint32(in[28:]))
	if InputHeaderSize+no+ns+nd != uint64(len(in)) {
		return nil, fmt.Errorf("input sections of %d+%d+%d bytes in a block of %d", no, ns, nd, len(in))
	}
	o := in[InputHeaderSize : InputHeaderSize+no]
	c.state = in[InputHeaderSize+no : InputHeaderSize+no+ns]
	opts, err := m.options(o)
	if err != nil {
		return nil, err
	}
	c.opts = opts
	c.mod = m
	return in[InputHeaderSize+no+ns:], nil
}
