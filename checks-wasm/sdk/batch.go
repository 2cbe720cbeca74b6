package sdk

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// Rule is what a rule module registers: its metadata and either a
// per-signal Check or a batch CheckBatch (exactly one).
type Rule struct {
	Meta  Meta
	Check func(s Signal) Verdict
	// CheckBatch sees the whole batch at once (in the host's order) and
	// writes one verdict per signal into out (len(out) == len(in)).
	CheckBatch func(in []Signal, out []Verdict)
}

// Error codes fc_check returns (negative, so the host reports the batch as
// not evaluated).
const (
	ErrNoRule     = -1 // no rule registered
	ErrBadHeader  = -2 // wrong magic, n or field mask
	ErrBadSize    = -3 // the batch does not fit the buffer
	ErrTooManyAtt = -4 // more attribute columns than MaxAttrs
)

// HeaderSize is the size of the batch header in bytes.
const HeaderSize = 64

// Magic is the first four bytes of a batch.
var Magic = [4]byte{'F', 'C', 'B', '1'}

var registered *Rule

// Register installs the rule of this module; call it from init. A second
// call replaces the first.
func Register(r Rule) {
	registered = &r
	metaJSON = r.Meta.JSON()
}

var metaJSON string

// MetaJSON returns the registered rule's metadata JSON.
func MetaJSON() string { return metaJSON }

var offsets = [NumFields]uintptr{
	unsafe.Offsetof(Signal{}.TS), unsafe.Offsetof(Signal{}.Recv),
	unsafe.Offsetof(Signal{}.Lat), unsafe.Offsetof(Signal{}.Lon), unsafe.Offsetof(Signal{}.Alt),
	unsafe.Offsetof(Signal{}.Speed), unsafe.Offsetof(Signal{}.Heading), unsafe.Offsetof(Signal{}.Sats),
	unsafe.Offsetof(Signal{}.HDOP), unsafe.Offsetof(Signal{}.RPM), unsafe.Offsetof(Signal{}.Coolant),
	unsafe.Offsetof(Signal{}.Fuel), unsafe.Offsetof(Signal{}.Voltage), unsafe.Offsetof(Signal{}.Odometer),
	unsafe.Offsetof(Signal{}.EngineLoad), unsafe.Offsetof(Signal{}.Throttle),
	unsafe.Offsetof(Signal{}.PrevTS), unsafe.Offsetof(Signal{}.PrevLat), unsafe.Offsetof(Signal{}.PrevLon),
	unsafe.Offsetof(Signal{}.PrevOdometer),
}

// scratch reused across batches so that a check does not allocate once the
// largest batch has been seen.
var (
	colOff   [NumFields]uintptr
	colData  [NumFields]int
	batchIn  []Signal
	batchOut []Verdict
)

// Process evaluates the batch in buf (header, columns, verdict area) with
// the registered rule and writes the verdicts into buf. It returns the
// number of warn and fail verdicts or a negative error code. buf must be
// 8-aligned; fc_check calls it on the buffer from fc_alloc.
func Process(buf []byte, n int) int32 {
	r := registered
	if r == nil || (r.Check == nil && r.CheckBatch == nil) {
		return ErrNoRule
	}
	if len(buf) < HeaderSize || [4]byte(buf[0:4]) != Magic || n < 0 {
		return ErrBadHeader
	}
	if int(binary.LittleEndian.Uint32(buf[4:])) != n {
		return ErrBadHeader
	}
	mask := binary.LittleEndian.Uint64(buf[8:])
	if mask>>NumFields != 0 {
		return ErrBadHeader
	}
	now := int64(binary.LittleEndian.Uint64(buf[16:]))
	nattrs := int(binary.LittleEndian.Uint32(buf[24:]))
	if nattrs > MaxAttrs {
		return ErrTooManyAtt
	}
	ncols := 0
	for f := 0; f < NumFields; f++ {
		if mask&(1<<f) != 0 {
			colOff[ncols] = offsets[f]
			colData[ncols] = HeaderSize + ncols*8*n
			ncols++
		}
	}
	attrBase := HeaderSize + ncols*8*n
	verdictBase := attrBase + nattrs*8*n
	if n > (math.MaxInt32-HeaderSize)/8/(NumFields+MaxAttrs+1) || verdictBase+4*n > len(buf) {
		return ErrBadSize
	}
	base := unsafe.Pointer(unsafe.SliceData(buf))
	tmpl := Absent()
	tmpl.NowMs = now
	tmpl.nattrs = nattrs

	decode := func(i int, s *Signal) {
		*s = tmpl
		p := unsafe.Pointer(s)
		for c := 0; c < ncols; c++ {
			*(*uint64)(unsafe.Add(p, colOff[c])) = *(*uint64)(unsafe.Add(base, colData[c]+8*i))
		}
		for a := 0; a < nattrs; a++ {
			s.attrs[a] = *(*float64)(unsafe.Add(base, attrBase+8*(a*n+i)))
		}
	}
	var bad int32
	put := func(i int, v Verdict) {
		if v.Status == StatusWarn || v.Status == StatusFail {
			bad++
		}
		*(*uint32)(unsafe.Add(base, verdictBase+4*i)) = uint32(v.Status) | uint32(v.Reason)<<16
	}
	if r.CheckBatch != nil {
		if cap(batchIn) < n {
			batchIn = make([]Signal, n)
			batchOut = make([]Verdict, n)
		}
		in, out := batchIn[:n], batchOut[:n]
		for i := range in {
			decode(i, &in[i])
			out[i] = Verdict{}
		}
		r.CheckBatch(in, out)
		for i, v := range out {
			put(i, v)
		}
		return bad
	}
	var s Signal
	for i := 0; i < n; i++ {
		decode(i, &s)
		put(i, r.Check(s))
	}
	return bad
}
