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

	var bad int32
	if r.CheckBatch != nil {
		if cap(batchIn) < n {
			batchIn = make([]Signal, n)
			batchOut = make([]Verdict, n)
		}
		in, out := batchIn[:n], batchOut[:n]
		for i := range in {
			in[i] = tmpl
			fillRow(unsafe.Pointer(&in[i]), base, ncols, 8*i)
			for a := 0; a < nattrs; a++ {
				in[i].attrs[a] = *(*float64)(unsafe.Add(base, attrBase+8*(a*n+i)))
			}
			out[i] = Verdict{}
		}
		r.CheckBatch(in, out)
		for i, v := range out {
			if v.Status == StatusWarn || v.Status == StatusFail {
				bad++
			}
			*(*uint32)(unsafe.Add(base, verdictBase+4*i)) = uint32(v.Status) | uint32(v.Reason)<<16
		}
		return bad
	}
	check := r.Check
	s := tmpl
	sp := unsafe.Pointer(&s)
	for i := 0; i < n; i++ {
		off := 8 * i
		switch ncols { // fillRow, inlined: one call less per signal
		case 20:
			*(*uint64)(unsafe.Add(sp, colOff[19])) = *(*uint64)(unsafe.Add(base, colData[19]+off))
			fallthrough
		case 19:
			*(*uint64)(unsafe.Add(sp, colOff[18])) = *(*uint64)(unsafe.Add(base, colData[18]+off))
			fallthrough
		case 18:
			*(*uint64)(unsafe.Add(sp, colOff[17])) = *(*uint64)(unsafe.Add(base, colData[17]+off))
			fallthrough
		case 17:
			*(*uint64)(unsafe.Add(sp, colOff[16])) = *(*uint64)(unsafe.Add(base, colData[16]+off))
			fallthrough
		case 16:
			*(*uint64)(unsafe.Add(sp, colOff[15])) = *(*uint64)(unsafe.Add(base, colData[15]+off))
			fallthrough
		case 15:
			*(*uint64)(unsafe.Add(sp, colOff[14])) = *(*uint64)(unsafe.Add(base, colData[14]+off))
			fallthrough
		case 14:
			*(*uint64)(unsafe.Add(sp, colOff[13])) = *(*uint64)(unsafe.Add(base, colData[13]+off))
			fallthrough
		case 13:
			*(*uint64)(unsafe.Add(sp, colOff[12])) = *(*uint64)(unsafe.Add(base, colData[12]+off))
			fallthrough
		case 12:
			*(*uint64)(unsafe.Add(sp, colOff[11])) = *(*uint64)(unsafe.Add(base, colData[11]+off))
			fallthrough
		case 11:
			*(*uint64)(unsafe.Add(sp, colOff[10])) = *(*uint64)(unsafe.Add(base, colData[10]+off))
			fallthrough
		case 10:
			*(*uint64)(unsafe.Add(sp, colOff[9])) = *(*uint64)(unsafe.Add(base, colData[9]+off))
			fallthrough
		case 9:
			*(*uint64)(unsafe.Add(sp, colOff[8])) = *(*uint64)(unsafe.Add(base, colData[8]+off))
			fallthrough
		case 8:
			*(*uint64)(unsafe.Add(sp, colOff[7])) = *(*uint64)(unsafe.Add(base, colData[7]+off))
			fallthrough
		case 7:
			*(*uint64)(unsafe.Add(sp, colOff[6])) = *(*uint64)(unsafe.Add(base, colData[6]+off))
			fallthrough
		case 6:
			*(*uint64)(unsafe.Add(sp, colOff[5])) = *(*uint64)(unsafe.Add(base, colData[5]+off))
			fallthrough
		case 5:
			*(*uint64)(unsafe.Add(sp, colOff[4])) = *(*uint64)(unsafe.Add(base, colData[4]+off))
			fallthrough
		case 4:
			*(*uint64)(unsafe.Add(sp, colOff[3])) = *(*uint64)(unsafe.Add(base, colData[3]+off))
			fallthrough
		case 3:
			*(*uint64)(unsafe.Add(sp, colOff[2])) = *(*uint64)(unsafe.Add(base, colData[2]+off))
			fallthrough
		case 2:
			*(*uint64)(unsafe.Add(sp, colOff[1])) = *(*uint64)(unsafe.Add(base, colData[1]+off))
			fallthrough
		case 1:
			*(*uint64)(unsafe.Add(sp, colOff[0])) = *(*uint64)(unsafe.Add(base, colData[0]+off))
		}
		for a := 0; a < nattrs; a++ {
			s.attrs[a] = *(*float64)(unsafe.Add(base, attrBase+8*(a*n+i)))
		}
		v := check(s)
		if v.Status == StatusWarn || v.Status == StatusFail {
			bad++
		}
		*(*uint32)(unsafe.Add(base, verdictBase+4*i)) = uint32(v.Status) | uint32(v.Reason)<<16
	}
	return bad
}
