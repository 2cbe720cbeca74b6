package store

import (
	"encoding/binary"
	"math"
	"strings"
	"time"
	"unsafe"

	"github.com/fleetcore/fleetcore/signal"
)

// The write path encodes COPY rows in PostgreSQL's binary COPY format
// itself, straight from the signals, instead of building a []any per row
// for pgx to box, plan and encode value by value: in the steady benchmark's
// CPU profile that conversion (store.Rows plus pgx's per-value encoding)
// was 20 % of the node's CPU. The values are exactly those of Rows (the
// path taken after a unique-key conflict, and by the benchmark's ceiling),
// which a test compares row by row.

// copySignalsSQL is the COPY statement of the binary path.
var copySignalsSQL = "COPY signals (" + strings.Join(SignalColumns, ", ") + ") FROM STDIN (FORMAT binary)"

// copyHeader starts a binary COPY stream: signature, flags, no extension.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// copyTrailer ends it.
var copyTrailer = []byte{0xff, 0xff}

// microsecFromUnixEpochToY2K is where Postgres timestamps count from.
const microsecFromUnixEpochToY2K = 946_684_800 * 1_000_000

// oidText is the element type of the dtcs text[] column.
const oidText = 25

// frameRef is where a signal's raw frame goes: every signal of a frame
// carries its hash; the bytes go with the first of them in the batch.
type frameRef struct {
	hash  int64
	has   bool
	bytes []byte // nil except on the first signal of its frame
}

// frameRefs places the raw frames of a batch as Rows does, hashing each
// frame once: the signals of one frame share its bytes.
func frameRefs(batch []signal.Signal) []frameRef {
	refs := make([]frameRef, len(batch))
	var seen map[int64]struct{}
	var last []byte
	var lastHash int64
	for i := range batch {
		f := batch[i].Frame
		if len(f) == 0 {
			continue
		}
		h := lastHash
		if last == nil || len(f) != len(last) || unsafe.SliceData(f) != unsafe.SliceData(last) {
			h = signal.FrameHash(f)
			last, lastHash = f, h
		}
		refs[i] = frameRef{hash: h, has: true}
		if seen == nil {
			seen = make(map[int64]struct{}, 8)
		}
		if _, ok := seen[h]; !ok {
			seen[h] = struct{}{}
			refs[i].bytes = f
		}
	}
	return refs
}

// appendCopyRow appends one signal as a binary COPY tuple in SignalColumns
// order. recv is the receive time to store (Rows' default applied).
func appendCopyRow(b []byte, s *signal.Signal, recv time.Time, hash int64, fr frameRef) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(SignalColumns)))
	b = appendText(b, s.DeviceID)
	b = appendTime(b, s.TS)
	b = appendTime(b, recv)
	for _, f := range [...]float64{s.Lat, s.Lon, s.Alt, s.Speed, s.Heading, s.Sats, s.HDOP} {
		b = appendFloat(b, f)
	}
	if v, ok := s.Valid.Bool(); ok {
		b = binary.BigEndian.AppendUint32(b, 1)
		if v {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	} else {
		b = appendNull(b)
	}
	for _, f := range [...]float64{s.RPM, s.Coolant, s.Fuel, s.Voltage, s.Odometer, s.EngineLoad, s.Throttle} {
		b = appendFloat(b, f)
	}
	if len(s.DTCs) > 0 {
		b = appendTextArray(b, s.DTCs)
	} else {
		b = appendNull(b)
	}
	if len(s.Attrs) > 0 {
		// jsonb: a version byte, then the JSON text.
		at := len(b)
		b = append(b, 0, 0, 0, 0, 1)
		b = appendAttrsJSON(b, s.Attrs)
		binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	} else {
		b = appendNull(b)
	}
	b = appendText(b, s.Protocol)
	b = appendText(b, s.Path)
	b = appendInt64(b, hash)
	if fr.has {
		b = appendInt64(b, fr.hash)
	} else {
		b = appendNull(b)
	}
	if fr.bytes != nil {
		b = binary.BigEndian.AppendUint32(b, uint32(len(fr.bytes)))
		b = append(b, fr.bytes...)
	} else {
		b = appendNull(b)
	}
	if s.DecoderVersion != "" {
		b = appendText(b, s.DecoderVersion)
	} else {
		b = appendNull(b)
	}
	return b
}

func appendNull(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0xff) }

func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendTime encodes a timestamptz as pgx does: microseconds since
// 2000-01-01 UTC, sub-microsecond digits dropped.
func appendTime(b []byte, t time.Time) []byte {
	us := t.Unix()*1_000_000 + int64(t.Nanosecond())/1000 - microsecFromUnixEpochToY2K
	return appendInt64(b, us)
}

func appendInt64(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

// appendFloat encodes a float8; NaN (absent) and ±Inf are NULL, as in
// nullable.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendNull(b)
	}
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}

// appendTextArray encodes a one-dimensional text[] without NULLs.
func appendTextArray(b []byte, items []string) []byte {
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, 1) // dimensions
	b = binary.BigEndian.AppendUint32(b, 0) // no NULL elements
	b = binary.BigEndian.AppendUint32(b, oidText)
	b = binary.BigEndian.AppendUint32(b, uint32(len(items)))
	b = binary.BigEndian.AppendUint32(b, 1) // lower bound
	for _, s := range items {
		b = appendText(b, s)
	}
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}
