package signal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// Batch codec, version 2: the compact binary form of a batch of signals that
// the failover queue and the disk spool carry. It round-trips every field
// exactly: absent numbers (NaN) stay absent, attribute types (int64,
// float64, string, bool, nil) are kept, times keep their nanoseconds, and a
// raw frame shared by several signals is stored once.
//
// Layout (integers are unsigned varints unless noted, strings and byte
// strings are a varint length then the bytes):
//
//	"FCS" version(1 byte) nframes { frame } nsignals { signal }
//	signal: device_id ts recv mask(u16 LE) {f64 LE per set bit} valid(1 byte)
//	        ndtcs {dtc} nattrs {key type value} protocol path decoder_version
//	        frame_index
//	time:   zigzag varint seconds, varint nanoseconds (0,0 = zero time)
//	type:   'i' zigzag varint · 'f' f64 LE · 's' string · 't' · 'F' · 'n' ·
//	        'j' JSON (any other value; decoded as JSON)
//	frame_index: 0 = no frame, k = the k-th frame
//
// Version 1 (before decoder_version existed) is the same without
// decoder_version; DecodeBatch still reads it (failover messages, spool
// segments and rejected records written by an older build), and its
// signals have an empty DecoderVersion. AppendBatch writes version 2 only:
// a build that reads version 1 only refuses such a batch (ErrCodec), so a
// cluster is upgraded before a newer node writes to a shared failover
// queue.
//
// Attribute values other than int64, float64, string, bool and nil do not
// occur in decoder output (SetAttr normalises them); they are carried as
// JSON and come back as their JSON decoding.

// codecMagic starts every encoded batch; the fourth byte is the version.
const (
	codecMagic   = "FCS"
	CodecVersion = 2
	// codecVersionNoDecoderVersion is the previous version, still read.
	codecVersionNoDecoderVersion = 1
)

// ErrCodec reports a batch that cannot be decoded (corrupt, truncated or of
// an unknown version).
var ErrCodec = errors.New("undecodable signal batch")

// AppendBatch appends the encoding of batch to b.
func AppendBatch(b []byte, batch []Signal) []byte {
	b = append(b, codecMagic...)
	b = append(b, CodecVersion)
	// Frame table: frames shared by several signals (one frame, many
	// records) are stored once.
	type fkey struct {
		hash int64
		n    int
	}
	index := map[fkey]int{}
	var frames [][]byte
	idx := make([]int, len(batch))
	for i := range batch {
		f := batch[i].Frame
		if len(f) == 0 {
			continue
		}
		k := fkey{FrameHash(f), len(f)}
		j, ok := index[k]
		if !ok || string(frames[j-1]) != string(f) {
			frames = append(frames, f)
			j = len(frames)
			if !ok {
				index[k] = j
			}
		}
		idx[i] = j
	}
	b = binary.AppendUvarint(b, uint64(len(frames)))
	for _, f := range frames {
		b = appendBytes(b, f)
	}
	b = binary.AppendUvarint(b, uint64(len(batch)))
	for i := range batch {
		b = appendSignal(b, &batch[i], idx[i])
	}
	return b
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0, 0)
	}
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func (s *Signal) floats() [14]float64 {
	return [...]float64{s.Lat, s.Lon, s.Alt, s.Speed, s.Heading, s.Sats, s.HDOP,
		s.RPM, s.Coolant, s.Fuel, s.Voltage, s.Odometer, s.EngineLoad, s.Throttle}
}

func (s *Signal) setFloats(f [14]float64) {
	s.Lat, s.Lon, s.Alt, s.Speed, s.Heading, s.Sats, s.HDOP = f[0], f[1], f[2], f[3], f[4], f[5], f[6]
	s.RPM, s.Coolant, s.Fuel, s.Voltage, s.Odometer, s.EngineLoad, s.Throttle = f[7], f[8], f[9], f[10], f[11], f[12], f[13]
}

func appendSignal(b []byte, s *Signal, frame int) []byte {
	b = appendStr(b, s.DeviceID)
	b = appendTime(b, s.TS)
	b = appendTime(b, s.Recv)
	fs := s.floats()
	var mask uint16
	for i, f := range fs {
		if !math.IsNaN(f) {
			mask |= 1 << i
		}
	}
	b = binary.LittleEndian.AppendUint16(b, mask)
	for i, f := range fs {
		if mask&(1<<i) != 0 {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		}
	}
	b = append(b, byte(s.Valid))
	b = binary.AppendUvarint(b, uint64(len(s.DTCs)))
	for _, d := range s.DTCs {
		b = appendStr(b, d)
	}
	keys := make([]string, 0, len(s.Attrs))
	for k := range s.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendStr(b, k)
		switch v := s.Attrs[k].(type) {
		case int64:
			b = append(b, 'i')
			b = binary.AppendVarint(b, v)
		case float64:
			b = append(b, 'f')
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		case string:
			b = append(b, 's')
			b = appendStr(b, v)
		case bool:
			if v {
				b = append(b, 't')
			} else {
				b = append(b, 'F')
			}
		case nil:
			b = append(b, 'n')
		default:
			j, err := json.Marshal(v)
			if err != nil {
				b = append(b, 'n')
				continue
			}
			b = append(b, 'j')
			b = appendBytes(b, j)
		}
	}
	b = appendStr(b, s.Protocol)
	b = appendStr(b, s.Path)
	b = appendStr(b, s.DecoderVersion)
	return binary.AppendUvarint(b, uint64(frame))
}

// decoder reads the batch encoding with bounds checks; the first error
// sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCodec, fmt.Sprintf(format, a...))
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("%s of %d bytes past the end", what, n)
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) str(what string) string { return string(d.bytes(what)) }

func (d *decoder) fixed(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("truncated %s", what)
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) time(what string) time.Time {
	sec := d.varint(what)
	nsec := d.uvarint(what)
	if d.err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 {
		d.fail("bad %s nanoseconds", what)
		return time.Time{}
	}
	if sec == 0 && nsec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// count reads an element count and rejects counts that cannot fit in what
// is left (each element takes at least min bytes).
func (d *decoder) count(what string, min int) int {
	n := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/min) {
		d.fail("%s %d larger than the data", what, n)
		return 0
	}
	return int(n)
}

// DecodeBatch decodes an encoded batch. Errors wrap ErrCodec. The signals
// share memory with b (frames); copy b first if it will be reused.
func DecodeBatch(b []byte) ([]Signal, error) {
	if len(b) < 4 || string(b[:3]) != codecMagic {
		return nil, fmt.Errorf("%w: not a signal batch", ErrCodec)
	}
	version := b[3]
	if version != CodecVersion && version != codecVersionNoDecoderVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d and %d", ErrCodec, version, codecVersionNoDecoderVersion, CodecVersion)
	}
	d := &decoder{b: b[4:]}
	nf := d.count("frame count", 1)
	frames := make([][]byte, 0, nf)
	for i := 0; i < nf && d.err == nil; i++ {
		frames = append(frames, d.bytes("frame"))
	}
	// A signal takes at least 1+2+2+2+1+1+1+1+1+1 bytes.
	ns := d.count("signal count", 13)
	out := make([]Signal, 0, ns)
	for i := 0; i < ns && d.err == nil; i++ {
		var s Signal
		s.DeviceID = d.str("device id")
		s.TS = d.time("ts")
		s.Recv = d.time("recv")
		mb := d.fixed(2, "field mask")
		if d.err != nil {
			break
		}
		mask := binary.LittleEndian.Uint16(mb)
		if mask>>14 != 0 {
			d.fail("bad field mask %#x", mask)
			break
		}
		var fs [14]float64
		for j := range fs {
			fs[j] = math.NaN()
			if mask&(1<<j) != 0 {
				if v := d.fixed(8, "number"); v != nil {
					fs[j] = math.Float64frombits(binary.LittleEndian.Uint64(v))
				}
			}
		}
		s.setFloats(fs)
		if v := d.fixed(1, "valid"); v != nil {
			if v[0] > byte(True) {
				d.fail("bad valid flag %d", v[0])
			}
			s.Valid = Flag(v[0])
		}
		if nd := d.count("dtc count", 1); nd > 0 {
			s.DTCs = make([]string, 0, nd)
			for j := 0; j < nd && d.err == nil; j++ {
				s.DTCs = append(s.DTCs, d.str("dtc"))
			}
		}
		if na := d.count("attr count", 2); na > 0 {
			s.Attrs = make(map[string]any, na)
			for j := 0; j < na && d.err == nil; j++ {
				k := d.str("attr name")
				t := d.fixed(1, "attr type")
				if t == nil {
					break
				}
				switch t[0] {
				case 'i':
					s.Attrs[k] = d.varint("int attr")
				case 'f':
					if v := d.fixed(8, "float attr"); v != nil {
						s.Attrs[k] = math.Float64frombits(binary.LittleEndian.Uint64(v))
					}
				case 's':
					s.Attrs[k] = d.str("string attr")
				case 't':
					s.Attrs[k] = true
				case 'F':
					s.Attrs[k] = false
				case 'n':
					s.Attrs[k] = nil
				case 'j':
					var v any
					if err := json.Unmarshal(d.bytes("json attr"), &v); err != nil && d.err == nil {
						d.fail("bad json attr %q: %v", k, err)
					}
					s.Attrs[k] = v
				default:
					d.fail("unknown attr type %q", t[0])
				}
			}
		}
		s.Protocol = d.str("protocol")
		s.Path = d.str("path")
		if version >= CodecVersion {
			s.DecoderVersion = d.str("decoder version")
		}
		fi := d.uvarint("frame index")
		if d.err != nil {
			break
		}
		if fi > uint64(len(frames)) {
			d.fail("frame index %d of %d", fi, len(frames))
			break
		}
		if fi > 0 {
			s.Frame = frames[fi-1]
		}
		out = append(out, s)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCodec, len(d.b))
	}
	return out, nil
}
