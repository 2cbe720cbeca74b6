package signal

import (
	"math"
	"time"
)

// The caps on a record's text and binary values. Check refuses a record
// beyond any of them, so that no record reaches a batch that Postgres could
// refuse (which would fail the whole batch and with it other devices'
// records) or that would hold an unbounded amount of storage. README.md
// ("Records Postgres could refuse") and protocols/README.md list them.
const (
	// MaxDeviceIDBytes caps the device id. Traccar's uniqueId is a
	// varchar(128); IMEIs have 15 digits. The id leads the btree key
	// signals_idempotency (device_id, ts, record_hash), whose entries
	// Postgres refuses above 2704 bytes (SQLSTATE 54000): 128 bytes keep a
	// key under 160 bytes.
	MaxDeviceIDBytes = 128
	// MaxProtocolBytes caps the protocol name (a registered decoder name).
	MaxProtocolBytes = 64
	// MaxDTCs caps the number of trouble codes of a record: OBD-II counts
	// stored codes in 7 bits (at most 127), a J1939 DM1 list holds a few
	// hundred at most.
	MaxDTCs = 256
	// MaxDTCBytes caps one trouble code: OBD-II codes have 5 characters
	// (P0301), J1939 ones written as SPN/FMI fewer than 20.
	MaxDTCBytes = 32
	// MaxAttrs caps the number of attributes of a record: Teltonika codec 8
	// carries up to 255 IO elements per record, decoders add a few names.
	MaxAttrs = 1024
	// MaxAttrKeyBytes caps an attribute name (protocol names such as io239
	// or pid_2104 have fewer than 32).
	MaxAttrKeyBytes = 64
	// MaxAttrStringBytes caps one string attribute: a frame of the default
	// max_frame (64 KiB) kept as hex.
	MaxAttrStringBytes = 128 << 10
	// MaxAttrsBytes caps the attributes as JSON text (what the jsonb column
	// is written from, escapes included).
	MaxAttrsBytes = 256 << 10
	// MaxDecoderVersionBytes caps the decoder version: a WASM decoder's
	// meta version (SemVer, with pre-release and build parts) plus
	// "+sha256:" and 12 hex digits, or "builtin:" and the fleetcore
	// version, fit with room to spare.
	MaxDecoderVersionBytes = 128
	// MaxFrameBytes caps the raw frame a record carries: the largest
	// max_frame a listener accepts (16 MiB).
	MaxFrameBytes = 16 << 20
)

// The canonical time range of ts and recv: from the Unix epoch (devices
// whose clock reset to 1970, the GPS epoch of 1980 or 2000 are stored, so
// that time.stale can flag them) to the end of 2099 (the last year a
// two-digit year can name), exclusive. Earlier times are not device times
// (timestamp=-1 is the Unix "no time"); later ones are corrupt counters.
var (
	MinTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	EndTime = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC) // exclusive
)

// Domain is the range of values a canonical number can take in its unit:
// what a value outside it cannot mean (not a physical value of the field),
// as opposed to what is merely implausible, which is stored and flagged by
// the quality rules (gps.range, gps.poor_fix, obd.plausibility, …).
type Domain struct {
	Min, Max float64 // inclusive
	Reason   string
}

// Contains reports whether v is absent (NaN) or a finite value in the
// domain.
func (d Domain) Contains(v float64) bool {
	return math.IsNaN(v) || (v >= d.Min && v <= d.Max)
}

// domains are the domains of the record's numeric fields, by Field.
var domains = [NumFields]Domain{
	FieldLat:        {-90, 90, "degrees of latitude"},
	FieldLon:        {-180, 180, "degrees of longitude"},
	FieldAlt:        {-12_000, 100_000, "m: below −12 km is deeper than the Challenger Deep (−10 935 m), above 100 km (the Kármán line) is space"},
	FieldSpeed:      {0, 2_000, "km/h: GNSS receivers stop reporting above 1 000 kn (1 852 km/h, the COCOM limit); OBD-II speed is a u8 (≤ 255)"},
	FieldHeading:    {0, 360, "degrees from north"},
	FieldSats:       {0, 255, "satellites in use: a u8 in every protocol that carries it (a Teltonika capture reports 248; gps.poor_fix judges the fix)"},
	FieldHDOP:       {0, 1_000, "a dilution factor: receivers report 99.99 with no fix, gps.poor_fix flags values above 5 and 20"},
	FieldRPM:        {0, 65_535, "1/min: a u16 in every protocol (OBD-II tops at 16 383.75); obd.plausibility flags values above 10 000"},
	FieldCoolant:    {-273.15, 1_000, "°C: not below absolute zero; above 1 000 °C the engine has melted (OBD-II spans −40..215, obd.plausibility flags outside −40..150)"},
	FieldFuel:       {0, 100, "% of the tank"},
	FieldVoltage:    {0, 1_000, "V: a magnitude; EV traction packs reach 800 V (obd.plausibility flags a 12/24 V supply outside 6..32)"},
	FieldOdometer:   {0, 100_000_000, "km: a vehicle's lifetime distance (the record is about 5 million km; a u32 of 10 m steps reaches 43 million)"},
	FieldEngineLoad: {0, 100, "% of the engine's peak torque"},
	FieldThrottle:   {0, 100, "% of the throttle's travel"},
}

// DomainOf returns the domain of a numeric field of the record; ok is false
// for times and prev_* fields.
func DomainOf(f Field) (Domain, bool) {
	if f < FieldLat || f > FieldThrottle {
		return Domain{}, false
	}
	return domains[f], true
}

// Kind is what a column of the signals table holds, as Check sees it.
type Kind int

// Column kinds.
const (
	KindText     Kind = iota + 1 // text: at most MaxBytes, valid UTF-8 without NUL
	KindTime                     // timestamptz: in [From, To)
	KindNumber                   // double precision: absent (NULL) or finite in Domain
	KindFlag                     // boolean: a Flag (Unknown is NULL)
	KindTextList                 // text[]: at most MaxItems elements of at most MaxItemBytes
	KindAttrs                    // jsonb: see the Attr* caps
	KindBytes                    // bytea: at most MaxBytes
	KindInt                      // bigint computed by fleetcore, not by a decoder
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindTime:
		return "time"
	case KindNumber:
		return "number"
	case KindFlag:
		return "flag"
	case KindTextList:
		return "text list"
	case KindAttrs:
		return "attrs"
	case KindBytes:
		return "bytes"
	case KindInt:
		return "int"
	}
	return "invalid"
}

// Limit is what Check enforces on one column of the signals table.
type Limit struct {
	Kind         Kind
	MaxBytes     int       // text, bytea; attrs: the JSON text
	MaxItems     int       // text[]: elements; attrs: keys
	MaxItemBytes int       // text[]: one element; attrs: one string value
	MaxKeyBytes  int       // attrs: one key
	From, To     time.Time // timestamptz: from inclusive, to exclusive
	Domain       Domain    // double precision
	// SetBy names who fills a column that no decoder sets ("" for the
	// record's own fields); Check leaves those alone unless it says
	// otherwise in Reason.
	SetBy  string
	Reason string
}

// Limits maps every column of the signals table to what Check enforces on
// it. A schema test (core/store) fails when a column has no entry or an
// entry of the wrong kind, and stores a record at every cap.
var Limits = map[string]Limit{
	"id":          {Kind: KindInt, SetBy: "Postgres (signals_id_seq)", Reason: "row id"},
	"device_id":   {Kind: KindText, MaxBytes: MaxDeviceIDBytes, Reason: "not empty; Traccar's uniqueId is varchar(128), and the id leads the btree key signals_idempotency (Postgres refuses entries above 2704 bytes)"},
	"ts":          {Kind: KindTime, From: MinTime, To: EndTime, Reason: "device time: from the Unix epoch (reset clocks are stored for time.stale to flag) to the end of 2099"},
	"recv":        {Kind: KindTime, From: MinTime, To: EndTime, Reason: "receive time, set by the gateway (the zero time, not yet set, passes)"},
	"lat":         numberLimit(FieldLat),
	"lon":         numberLimit(FieldLon),
	"alt":         numberLimit(FieldAlt),
	"speed":       numberLimit(FieldSpeed),
	"heading":     numberLimit(FieldHeading),
	"sats":        numberLimit(FieldSats),
	"hdop":        numberLimit(FieldHDOP),
	"valid":       {Kind: KindFlag, Reason: "Unknown, False or True"},
	"rpm":         numberLimit(FieldRPM),
	"coolant":     numberLimit(FieldCoolant),
	"fuel":        numberLimit(FieldFuel),
	"voltage":     numberLimit(FieldVoltage),
	"odometer":    numberLimit(FieldOdometer),
	"engine_load": numberLimit(FieldEngineLoad),
	"throttle":    numberLimit(FieldThrottle),
	"dtcs": {Kind: KindTextList, MaxItems: MaxDTCs, MaxItemBytes: MaxDTCBytes,
		Reason: "OBD-II counts stored codes in 7 bits; a code has 5 characters (P0301)"},
	"attrs": {Kind: KindAttrs, MaxBytes: MaxAttrsBytes, MaxItems: MaxAttrs, MaxItemBytes: MaxAttrStringBytes, MaxKeyBytes: MaxAttrKeyBytes,
		Reason: "values are float64 (finite: JSON holds no NaN or Inf), int64, string, bool or nil; keys and strings valid UTF-8 without NUL (jsonb refuses \\u0000)"},
	"protocol": {Kind: KindText, MaxBytes: MaxProtocolBytes, Reason: "a decoder name (the gateway fills it when empty)"},
	"decoder_version": {Kind: KindText, MaxBytes: MaxDecoderVersionBytes,
		Reason: "the decoder's version (empty = unknown, stored as NULL); the WASM host or, for built-in decoders, the gateway sets it"},
	"path":        {Kind: KindText, MaxBytes: len(PathFailover), SetBy: "the ingest core", Reason: "the CHECK constraint allows direct, failover and spool: Check refuses anything else but empty (not yet set)"},
	"record_hash": {Kind: KindInt, SetBy: "the store (RecordHash)", Reason: "idempotency key"},
	"frame_hash":  {Kind: KindInt, SetBy: "the store (FrameHash)", Reason: "the frame's key"},
	"frame":       {Kind: KindBytes, MaxBytes: MaxFrameBytes, Reason: "the raw frame: the largest max_frame a listener accepts"},
	"stored":      {Kind: KindTime, SetBy: "Postgres (now())", Reason: "when the row was written"},
}

func numberLimit(f Field) Limit {
	d := domains[f]
	return Limit{Kind: KindNumber, Domain: d, Reason: d.Reason}
}
