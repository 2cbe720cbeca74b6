package signal

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// JSON is the canonical JSON shape of a signal: the column names of
// DESIGN.md §3. Absent values are omitted. It is what `fleetcore decode`
// prints, what the jsonl protocol reads and what rule test inputs hold.
type JSON struct {
	DeviceID   string         `json:"device_id"`
	TS         *time.Time     `json:"ts,omitempty"`
	Recv       *time.Time     `json:"recv,omitempty"`
	Lat        *float64       `json:"lat,omitempty"`
	Lon        *float64       `json:"lon,omitempty"`
	Alt        *float64       `json:"alt,omitempty"`
	Speed      *float64       `json:"speed,omitempty"`
	Heading    *float64       `json:"heading,omitempty"`
	Sats       *float64       `json:"sats,omitempty"`
	HDOP       *float64       `json:"hdop,omitempty"`
	Valid      *bool          `json:"valid,omitempty"`
	RPM        *float64       `json:"rpm,omitempty"`
	Coolant    *float64       `json:"coolant,omitempty"`
	Fuel       *float64       `json:"fuel,omitempty"`
	Voltage    *float64       `json:"voltage,omitempty"`
	Odometer   *float64       `json:"odometer,omitempty"`
	EngineLoad *float64       `json:"engine_load,omitempty"`
	Throttle   *float64       `json:"throttle,omitempty"`
	DTCs       []string       `json:"dtcs,omitempty"`
	Attrs      map[string]any `json:"attrs,omitempty"`
	Protocol   string         `json:"protocol,omitempty"`
	Path       string         `json:"path,omitempty"`
	// DecoderVersion is Signal.DecoderVersion (added with decoder ABI v1;
	// absent when unknown).
	DecoderVersion string `json:"decoder_version,omitempty"`
}

func num(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

func unnum(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func tptr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// ToJSON converts the signal to its canonical JSON shape.
func (s *Signal) ToJSON() JSON {
	j := JSON{
		DeviceID: s.DeviceID, TS: tptr(s.TS), Recv: tptr(s.Recv),
		Lat: num(s.Lat), Lon: num(s.Lon), Alt: num(s.Alt), Speed: num(s.Speed), Heading: num(s.Heading),
		Sats: num(s.Sats), HDOP: num(s.HDOP),
		RPM: num(s.RPM), Coolant: num(s.Coolant), Fuel: num(s.Fuel), Voltage: num(s.Voltage),
		Odometer: num(s.Odometer), EngineLoad: num(s.EngineLoad), Throttle: num(s.Throttle),
		DTCs: s.DTCs, Attrs: s.Attrs, Protocol: s.Protocol, Path: s.Path, DecoderVersion: s.DecoderVersion,
	}
	if v, ok := s.Valid.Bool(); ok {
		j.Valid = &v
	}
	return j
}

// Signal converts the canonical JSON shape back to a signal. JSON numbers in
// attrs become int64 when integral, float64 otherwise.
func (j *JSON) Signal() Signal {
	s := Signal{
		DeviceID: j.DeviceID,
		Lat:      unnum(j.Lat), Lon: unnum(j.Lon), Alt: unnum(j.Alt), Speed: unnum(j.Speed), Heading: unnum(j.Heading),
		Sats: unnum(j.Sats), HDOP: unnum(j.HDOP),
		RPM: unnum(j.RPM), Coolant: unnum(j.Coolant), Fuel: unnum(j.Fuel), Voltage: unnum(j.Voltage),
		Odometer: unnum(j.Odometer), EngineLoad: unnum(j.EngineLoad), Throttle: unnum(j.Throttle),
		DTCs: j.DTCs, Protocol: j.Protocol, Path: j.Path, DecoderVersion: j.DecoderVersion,
	}
	if j.TS != nil {
		s.TS = j.TS.UTC()
	}
	if j.Recv != nil {
		s.Recv = j.Recv.UTC()
	}
	if j.Valid != nil {
		s.Valid = FlagOf(*j.Valid)
	}
	for k, v := range j.Attrs {
		s.SetAttr(k, normalizeJSONValue(v))
	}
	return s
}

func normalizeJSONValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case string, bool, int64, nil:
		return x
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// MarshalJSON encodes the signal in its canonical JSON shape.
func (s Signal) MarshalJSON() ([]byte, error) { return json.Marshal(s.ToJSON()) }

// UnmarshalJSON decodes the canonical JSON shape.
func (s *Signal) UnmarshalJSON(b []byte) error {
	var j JSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decoding signal JSON: %w", err)
	}
	*s = j.Signal()
	return nil
}
