// Package obd2 decodes SAE J1979 (OBD-II) mode 01 parameters and
// diagnostic trouble codes into fleetcore's canonical units, and applies
// them to a signal.Signal.
//
// It is a library shared by the protocol decoders that carry OBD data
// (freematics, and any dongle protocol); it registers nothing.
//
// Two entry points produce a Value: Decode takes the raw response bytes of a
// PID (A, B, C, D in the standard's notation) and applies the standard
// formula; Scaled takes a value a device has already converted (Freematics
// sends "10C:4375", the rpm). Value.Apply stores it in a signal: the eight
// canonical PIDs go into their canonical fields, every other PID into Attrs
// under a stable name (see AttrName), and an unknown PID is kept raw as hex,
// never dropped.
package obd2

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/fleetcore/fleetcore/signal"
)

// ErrShortData means the response holds fewer bytes than the PID's formula
// needs.
var ErrShortData = errors.New("obd2: response too short for PID")

// PID numbers of mode 01 that map to canonical signal fields.
const (
	PIDEngineLoad      byte = 0x04
	PIDCoolant         byte = 0x05
	PIDRPM             byte = 0x0C
	PIDSpeed           byte = 0x0D
	PIDThrottle        byte = 0x11
	PIDFuelLevel       byte = 0x2F
	PIDModuleVoltage   byte = 0x42
	PIDOdometer        byte = 0xA6
	PIDMonitorStatus   byte = 0x01
	PIDDistanceMIL     byte = 0x21
	PIDDistanceCleared byte = 0x31
)

// Param describes one mode 01 PID: its attribute name, unit, the number of
// data bytes its formula reads and the formula itself.
type Param struct {
	PID   byte
	Name  string // short name, e.g. "map" for 0x0B
	Unit  string // "%", "C", "kPa", "rpm", "km/h", "g/s", "s", "km", "V", "L/h", "deg", "min", "Nm", "ratio"
	Bytes int
	// Field is the canonical field the value goes to, or -1 for an attr.
	Field signal.Field
	f     func(d []byte) float64
}

func u16(d []byte) float64 { return float64(uint16(d[0])<<8 | uint16(d[1])) }

func pct(d []byte) float64     { return float64(d[0]) * 100 / 255 }
func temp(d []byte) float64    { return float64(d[0]) - 40 }
func byteVal(d []byte) float64 { return float64(d[0]) }
func trim(d []byte) float64    { return (float64(d[0]) - 128) * 100 / 128 }
func torque(d []byte) float64  { return float64(d[0]) - 125 }

const attr signal.Field = -1

// params is indexed by PID; a nil entry is a PID this package does not
// interpret (it is kept raw).
var params = func() [256]*Param {
	var t [256]*Param
	for _, p := range []Param{
		{PID: 0x01, Name: "dtc", Unit: "count", Bytes: 1, Field: attr, f: func(d []byte) float64 { return float64(d[0] & 0x7F) }},
		{PID: 0x04, Name: "engine_load", Unit: "%", Bytes: 1, Field: signal.FieldEngineLoad, f: pct},
		{PID: 0x05, Name: "coolant_temp", Unit: "C", Bytes: 1, Field: signal.FieldCoolant, f: temp},
		{PID: 0x06, Name: "stft_b1", Unit: "%", Bytes: 1, Field: attr, f: trim},
		{PID: 0x07, Name: "ltft_b1", Unit: "%", Bytes: 1, Field: attr, f: trim},
		{PID: 0x08, Name: "stft_b2", Unit: "%", Bytes: 1, Field: attr, f: trim},
		{PID: 0x09, Name: "ltft_b2", Unit: "%", Bytes: 1, Field: attr, f: trim},
		{PID: 0x0A, Name: "fuel_pressure", Unit: "kPa", Bytes: 1, Field: attr, f: func(d []byte) float64 { return 3 * float64(d[0]) }},
		{PID: 0x0B, Name: "map", Unit: "kPa", Bytes: 1, Field: attr, f: byteVal},
		{PID: 0x0C, Name: "rpm", Unit: "rpm", Bytes: 2, Field: signal.FieldRPM, f: func(d []byte) float64 { return u16(d) / 4 }},
		{PID: 0x0D, Name: "speed", Unit: "km/h", Bytes: 1, Field: signal.FieldSpeed, f: byteVal},
		{PID: 0x0E, Name: "timing_advance", Unit: "deg", Bytes: 1, Field: attr, f: func(d []byte) float64 { return float64(d[0])/2 - 64 }},
		{PID: 0x0F, Name: "intake_temp", Unit: "C", Bytes: 1, Field: attr, f: temp},
		{PID: 0x10, Name: "maf", Unit: "g/s", Bytes: 2, Field: attr, f: func(d []byte) float64 { return u16(d) / 100 }},
		{PID: 0x11, Name: "throttle", Unit: "%", Bytes: 1, Field: signal.FieldThrottle, f: pct},
		{PID: 0x1F, Name: "run_time", Unit: "s", Bytes: 2, Field: attr, f: u16},
		{PID: 0x21, Name: "mil_distance", Unit: "km", Bytes: 2, Field: attr, f: u16},
		{PID: 0x22, Name: "fuel_rail_rel_pressure", Unit: "kPa", Bytes: 2, Field: attr, f: func(d []byte) float64 { return u16(d) * 0.079 }},
		{PID: 0x23, Name: "fuel_rail_gauge_pressure", Unit: "kPa", Bytes: 2, Field: attr, f: func(d []byte) float64 { return 10 * u16(d) }},
		{PID: 0x2C, Name: "egr_commanded", Unit: "%", Bytes: 1, Field: attr, f: pct},
		{PID: 0x2D, Name: "egr_error", Unit: "%", Bytes: 1, Field: attr, f: trim},
		{PID: 0x2F, Name: "fuel_level", Unit: "%", Bytes: 1, Field: signal.FieldFuel, f: pct},
		{PID: 0x30, Name: "warmups_cleared", Unit: "count", Bytes: 1, Field: attr, f: byteVal},
		{PID: 0x31, Name: "clr_distance", Unit: "km", Bytes: 2, Field: attr, f: u16},
		{PID: 0x33, Name: "baro", Unit: "kPa", Bytes: 1, Field: attr, f: byteVal},
		{PID: 0x42, Name: "module_voltage", Unit: "V", Bytes: 2, Field: signal.FieldVoltage, f: func(d []byte) float64 { return u16(d) / 1000 }},
		{PID: 0x43, Name: "abs_load", Unit: "%", Bytes: 2, Field: attr, f: func(d []byte) float64 { return u16(d) * 100 / 255 }},
		{PID: 0x45, Name: "rel_throttle", Unit: "%", Bytes: 1, Field: attr, f: pct},
		{PID: 0x46, Name: "ambient_temp", Unit: "C", Bytes: 1, Field: attr, f: temp},
		{PID: 0x47, Name: "abs_throttle_b", Unit: "%", Bytes: 1, Field: attr, f: pct},
		{PID: 0x49, Name: "accel_pedal_d", Unit: "%", Bytes: 1, Field: attr, f: pct},
		{PID: 0x4A, Name: "accel_pedal_e", Unit: "%", Bytes: 1, Field: attr, f: pct},
		{PID: 0x4C, Name: "throttle_actuator", Unit: "%", Bytes: 1, Field: attr, f: pct},
		{PID: 0x4D, Name: "mil_time", Unit: "min", Bytes: 2, Field: attr, f: u16},
		{PID: 0x4E, Name: "clr_time", Unit: "min", Bytes: 2, Field: attr, f: u16},
		{PID: 0x52, Name: "ethanol", Unit: "%", Bytes: 1, Field: attr, f: pct},
		{PID: 0x59, Name: "fuel_rail_pressure", Unit: "kPa", Bytes: 2, Field: attr, f: func(d []byte) float64 { return 10 * u16(d) }},
		{PID: 0x5A, Name: "rel_accel_pedal", Unit: "%", Bytes: 1, Field: attr, f: pct},
		{PID: 0x5B, Name: "hybrid_battery", Unit: "%", Bytes: 1, Field: attr, f: pct},
		{PID: 0x5C, Name: "oil_temp", Unit: "C", Bytes: 1, Field: attr, f: temp},
		{PID: 0x5D, Name: "injection_timing", Unit: "deg", Bytes: 2, Field: attr, f: func(d []byte) float64 { return u16(d)/128 - 210 }},
		{PID: 0x5E, Name: "fuel_rate", Unit: "L/h", Bytes: 2, Field: attr, f: func(d []byte) float64 { return u16(d) / 20 }},
		{PID: 0x61, Name: "torque_demanded", Unit: "%", Bytes: 1, Field: attr, f: torque},
		{PID: 0x62, Name: "torque_actual", Unit: "%", Bytes: 1, Field: attr, f: torque},
		{PID: 0x63, Name: "torque_reference", Unit: "Nm", Bytes: 2, Field: attr, f: u16},
		{PID: 0xA6, Name: "odometer", Unit: "km", Bytes: 4, Field: signal.FieldOdometer, f: func(d []byte) float64 {
			return float64(uint32(d[0])<<24|uint32(d[1])<<16|uint32(d[2])<<8|uint32(d[3])) / 10
		}},
	} {
		p := p
		t[p.PID] = &p
	}
	return t
}()

// Lookup returns the description of a PID this package interprets.
func Lookup(pid byte) (Param, bool) {
	if p := params[pid]; p != nil {
		return *p, true
	}
	return Param{}, false
}

// unitSuffix turns a unit into the suffix of an attribute name.
var unitSuffix = map[string]string{
	"%": "pct", "C": "c", "kPa": "kpa", "rpm": "rpm", "km/h": "kmh", "g/s": "gs", "s": "s",
	"km": "km", "V": "v", "L/h": "lph", "deg": "deg", "min": "min", "Nm": "nm", "count": "count",
}

// AttrName is the stable attribute name of a PID's value:
// "obd_<pid as two lowercase hex digits>_<name>_<unit>", e.g.
// "obd_0b_map_kpa", "obd_5e_fuel_rate_lph". A PID this package does not
// interpret is "obd_<pid>" for an already-scaled value and "obd_<pid>_raw"
// for raw bytes (hex). Canonical PIDs have an attr name too: it is used
// when their canonical field is already set by another source.
func AttrName(pid byte) string { return attrNames[pid] }

// attrNames and rawNames are computed once: Apply runs for every value of
// every record.
var attrNames, rawNames = func() (names, raw [256]string) {
	for pid := range 256 {
		if p := params[pid]; p != nil {
			names[pid] = fmt.Sprintf("obd_%02x_%s_%s", pid, p.Name, unitSuffix[p.Unit])
		} else {
			names[pid] = fmt.Sprintf("obd_%02x", pid)
		}
		raw[pid] = fmt.Sprintf("obd_%02x_raw", pid)
	}
	return names, raw
}()

// Value is one decoded PID.
type Value struct {
	PID byte
	// Known is false for a PID this package does not interpret; then Raw
	// holds the response bytes (Decode) or Number the device's value
	// (Scaled).
	Known  bool
	Number float64
	Raw    []byte
	// HasNumber is true when Number holds a value (always for a known PID,
	// and for an unknown PID passed to Scaled).
	HasNumber bool
	// Monitor is the decoded monitor status of PID 01 response bytes
	// (Decode); nil otherwise, also for Scaled(0x01, count), which carries
	// the DTC count alone. Number holds the DTC count.
	Monitor *MonitorStatus
}

// Decode applies the J1979 formula of pid to its data bytes (A = data[0]).
// Extra bytes beyond the formula's are ignored; fewer bytes is
// ErrShortData. An unknown PID is no error: the Value keeps a copy of the
// bytes.
func Decode(pid byte, data []byte) (Value, error) {
	p := params[pid]
	if p == nil {
		return Value{PID: pid, Raw: append([]byte(nil), data...)}, nil
	}
	if len(data) < p.Bytes {
		return Value{}, fmt.Errorf("decoding PID %02X: %w (%d of %d bytes)", pid, ErrShortData, len(data), p.Bytes)
	}
	v := Value{PID: pid, Known: true, Number: p.f(data[:p.Bytes]), HasNumber: true}
	if pid == PIDMonitorStatus {
		m := DecodeMonitorStatus(data)
		v.Monitor = &m
	}
	return v, nil
}

// Scaled wraps a value the device already converted to the PID's unit (the
// unit of Lookup(pid)). A NaN or infinite value is rejected.
func Scaled(pid byte, v float64) (Value, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Value{}, fmt.Errorf("scaling PID %02X: value %v is not a finite number", pid, v)
	}
	return Value{PID: pid, Known: params[pid] != nil, Number: v, HasNumber: true}, nil
}

// Apply stores the value in s. A canonical PID sets its canonical field
// unless that field already holds a value (for example GPS speed next to OBD
// speed): then the OBD value goes to its attr name instead, so nothing is
// overwritten or lost. Other known PIDs go to AttrName; unknown PIDs to
// "obd_<pid>" (number) or "obd_<pid>_raw" (hex bytes).
func (v Value) Apply(s *signal.Signal) {
	if v.Monitor != nil {
		v.Monitor.apply(s)
	}
	if !v.HasNumber {
		s.SetAttr(rawNames[v.PID], hex.EncodeToString(v.Raw))
		return
	}
	if p := params[v.PID]; p != nil && p.Field != attr && math.IsNaN(s.Number(p.Field)) {
		s.SetNumber(p.Field, v.Number)
		return
	}
	s.SetAttr(AttrName(v.PID), v.Number)
}

// String renders the value for logs.
func (v Value) String() string {
	if !v.HasNumber {
		return fmt.Sprintf("%02X=%x", v.PID, v.Raw)
	}
	unit := ""
	if p := params[v.PID]; p != nil {
		unit = " " + p.Unit
	}
	return fmt.Sprintf("%02X=%s%s", v.PID, strconv.FormatFloat(v.Number, 'f', -1, 64), unit)
}

// MonitorStatus is PID 01 (monitor status since DTCs cleared): the MIL
// lamp and the number of stored emission DTCs from byte A, and, when bytes
// B, C and D are present, which on-board readiness monitors the engine
// supports and which of them have not completed.
type MonitorStatus struct {
	MIL      bool
	DTCCount int
	// Readiness is false when only byte A was given; the fields below are
	// then empty.
	Readiness bool
	// Compression is bit B3: a compression (diesel) engine, whose C/D
	// monitors differ from a spark ignition engine's.
	Compression bool
	// Supported and Incomplete name monitors in bit order (common ones
	// first: misfire, fuel_system, components; then the engine type's).
	Supported, Incomplete []string
}

// Monitor names by bit: the common tests of byte B (bits 0–2 available,
// 4–6 incomplete) and the engine-specific tests of bytes C (available)
// and D (incomplete).
var (
	commonMonitors      = [3]string{"misfire", "fuel_system", "components"}
	sparkMonitors       = [8]string{"catalyst", "heated_catalyst", "evap", "secondary_air", "ac_refrigerant", "o2_sensor", "o2_heater", "egr"}
	compressionMonitors = [8]string{"nmhc_catalyst", "nox_scr", "", "boost_pressure", "", "exhaust_gas_sensor", "pm_filter", "egr_vvt"}
)

// DecodeMonitorStatus decodes PID 01's bytes A[, B, C, D]: A bit 7 is the
// MIL, bits 0–6 the DTC count. Readiness needs all four bytes; with fewer
// only A is read. An empty slice gives the zero status.
func DecodeMonitorStatus(d []byte) MonitorStatus {
	var m MonitorStatus
	if len(d) == 0 {
		return m
	}
	m.MIL = d[0]&0x80 != 0
	m.DTCCount = int(d[0] & 0x7F)
	if len(d) < 4 {
		return m
	}
	m.Readiness = true
	b, c, dd := d[1], d[2], d[3]
	m.Compression = b&0x08 != 0
	for i, name := range commonMonitors {
		if b&(1<<i) != 0 {
			m.Supported = append(m.Supported, name)
			if b&(0x10<<i) != 0 {
				m.Incomplete = append(m.Incomplete, name)
			}
		}
	}
	names := sparkMonitors
	if m.Compression {
		names = compressionMonitors
	}
	for i, name := range names {
		if name == "" || c&(1<<i) == 0 {
			continue
		}
		m.Supported = append(m.Supported, name)
		if dd&(1<<i) != 0 {
			m.Incomplete = append(m.Incomplete, name)
		}
	}
	return m
}

// apply stores the status as attrs: obd_01_mil (bool) and, with
// readiness, obd_01_ignition ("spark" or "compression"),
// obd_01_monitors and obd_01_incomplete (comma-separated names) and
// obd_01_ready (every supported monitor complete). The DTC count goes to
// obd_01_dtc_count through the Value's number.
func (m *MonitorStatus) apply(s *signal.Signal) {
	s.SetAttr("obd_01_mil", m.MIL)
	if !m.Readiness {
		return
	}
	ign := "spark"
	if m.Compression {
		ign = "compression"
	}
	s.SetAttr("obd_01_ignition", ign)
	s.SetAttr("obd_01_monitors", strings.Join(m.Supported, ","))
	s.SetAttr("obd_01_incomplete", strings.Join(m.Incomplete, ","))
	s.SetAttr("obd_01_ready", len(m.Incomplete) == 0)
}

// DTC decodes one diagnostic trouble code from its two bytes. The first two
// bits of a select the system (P powertrain, C chassis, B body, U network),
// the next two bits the first digit, and the remaining three nibbles the
// rest: 0x01 0x43 is P0143. ok is false for 0x0000, which is padding.
func DTC(a, b byte) (code string, ok bool) {
	if a == 0 && b == 0 {
		return "", false
	}
	const hexDigits = "0123456789ABCDEF"
	buf := [5]byte{"PCBU"[a>>6], hexDigits[(a>>4)&0x3], hexDigits[a&0xF], hexDigits[b>>4], hexDigits[b&0xF]}
	return string(buf[:]), true
}

// DTCWord decodes a DTC given as one 16-bit word (high byte first).
func DTCWord(w uint16) (string, bool) { return DTC(byte(w>>8), byte(w)) }

// DTCs decodes a mode 03/07/0A response body: consecutive two-byte codes,
// padding (0x0000) skipped. A trailing odd byte is ErrShortData.
func DTCs(data []byte) ([]string, error) {
	if len(data)%2 != 0 {
		return nil, fmt.Errorf("decoding DTC list of %d bytes: %w", len(data), ErrShortData)
	}
	var out []string
	for i := 0; i+1 < len(data); i += 2 {
		if c, ok := DTC(data[i], data[i+1]); ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// DTCWords decodes a list of DTC words, skipping padding.
func DTCWords(words []uint16) []string {
	var out []string
	for _, w := range words {
		if c, ok := DTCWord(w); ok {
			out = append(out, c)
		}
	}
	return out
}

// AddDTCs appends codes to s.DTCs, skipping ones already present, so a
// frame that repeats a code does not list it twice.
func AddDTCs(s *signal.Signal, codes ...string) {
outer:
	for _, c := range codes {
		for _, have := range s.DTCs {
			if have == c {
				continue outer
			}
		}
		s.DTCs = append(s.DTCs, c)
	}
}
