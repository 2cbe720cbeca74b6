package checklang

import (
	"fmt"
	"math"
	"strings"
)

// A small WebAssembly binary encoder: just what the code generator needs
// (MVP instructions, numeric types, one memory, no imports). Every emitted
// instruction is also written as WebAssembly text, so that `rules inspect
// -wat` can show the generated module.

// Value types.
const (
	tI32 byte = 0x7f
	tI64 byte = 0x7e
	tF64 byte = 0x7c
)

var typeNames = map[byte]string{tI32: "i32", tI64: "i64", tF64: "f64"}

// blockVoid is the empty block type.
const blockVoid byte = 0x40

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// funcType is a function signature.
type funcType struct{ params, results []byte }

func (t funcType) key() string { return string(t.params) + "|" + string(t.results) }

func (t funcType) wat() string {
	var b strings.Builder
	for _, p := range t.params {
		b.WriteString(" (param " + typeNames[p] + ")")
	}
	for _, r := range t.results {
		b.WriteString(" (result " + typeNames[r] + ")")
	}
	return b.String()
}

// fn is one function body under construction.
type fn struct {
	name   string
	typ    funcType
	locals []byte // types of the locals after the parameters
	code   []byte
	wat    strings.Builder
	depth  int
}

func newFn(name string, t funcType) *fn { return &fn{name: name, typ: t} }

// local declares a new local of type t and returns its index.
func (f *fn) local(t byte) uint32 {
	f.locals = append(f.locals, t)
	return uint32(len(f.typ.params) + len(f.locals) - 1)
}

func (f *fn) line(s string) {
	f.wat.WriteString(strings.Repeat("  ", f.depth+2))
	f.wat.WriteString(s)
	f.wat.WriteByte('\n')
}

// op emits a one-byte instruction without immediates.
func (f *fn) op(code byte, name string) {
	f.code = append(f.code, code)
	f.line(name)
}

func (f *fn) i32(v int32) {
	f.code = appendS64(append(f.code, 0x41), int64(v))
	f.line(fmt.Sprintf("i32.const %d", v))
}

func (f *fn) i64(v int64) {
	f.code = appendS64(append(f.code, 0x42), v)
	f.line(fmt.Sprintf("i64.const %d", v))
}

func (f *fn) f64(v float64) {
	bits := math.Float64bits(v)
	if v != v {
		bits = 0x7ff8000000000000 // the canonical quiet NaN (WAT "nan", the host's absent value)
	}
	f.code = append(f.code, 0x44)
	for i := 0; i < 8; i++ {
		f.code = append(f.code, byte(bits>>(8*i)))
	}
	f.line("f64.const " + watFloat(v))
}

func watFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return fmt.Sprintf("%v", v)
}

func (f *fn) get(i uint32) {
	f.code = appendU32(append(f.code, 0x20), i)
	f.line(fmt.Sprintf("local.get %d", i))
}

func (f *fn) set(i uint32) {
	f.code = appendU32(append(f.code, 0x21), i)
	f.line(fmt.Sprintf("local.set %d", i))
}

func (f *fn) tee(i uint32) {
	f.code = appendU32(append(f.code, 0x22), i)
	f.line(fmt.Sprintf("local.tee %d", i))
}

// mem emits a load or store with its alignment (log2) and offset.
func (f *fn) mem(code byte, name string, align, offset uint32) {
	f.code = appendU32(appendU32(append(f.code, code), align), offset)
	if offset != 0 {
		f.line(fmt.Sprintf("%s offset=%d", name, offset))
	} else {
		f.line(name)
	}
}

func (f *fn) i32Load(offset uint32)  { f.mem(0x28, "i32.load", 2, offset) }
func (f *fn) i64Load(offset uint32)  { f.mem(0x29, "i64.load", 3, offset) }
func (f *fn) f64Load(offset uint32)  { f.mem(0x2b, "f64.load", 3, offset) }
func (f *fn) i32Store(offset uint32) { f.mem(0x36, "i32.store", 2, offset) }

func (f *fn) memorySize() { f.code = append(f.code, 0x3f, 0x00); f.line("memory.size") }
func (f *fn) memoryGrow() { f.code = append(f.code, 0x40, 0x00); f.line("memory.grow") }

func blockName(bt byte) string {
	if bt == blockVoid {
		return ""
	}
	return " (result " + typeNames[bt] + ")"
}

func (f *fn) block(bt byte) {
	f.code = append(f.code, 0x02, bt)
	f.line("block" + blockName(bt))
	f.depth++
}

func (f *fn) loop(bt byte) {
	f.code = append(f.code, 0x03, bt)
	f.line("loop" + blockName(bt))
	f.depth++
}

func (f *fn) ifThen(bt byte) {
	f.code = append(f.code, 0x04, bt)
	f.line("if" + blockName(bt))
	f.depth++
}

func (f *fn) elseDo() {
	f.depth--
	f.code = append(f.code, 0x05)
	f.line("else")
	f.depth++
}

func (f *fn) end() {
	f.depth--
	f.code = append(f.code, 0x0b)
	f.line("end")
}

func (f *fn) brIf(depth uint32) {
	f.code = appendU32(append(f.code, 0x0d), depth)
	f.line(fmt.Sprintf("br_if %d", depth))
}

func (f *fn) ret() { f.op(0x0f, "return") }

func (f *fn) call(idx uint32, name string) {
	f.code = appendU32(append(f.code, 0x10), idx)
	f.line(fmt.Sprintf("call %d (;%s;)", idx, name))
}

// body returns the function's code section entry (without its size).
func (f *fn) body() []byte {
	var b []byte
	// Run-length groups of equal local types.
	type group struct {
		n uint32
		t byte
	}
	var gs []group
	for _, t := range f.locals {
		if len(gs) > 0 && gs[len(gs)-1].t == t {
			gs[len(gs)-1].n++
		} else {
			gs = append(gs, group{1, t})
		}
	}
	b = appendU32(b, uint32(len(gs)))
	for _, g := range gs {
		b = appendU32(b, g.n)
		b = append(b, g.t)
	}
	b = append(b, f.code...)
	return append(b, 0x0b)
}

// module is a whole module: functions, one memory, exports, one data
// segment.
type module struct {
	funcs    []*fn
	exports  []string // function exports by index into funcs ("" = none)
	minPages uint32
	dataOff  uint32
	data     []byte
}

func section(b []byte, id byte, content []byte) []byte {
	b = append(b, id)
	b = appendU32(b, uint32(len(content)))
	return append(b, content...)
}

// encode returns the binary module.
func (m *module) encode() []byte {
	b := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	var types []funcType
	typeIdx := map[string]uint32{}
	fnType := make([]uint32, len(m.funcs))
	for i, f := range m.funcs {
		k := f.typ.key()
		idx, ok := typeIdx[k]
		if !ok {
			idx = uint32(len(types))
			typeIdx[k] = idx
			types = append(types, f.typ)
		}
		fnType[i] = idx
	}
	// type section
	var s []byte
	s = appendU32(s, uint32(len(types)))
	for _, t := range types {
		s = append(s, 0x60)
		s = appendU32(s, uint32(len(t.params)))
		s = append(s, t.params...)
		s = appendU32(s, uint32(len(t.results)))
		s = append(s, t.results...)
	}
	b = section(b, 1, s)
	// function section
	s = appendU32(nil, uint32(len(m.funcs)))
	for _, idx := range fnType {
		s = appendU32(s, idx)
	}
	b = section(b, 3, s)
	// memory section: one memory, no maximum (the host enforces its limit)
	s = appendU32(nil, 1)
	s = append(s, 0x00)
	s = appendU32(s, m.minPages)
	b = section(b, 5, s)
	// export section
	var ex []byte
	n := uint32(1)
	ex = appendName(ex, "memory")
	ex = append(ex, 0x02)
	ex = appendU32(ex, 0)
	for i, name := range m.exports {
		if name == "" {
			continue
		}
		n++
		ex = appendName(ex, name)
		ex = append(ex, 0x00)
		ex = appendU32(ex, uint32(i))
	}
	b = section(b, 7, append(appendU32(nil, n), ex...))
	// code section
	s = appendU32(nil, uint32(len(m.funcs)))
	for _, f := range m.funcs {
		body := f.body()
		s = appendU32(s, uint32(len(body)))
		s = append(s, body...)
	}
	b = section(b, 10, s)
	// data section
	if len(m.data) > 0 {
		s = appendU32(nil, 1)
		s = append(s, 0x00, 0x41)
		s = appendS64(s, int64(m.dataOff))
		s = append(s, 0x0b)
		s = appendU32(s, uint32(len(m.data)))
		s = append(s, m.data...)
		b = section(b, 11, s)
	}
	return b
}

// wat renders the module as WebAssembly text (flat instruction lists).
func (m *module) wat() string {
	var b strings.Builder
	b.WriteString("(module\n")
	fmt.Fprintf(&b, "  (memory (export \"memory\") %d)\n", m.minPages)
	for i, f := range m.funcs {
		fmt.Fprintf(&b, "  (func $%s (;%d;)", f.name, i)
		if m.exports[i] != "" {
			fmt.Fprintf(&b, " (export %q)", m.exports[i])
		}
		b.WriteString(f.typ.wat())
		if len(f.locals) > 0 {
			b.WriteString("\n    (local")
			for _, t := range f.locals {
				b.WriteString(" " + typeNames[t])
			}
			b.WriteString(")")
		}
		b.WriteString("\n")
		b.WriteString(f.wat.String())
		b.WriteString("  )\n")
	}
	if len(m.data) > 0 {
		fmt.Fprintf(&b, "  (data (i32.const %d) %q)\n", m.dataOff, m.data)
	}
	b.WriteString(")\n")
	return b.String()
}
