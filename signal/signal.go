package signal

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"time"
)

// Path says how a signal reached Postgres.
const (
	PathDirect   = "direct"
	PathFailover = "failover"
	PathSpool    = "spool"
)

// Flag is a three-valued boolean: unknown, false or true.
type Flag int8

// Flag values.
const (
	Unknown Flag = 0
	False   Flag = 1
	True    Flag = 2
)

// FlagOf turns a bool into a known Flag.
func FlagOf(b bool) Flag {
	if b {
		return True
	}
	return False
}

// Known reports whether the flag carries a value.
func (f Flag) Known() bool { return f == True || f == False }

// Bool returns the flag's value; ok is false when unknown.
func (f Flag) Bool() (v, ok bool) { return f == True, f.Known() }

// Signal is one device record in canonical units. Absent float fields are NaN
// (use New or Absent to start from an all-absent record), absent flags are
// Unknown, absent times are the zero time.
type Signal struct {
	DeviceID string    // IMEI or the protocol's device id
	TS       time.Time // device time, UTC
	Recv     time.Time // server receive time, UTC

	Lat     float64 // degrees
	Lon     float64 // degrees
	Alt     float64 // m
	Speed   float64 // km/h
	Heading float64 // degrees
	Sats    float64 // satellites in use
	HDOP    float64
	Valid   Flag // GPS fix validity as reported by the device

	RPM        float64 // 1/min
	Coolant    float64 // °C
	Fuel       float64 // %
	Voltage    float64 // V
	Odometer   float64 // km
	EngineLoad float64 // %
	Throttle   float64 // %

	DTCs  []string       // diagnostic trouble codes like P0301
	Attrs map[string]any // every other decoded value, by protocol name; values are float64, int64, string or bool

	Protocol string // decoder name
	Path     string // direct, failover or spool; set by the ingest core

	// DecoderVersion is the version of the decoder that produced the
	// record, so that records can be re-decoded after a decoder fix and
	// a bad version's records found: a WASM decoder's
	// "<meta version>+sha256:<first 12 hex digits of the module's
	// SHA-256>" (set by plugins/wasmdecoder), a built-in decoder's
	// "builtin:<fleetcore version>" (set by the gateway where the decoder
	// left it empty). Empty is unknown (stored as NULL: records written
	// before the column existed). It is not part of RecordHash: a resend
	// decoded by a newer version is the same record.
	DecoderVersion string

	// Frame is the raw frame the record was decoded from. It is stored once
	// per frame (keyed by FrameHash) so that records can be re-decoded.
	Frame []byte
}

// New returns a signal with every numeric field absent.
func New(deviceID string, ts time.Time) Signal {
	s := Signal{DeviceID: deviceID, TS: ts.UTC()}
	s.ClearNumbers()
	return s
}

// ClearNumbers sets every numeric field to NaN (absent).
func (s *Signal) ClearNumbers() {
	nan := math.NaN()
	s.Lat, s.Lon, s.Alt, s.Speed, s.Heading, s.Sats, s.HDOP = nan, nan, nan, nan, nan, nan, nan
	s.RPM, s.Coolant, s.Fuel, s.Voltage, s.Odometer, s.EngineLoad, s.Throttle = nan, nan, nan, nan, nan, nan, nan
}

// SetAttr records a protocol-specific value. Integers are kept as int64,
// other numbers as float64.
func (s *Signal) SetAttr(name string, v any) {
	if s.Attrs == nil {
		s.Attrs = make(map[string]any, 8)
	}
	switch x := v.(type) {
	case int:
		v = int64(x)
	case int8:
		v = int64(x)
	case int16:
		v = int64(x)
	case int32:
		v = int64(x)
	case uint8:
		v = int64(x)
	case uint16:
		v = int64(x)
	case uint32:
		v = int64(x)
	case uint:
		if uint64(x) <= math.MaxInt64 {
			v = int64(x)
		} else {
			v = float64(x)
		}
	case uint64:
		if x <= math.MaxInt64 {
			v = int64(x)
		} else {
			v = float64(x)
		}
	case float32:
		v = float64(x)
	}
	s.Attrs[name] = v
}

// Key is the idempotency key of a record: a resend of the same record has
// the same key, so storage with ON CONFLICT DO NOTHING on it never creates a
// duplicate.
type Key struct {
	DeviceID string
	TS       time.Time
	Hash     int64 // record_hash
}

// Key returns the record's idempotency key.
func (s *Signal) Key() Key {
	return Key{DeviceID: s.DeviceID, TS: s.TS.UTC().Truncate(time.Microsecond), Hash: s.RecordHash()}
}

// RecordHash is a 64-bit FNV-1a hash of the record's canonical bytes: every
// decoded field except Recv, Path, Frame and DecoderVersion. Timestamps count at microsecond
// precision (what Postgres stores), floats by their bits, attributes in
// sorted key order.
func (s *Signal) RecordHash() int64 {
	var buf [384]byte // on the stack for typical records: no allocation per record
	return int64(fnv64a(s.canonicalBytes(buf[:0])))
}

// fnv64a is FNV-1a 64 (what hash/fnv's New64a computes), without the
// interface call and allocation: the record hash is computed for every
// signal written.
func fnv64a(b []byte) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for _, c := range b {
		h ^= uint64(c)
		h *= prime
	}
	return h
}

func (s *Signal) canonicalBytes(b []byte) []byte {
	b = appendString(b, s.DeviceID)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.TS.UTC().Truncate(time.Microsecond).UnixMicro()))
	for _, f := range [...]float64{s.Lat, s.Lon, s.Alt, s.Speed, s.Heading, s.Sats, s.HDOP,
		s.RPM, s.Coolant, s.Fuel, s.Voltage, s.Odometer, s.EngineLoad, s.Throttle} {
		if math.IsNaN(f) {
			f = math.NaN() // one bit pattern for every NaN
		}
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	b = append(b, byte(s.Valid))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s.DTCs)))
	for _, d := range s.DTCs {
		b = appendString(b, d)
	}
	var kbuf [16]string
	keys := kbuf[:0]
	for k := range s.Attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendAttr(b, s.Attrs[k])
	}
	b = appendString(b, s.Protocol)
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendAttr(b []byte, v any) []byte {
	switch x := v.(type) {
	case int64:
		// Integers that a float64 holds exactly hash like that float, so a
		// JSON round trip (which cannot tell 5 from 5.0) keeps the hash.
		if x > -(1<<53) && x < 1<<53 {
			b = append(b, 'f')
			return binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(x)))
		}
		b = append(b, 'i')
		return binary.LittleEndian.AppendUint64(b, uint64(x))
	case float64:
		b = append(b, 'f')
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	case string:
		b = append(b, 's')
		return appendString(b, x)
	case bool:
		if x {
			return append(b, 't')
		}
		return append(b, 'F')
	case nil:
		return append(b, 'n')
	default:
		j, _ := json.Marshal(x)
		b = append(b, 'j')
		return appendString(b, string(j))
	}
}

// FrameHash is the 64-bit FNV-1a hash of a raw frame, the key of the raw
// frame table.
func FrameHash(frame []byte) int64 {
	return int64(fnv64a(frame))
}
