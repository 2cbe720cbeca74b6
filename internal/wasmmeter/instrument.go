package wasmmeter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Export names of the two globals Instrument adds. The guest's own code
// cannot reach them (Instrument refuses a module whose code names a global
// index it does not define), only the host can, through the exports.
const (
	CountExport = "fc_meter_count" // units spent in the current call
	LimitExport = "fc_meter_limit" // units the current call may spend
)

var wasmHeader = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Section ids of the binary format.
const (
	secCustom    = 0
	secImport    = 2
	secGlobal    = 6
	secExport    = 7
	secCode      = 10
	secTag       = 13
	secDataCount = 12
)

// sectionOrder ranks the known sections in the order the binary format
// requires (tag between memory and global, data count between element and
// code).
func sectionOrder(id byte) int {
	switch id {
	case secTag:
		return 55
	case secDataCount:
		return 95
	default:
		return int(id) * 10
	}
}

// Instrument returns a copy of a WebAssembly module in which every
// function entry and every loop header first adds one to a new mutable i64
// global (CountExport) and executes `unreachable` once it reaches another
// one (LimitExport): a guest that calls or loops without end traps after
// the limit's number of units, deterministically. initLimit is the limit
// the module starts with (its start function and whatever the host runs
// before it sets a limit of its own).
//
// It walks every instruction of every function body; a module with an
// opcode outside WebAssembly 2.0 (threads, tail calls, exceptions, GC,
// relaxed SIMD) is refused with an error naming the opcode, the function
// and the offset, as is one whose code uses a global index beyond its own
// globals or that already exports one of the two names. DWARF sections
// (".debug_*") are dropped: their code offsets would no longer be true.
func Instrument(wasm []byte, initLimit int64) ([]byte, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:8], wasmHeader) {
		return nil, errors.New("metering: not a WebAssembly 1.0 binary (bad magic or version)")
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	r := reader{b: wasm, pos: 8}
	for r.pos < len(r.b) {
		id := r.byte()
		n := r.u32()
		body := r.bytes(int(n))
		if r.err != nil {
			return nil, fmt.Errorf("metering: reading section %d: %w", id, r.err)
		}
		secs = append(secs, section{id, body})
	}
	var importedGlobals, definedGlobals uint32
	for _, s := range secs {
		var err error
		switch s.id {
		case secImport:
			importedGlobals, err = countImportedGlobals(s.body)
		case secGlobal:
			sr := reader{b: s.body}
			definedGlobals = sr.u32()
			err = sr.err
		case secExport:
			err = checkExports(s.body)
		}
		if err != nil {
			return nil, fmt.Errorf("metering: %w", err)
		}
	}
	globals := importedGlobals + definedGlobals
	count, limit := globals, globals+1

	out := bytes.NewBuffer(make([]byte, 0, len(wasm)+len(wasm)/4))
	out.Write(wasmHeader)
	emit := func(id byte, body []byte) {
		out.WriteByte(id)
		out.Write(appendU32(nil, uint32(len(body))))
		out.Write(body)
	}
	newGlobals := func(prefix []byte) []byte {
		b := append(prefix, 0x7e, 0x01, 0x42, 0x00, 0x0b) // mut i64 = 0
		b = append(b, 0x7e, 0x01, 0x42)                   // mut i64 = initLimit
		b = appendS64(b, initLimit)
		return append(b, 0x0b)
	}
	newExports := func(prefix []byte) []byte {
		for _, e := range []struct {
			name string
			idx  uint32
		}{{CountExport, count}, {LimitExport, limit}} {
			prefix = appendU32(prefix, uint32(len(e.name)))
			prefix = append(prefix, e.name...)
			prefix = append(prefix, 0x03)
			prefix = appendU32(prefix, e.idx)
		}
		return prefix
	}
	haveGlobal, haveExport := false, false
	for _, s := range secs {
		if s.id != secCustom {
			ord := sectionOrder(s.id)
			if !haveGlobal && ord > sectionOrder(secGlobal) {
				emit(secGlobal, newGlobals(appendU32(nil, 2)))
				haveGlobal = true
			}
			if !haveExport && ord > sectionOrder(secExport) {
				emit(secExport, newExports(appendU32(nil, 2)))
				haveExport = true
			}
		}
		switch s.id {
		case secCustom:
			sr := reader{b: s.body}
			name := sr.name()
			if sr.err == nil && strings.HasPrefix(name, ".debug_") {
				continue
			}
			emit(s.id, s.body)
		case secGlobal:
			sr := reader{b: s.body}
			n := sr.u32()
			emit(s.id, newGlobals(append(appendU32(nil, n+2), s.body[sr.pos:]...)))
			haveGlobal = true
		case secExport:
			sr := reader{b: s.body}
			n := sr.u32()
			emit(s.id, newExports(append(appendU32(nil, n+2), s.body[sr.pos:]...)))
			haveExport = true
		case secCode:
			body, err := instrumentCode(s.body, globals, count, limit)
			if err != nil {
				return nil, fmt.Errorf("metering: %w", err)
			}
			emit(s.id, body)
		default:
			emit(s.id, s.body)
		}
	}
	if !haveGlobal {
		emit(secGlobal, newGlobals(appendU32(nil, 2)))
	}
	if !haveExport {
		emit(secExport, newExports(appendU32(nil, 2)))
	}
	return out.Bytes(), nil
}

func countImportedGlobals(b []byte) (uint32, error) {
	r := reader{b: b}
	n := r.u32()
	var globals uint32
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0x00: // function: type index
			r.u32()
		case 0x01: // table: reftype, limits
			r.byte()
			r.limits()
		case 0x02: // memory: limits
			r.limits()
		case 0x03: // global: valtype, mutability
			r.byte()
			r.byte()
			globals++
		case 0x04: // tag: attribute, type index
			r.byte()
			r.u32()
		default:
			return 0, fmt.Errorf("import %d has kind 0x%02x", i, kind)
		}
	}
	if r.err != nil {
		return 0, fmt.Errorf("reading the import section: %w", r.err)
	}
	return globals, nil
}

func checkExports(b []byte) error {
	r := reader{b: b}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.name()
		r.byte()
		r.u32()
		if name == CountExport || name == LimitExport {
			return fmt.Errorf("the module exports %q, a name the host reserves for its meter", name)
		}
	}
	if r.err != nil {
		return fmt.Errorf("reading the export section: %w", r.err)
	}
	return nil
}

// check is the code inserted at function entry and at each loop header:
//
//	global.set $count (i64.add (global.get $count) (i64.const 1))
//	if (i64.ge_u (global.get $count) (global.get $limit)) unreachable
func check(count, limit uint32) []byte {
	b := []byte{0x23}
	b = appendU32(b, count)
	b = append(b, 0x42, 0x01, 0x7c, 0x24) // i64.const 1, i64.add, global.set
	b = appendU32(b, count)
	b = append(b, 0x23)
	b = appendU32(b, count)
	b = append(b, 0x23)
	b = appendU32(b, limit)
	return append(b, 0x5a, 0x04, 0x40, 0x00, 0x0b) // i64.ge_u, if, unreachable, end
}

func instrumentCode(b []byte, globals, count, limit uint32) ([]byte, error) {
	chk := check(count, limit)
	r := reader{b: b}
	n := r.u32()
	out := appendU32(make([]byte, 0, len(b)+len(b)/4), n)
	var body []byte
	for i := uint32(0); i < n; i++ {
		size := r.u32()
		fb := r.bytes(int(size))
		if r.err != nil {
			return nil, fmt.Errorf("reading function body %d: %w", i, r.err)
		}
		var err error
		body, err = instrumentBody(body[:0], fb, chk, globals)
		if err != nil {
			return nil, fmt.Errorf("function body %d: %w", i, err)
		}
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	if r.err != nil || r.pos != len(r.b) {
		return nil, errors.New("malformed code section")
	}
	return out, nil
}

func instrumentBody(out, fb, chk []byte, globals uint32) ([]byte, error) {
	r := reader{b: fb}
	groups := r.u32()
	for j := uint32(0); j < groups; j++ {
		r.u32()
		r.byte()
	}
	if r.err != nil {
		return nil, fmt.Errorf("reading locals: %w", r.err)
	}
	out = append(out, fb[:r.pos]...)
	out = append(out, chk...)
	for r.pos < len(r.b) {
		start := r.pos
		op := r.byte()
		switch {
		case op == 0x03: // loop
			r.blockType()
			out = append(out, fb[start:r.pos]...)
			out = append(out, chk...)
			continue
		case op == 0x23 || op == 0x24: // global.get, global.set
			if idx := r.u32(); r.err == nil && idx >= globals {
				return nil, fmt.Errorf("global index %d at offset %d: the module has %d globals", idx, start, globals)
			}
		default:
			if err := r.immediates(op); err != nil {
				return nil, fmt.Errorf("at offset %d: %w", start, err)
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("at offset %d: %w", start, r.err)
		}
		out = append(out, fb[start:r.pos]...)
	}
	return out, nil
}

// immediates skips the immediates of an instruction of WebAssembly 2.0
// (MVP, sign extension, saturating conversions, bulk memory, reference
// types, multi-value, SIMD) and refuses any other opcode.
func (r *reader) immediates(op byte) error {
	switch {
	case op <= 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b, op == 0xd1:
	case op == 0x02 || op == 0x04: // block, if
		r.blockType()
	case op == 0x0c || op == 0x0d || op == 0x10 || op == 0xd2: // br, br_if, call, ref.func
		r.u32()
	case op == 0x0e: // br_table
		n := r.u32()
		for i := uint32(0); i <= n && r.err == nil; i++ {
			r.u32()
		}
	case op == 0x11: // call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		r.bytes(int(r.u32()))
	case op >= 0x20 && op <= 0x26: // locals, globals, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41:
		r.s64()
	case op == 0x42:
		r.s64()
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op >= 0x45 && op <= 0xc4: // numeric, sign extension
	case op == 0xd0: // ref.null
		r.byte()
	case op == 0xfc:
		switch sub := r.u32(); {
		case sub <= 7: // saturating truncations
		case sub == 8: // memory.init
			r.u32()
			r.u32()
		case sub == 9 || sub == 13 || (sub >= 15 && sub <= 17): // data.drop, elem.drop, table.grow/size/fill
			r.u32()
		case sub == 10 || sub == 12 || sub == 14: // memory.copy, table.init, table.copy
			r.u32()
			r.u32()
		case sub == 11: // memory.fill
			r.u32()
		default:
			return fmt.Errorf("opcode 0xfc %d is not WebAssembly 2.0: the meter cannot walk it", sub)
		}
	case op == 0xfd:
		switch sub := r.u32(); {
		case sub <= 11 || sub == 92 || sub == 93: // v128 loads and stores
			r.memarg()
		case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
			r.bytes(16)
		case sub >= 21 && sub <= 34: // extract / replace lane
			r.byte()
		case sub >= 84 && sub <= 91: // load / store lane
			r.memarg()
			r.byte()
		case sub <= 255:
		default:
			return fmt.Errorf("opcode 0xfd %d is not WebAssembly 2.0 SIMD: the meter cannot walk it", sub)
		}
	default:
		return fmt.Errorf("opcode 0x%02x is not WebAssembly 2.0 (threads, tail calls, exceptions and GC are not supported): the meter cannot walk it", op)
	}
	return nil
}

// reader decodes the binary format; the first error sticks.
type reader struct {
	b   []byte
	pos int
	err error
}

var errShort = errors.New("unexpected end")

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b) {
		r.err = errShort
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.pos {
		r.err = errShort
		return nil
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b
}

func (r *reader) u32() uint32 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.pos:])
	if n <= 0 || n > 5 || v > 1<<32-1 {
		r.err = errors.New("bad unsigned LEB128")
		return 0
	}
	r.pos += n
	return uint32(v)
}

// s64 skips a signed LEB128 of up to 10 bytes (also s32 and s33).
func (r *reader) s64() {
	for i := 0; i < 10; i++ {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	if r.err == nil {
		r.err = errors.New("bad signed LEB128")
	}
}

func (r *reader) name() string { return string(r.bytes(int(r.u32()))) }

func (r *reader) limits() {
	flags := r.byte()
	r.s64() // min (u32 or u64: the length is what matters)
	if flags&1 != 0 {
		r.s64()
	}
}

func (r *reader) memarg() {
	align := r.u32()
	if align&0x40 != 0 { // multi-memory: a memory index follows
		r.u32()
	}
	r.s64() // offset (u32 or u64)
}

func (r *reader) blockType() {
	if r.err != nil || r.pos >= len(r.b) {
		r.err = errShort
		return
	}
	switch r.b[r.pos] {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.pos++
	default:
		r.s64() // a type index as s33
	}
}

func appendU32(b []byte, v uint32) []byte { return binary.AppendUvarint(b, uint64(v)) }

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
