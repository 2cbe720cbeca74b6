package obd2

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/signal"
)

func TestDecodeFormulas(t *testing.T) {
	// Expected values are computed by hand from the SAE J1979 formulas
	// (A = first data byte), including the boundary bytes 0x00 and 0xFF.
	tests := []struct {
		name string
		pid  byte
		data []byte
		want float64
	}{
		{"load 0", 0x04, []byte{0x00}, 0},
		{"load max", 0x04, []byte{0xFF}, 100},
		{"load half", 0x04, []byte{0x80}, 128.0 * 100 / 255},
		{"coolant min", 0x05, []byte{0x00}, -40},
		{"coolant max", 0x05, []byte{0xFF}, 215},
		{"coolant 90", 0x05, []byte{0x82}, 90},
		{"stft min", 0x06, []byte{0x00}, -100},
		{"stft max", 0x06, []byte{0xFF}, 99.21875},
		{"fuel pressure max", 0x0A, []byte{0xFF}, 765},
		{"map 0", 0x0B, []byte{0x00}, 0},
		{"map max", 0x0B, []byte{0xFF}, 255},
		{"rpm 0", 0x0C, []byte{0x00, 0x00}, 0},
		{"rpm max", 0x0C, []byte{0xFF, 0xFF}, 16383.75},
		{"rpm 0x1AF8", 0x0C, []byte{0x1A, 0xF8}, 1726},
		{"speed 0", 0x0D, []byte{0x00}, 0},
		{"speed max", 0x0D, []byte{0xFF}, 255},
		{"timing min", 0x0E, []byte{0x00}, -64},
		{"timing max", 0x0E, []byte{0xFF}, 63.5},
		{"intake min", 0x0F, []byte{0x00}, -40},
		{"intake max", 0x0F, []byte{0xFF}, 215},
		{"maf 0", 0x10, []byte{0x00, 0x00}, 0},
		{"maf max", 0x10, []byte{0xFF, 0xFF}, 655.35},
		{"throttle 0", 0x11, []byte{0x00}, 0},
		{"throttle max", 0x11, []byte{0xFF}, 100},
		{"run time max", 0x1F, []byte{0xFF, 0xFF}, 65535},
		{"run time 0x0102", 0x1F, []byte{0x01, 0x02}, 258},
		{"mil distance max", 0x21, []byte{0xFF, 0xFF}, 65535},
		{"fuel 0", 0x2F, []byte{0x00}, 0},
		{"fuel max", 0x2F, []byte{0xFF}, 100},
		{"clr distance", 0x31, []byte{0x00, 0x10}, 16},
		{"baro max", 0x33, []byte{0xFF}, 255},
		{"voltage 0", 0x42, []byte{0x00, 0x00}, 0},
		{"voltage max", 0x42, []byte{0xFF, 0xFF}, 65.535},
		{"voltage 12.6", 0x42, []byte{0x31, 0x38}, 12.6},
		{"abs load max", 0x43, []byte{0xFF, 0xFF}, 65535.0 * 100 / 255},
		{"ambient min", 0x46, []byte{0x00}, -40},
		{"ambient max", 0x46, []byte{0xFF}, 215},
		{"fuel rail max", 0x59, []byte{0xFF, 0xFF}, 655350},
		{"oil min", 0x5C, []byte{0x00}, -40},
		{"oil max", 0x5C, []byte{0xFF}, 215},
		{"fuel rate 0", 0x5E, []byte{0x00, 0x00}, 0},
		{"fuel rate max", 0x5E, []byte{0xFF, 0xFF}, 3276.75},
		{"torque min", 0x61, []byte{0x00}, -125},
		{"torque max", 0x62, []byte{0xFF}, 130},
		{"odometer 0", 0xA6, []byte{0, 0, 0, 0}, 0},
		{"odometer max", 0xA6, []byte{0xFF, 0xFF, 0xFF, 0xFF}, 429496729.5},
		{"odometer 123456.7 km", 0xA6, []byte{0x00, 0x12, 0xD6, 0x87}, 123456.7},
		{"extra bytes ignored", 0x0D, []byte{0x32, 0xFF, 0xFF}, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Decode(tt.pid, tt.data)
			if err != nil {
				t.Fatalf("Decode(%02X, %x): %v", tt.pid, tt.data, err)
			}
			if !v.Known || !v.HasNumber {
				t.Fatalf("Decode(%02X) = %+v, want a known number", tt.pid, v)
			}
			if math.Abs(v.Number-tt.want) > 1e-9 {
				t.Errorf("Decode(%02X, %x) = %v, want %v", tt.pid, tt.data, v.Number, tt.want)
			}
		})
	}
}

func TestDecodeShortData(t *testing.T) {
	for _, tt := range []struct {
		pid  byte
		data []byte
	}{{0x0C, []byte{0x1A}}, {0x04, nil}, {0xA6, []byte{1, 2, 3}}, {0x42, []byte{}}} {
		if _, err := Decode(tt.pid, tt.data); !errors.Is(err, ErrShortData) {
			t.Errorf("Decode(%02X, %x) error = %v, want ErrShortData", tt.pid, tt.data, err)
		}
	}
}

func TestDecodeUnknownKeptRaw(t *testing.T) {
	data := []byte{0xDE, 0xAD}
	v, err := Decode(0xFE, data)
	if err != nil {
		t.Fatal(err)
	}
	data[0] = 0 // the value must hold a copy
	s := signal.New("dev", time.Unix(0, 0))
	v.Apply(&s)
	if got := s.Attrs["obd_fe_raw"]; got != "dead" {
		t.Errorf("attr obd_fe_raw = %v, want dead", got)
	}
}

func TestApplyCanonicalAndAttrs(t *testing.T) {
	tests := []struct {
		pid   byte
		data  []byte
		field signal.Field
		attr  string
		want  float64
	}{
		{0x0C, []byte{0x1A, 0xF8}, signal.FieldRPM, "", 1726},
		{0x0D, []byte{0x32}, signal.FieldSpeed, "", 50},
		{0x05, []byte{0x82}, signal.FieldCoolant, "", 90},
		{0x2F, []byte{0xFF}, signal.FieldFuel, "", 100},
		{0x42, []byte{0x31, 0x38}, signal.FieldVoltage, "", 12.6},
		{0xA6, []byte{0x00, 0x12, 0xD6, 0x87}, signal.FieldOdometer, "", 123456.7},
		{0x04, []byte{0xFF}, signal.FieldEngineLoad, "", 100},
		{0x11, []byte{0x00}, signal.FieldThrottle, "", 0},
		{0x0B, []byte{0x64}, 0, "obd_0b_map_kpa", 100},
		{0x0F, []byte{0x41}, 0, "obd_0f_intake_temp_c", 25},
		{0x10, []byte{0x01, 0x00}, 0, "obd_10_maf_gs", 2.56},
		{0x1F, []byte{0x00, 0x3C}, 0, "obd_1f_run_time_s", 60},
		{0x21, []byte{0x00, 0x05}, 0, "obd_21_mil_distance_km", 5},
		{0x31, []byte{0x01, 0x00}, 0, "obd_31_clr_distance_km", 256},
		{0x33, []byte{0x65}, 0, "obd_33_baro_kpa", 101},
		{0x46, []byte{0x3C}, 0, "obd_46_ambient_temp_c", 20},
		{0x5C, []byte{0x82}, 0, "obd_5c_oil_temp_c", 90},
		{0x5E, []byte{0x00, 0x64}, 0, "obd_5e_fuel_rate_lph", 5},
	}
	for _, tt := range tests {
		t.Run(AttrName(tt.pid), func(t *testing.T) {
			v, err := Decode(tt.pid, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			s := signal.New("dev", time.Unix(0, 0))
			v.Apply(&s)
			if tt.attr == "" {
				if got := s.Number(tt.field); math.Abs(got-tt.want) > 1e-9 {
					t.Errorf("%s = %v, want %v", tt.field, got, tt.want)
				}
				if len(s.Attrs) != 0 {
					t.Errorf("canonical PID also wrote attrs %v", s.Attrs)
				}
				return
			}
			got, ok := s.Attrs[tt.attr].(float64)
			if !ok || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("attrs = %v, want %s = %v", s.Attrs, tt.attr, tt.want)
			}
		})
	}
}

func TestApplyDoesNotOverwrite(t *testing.T) {
	s := signal.New("dev", time.Unix(0, 0))
	s.Speed = 42 // GPS speed
	v, _ := Decode(0x0D, []byte{50})
	v.Apply(&s)
	if s.Speed != 42 {
		t.Errorf("Speed = %v, want GPS value 42 kept", s.Speed)
	}
	if got := s.Attrs["obd_0d_speed_kmh"]; got != 50.0 {
		t.Errorf("obd_0d_speed_kmh = %v, want 50", got)
	}
}

func TestScaled(t *testing.T) {
	s := signal.New("dev", time.Unix(0, 0))
	for _, pv := range []struct {
		pid byte
		v   float64
	}{{0x0C, 4375}, {0x05, 199}, {0x0B, 99}, {0xF0, 7}} {
		v, err := Scaled(pv.pid, pv.v)
		if err != nil {
			t.Fatal(err)
		}
		v.Apply(&s)
	}
	if s.RPM != 4375 || s.Coolant != 199 {
		t.Errorf("RPM, Coolant = %v, %v", s.RPM, s.Coolant)
	}
	want := map[string]any{"obd_0b_map_kpa": 99.0, "obd_f0": 7.0}
	if !reflect.DeepEqual(s.Attrs, want) {
		t.Errorf("attrs = %v, want %v", s.Attrs, want)
	}
	if _, err := Scaled(0x0C, math.NaN()); err == nil {
		t.Error("Scaled(NaN) succeeded")
	}
}

func TestDTC(t *testing.T) {
	tests := []struct {
		a, b byte
		want string
		ok   bool
	}{
		{0x01, 0x43, "P0143", true},
		{0x00, 0x00, "", false},
		{0x41, 0x23, "C0123", true},
		{0x82, 0x34, "B0234", true},
		{0xC1, 0x00, "U0100", true},
		{0xFF, 0xFF, "U3FFF", true},
		{0x13, 0x01, "P1301", true},
		{0x00, 0x01, "P0001", true},
	}
	for _, tt := range tests {
		got, ok := DTC(tt.a, tt.b)
		if got != tt.want || ok != tt.ok {
			t.Errorf("DTC(%02X %02X) = %q, %v; want %q, %v", tt.a, tt.b, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDTCLists(t *testing.T) {
	got, err := DTCs([]byte{0x01, 0x43, 0x00, 0x00, 0xC1, 0x00, 0x00, 0x00})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"P0143", "U0100"}; !reflect.DeepEqual(got, want) {
		t.Errorf("DTCs = %v, want %v", got, want)
	}
	if _, err := DTCs([]byte{0x01}); !errors.Is(err, ErrShortData) {
		t.Errorf("odd DTC list error = %v", err)
	}
	if got := DTCWords([]uint16{0x0301, 0, 0x4123}); !reflect.DeepEqual(got, []string{"P0301", "C0123"}) {
		t.Errorf("DTCWords = %v", got)
	}
	s := signal.New("d", time.Unix(0, 0))
	AddDTCs(&s, "P0301", "P0301", "P0420")
	AddDTCs(&s, "P0420")
	if !reflect.DeepEqual(s.DTCs, []string{"P0301", "P0420"}) {
		t.Errorf("AddDTCs = %v", s.DTCs)
	}
}

func TestAttrNamesStable(t *testing.T) {
	// These names are stored in the database: changing one is a breaking
	// change, so they are pinned here.
	want := map[byte]string{
		0x0B: "obd_0b_map_kpa", 0x0F: "obd_0f_intake_temp_c", 0x10: "obd_10_maf_gs",
		0x1F: "obd_1f_run_time_s", 0x21: "obd_21_mil_distance_km", 0x31: "obd_31_clr_distance_km",
		0x33: "obd_33_baro_kpa", 0x46: "obd_46_ambient_temp_c", 0x5C: "obd_5c_oil_temp_c",
		0x5E: "obd_5e_fuel_rate_lph", 0x0D: "obd_0d_speed_kmh", 0x99: "obd_99",
	}
	for pid, name := range want {
		if got := AttrName(pid); got != name {
			t.Errorf("AttrName(%02X) = %q, want %q", pid, got, name)
		}
	}
	for pid := range 256 {
		if p, ok := Lookup(byte(pid)); ok {
			if _, ok := unitSuffix[p.Unit]; !ok {
				t.Errorf("PID %02X unit %q has no attr suffix", pid, p.Unit)
			}
		}
	}
}

func BenchmarkDecodeApply(b *testing.B) {
	s := signal.New("dev", time.Unix(0, 0))
	data := []byte{0x1A, 0xF8, 0, 0}
	for b.Loop() {
		for _, pid := range []byte{0x0C, 0x0D, 0x05, 0x0B, 0xA6} {
			v, _ := Decode(pid, data)
			v.Apply(&s)
		}
	}
}

func TestDecodeAddedPIDs(t *testing.T) {
	// Boundary bytes of the PIDs Teltonika's IO list needs beyond the
	// original table (SAE J1979 formulas).
	tests := []struct {
		name string
		pid  byte
		data []byte
		want float64
	}{
		{"dtc count 0", 0x01, []byte{0x00}, 0},
		{"dtc count MIL only", 0x01, []byte{0x80}, 0},
		{"dtc count max", 0x01, []byte{0xFF}, 127},
		{"rail rel 0", 0x22, []byte{0x00, 0x00}, 0},
		{"rail rel max", 0x22, []byte{0xFF, 0xFF}, 5177.265},
		{"rail gauge 0", 0x23, []byte{0x00, 0x00}, 0},
		{"rail gauge max", 0x23, []byte{0xFF, 0xFF}, 655350},
		{"egr error min", 0x2D, []byte{0x00}, -100},
		{"egr error zero", 0x2D, []byte{0x80}, 0},
		{"egr error max", 0x2D, []byte{0xFF}, 99.21875},
		{"injection timing min", 0x5D, []byte{0x00, 0x00}, -210},
		{"injection timing max", 0x5D, []byte{0xFF, 0xFF}, 301.9921875},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Decode(tt.pid, tt.data)
			if err != nil || !v.Known {
				t.Fatalf("Decode(%02X, %x) = %+v, %v", tt.pid, tt.data, v, err)
			}
			if math.Abs(v.Number-tt.want) > 1e-9 {
				t.Errorf("Decode(%02X, %x) = %v, want %v", tt.pid, tt.data, v.Number, tt.want)
			}
		})
	}
	for pid, name := range map[byte]string{0x01: "obd_01_dtc_count", 0x22: "obd_22_fuel_rail_rel_pressure_kpa",
		0x23: "obd_23_fuel_rail_gauge_pressure_kpa", 0x2D: "obd_2d_egr_error_pct", 0x5D: "obd_5d_injection_timing_deg"} {
		if got := AttrName(pid); got != name {
			t.Errorf("AttrName(%02X) = %q, want %q", pid, got, name)
		}
	}
}

func TestMonitorStatus(t *testing.T) {
	tests := []struct {
		name  string
		data  []byte
		want  MonitorStatus
		attrs map[string]any
	}{
		{"A only, MIL off", []byte{0x00}, MonitorStatus{},
			map[string]any{"obd_01_mil": false, "obd_01_dtc_count": 0.0}},
		{"A only, MIL on, 127 DTCs", []byte{0xFF}, MonitorStatus{MIL: true, DTCCount: 127},
			map[string]any{"obd_01_mil": true, "obd_01_dtc_count": 127.0}},
		{"spark, all supported, all complete", []byte{0x01, 0x07, 0xFF, 0x00},
			MonitorStatus{DTCCount: 1, Readiness: true,
				Supported: []string{"misfire", "fuel_system", "components", "catalyst", "heated_catalyst", "evap", "secondary_air", "ac_refrigerant", "o2_sensor", "o2_heater", "egr"}},
			map[string]any{"obd_01_mil": false, "obd_01_dtc_count": 1.0, "obd_01_ignition": "spark", "obd_01_ready": true,
				"obd_01_monitors": "misfire,fuel_system,components,catalyst,heated_catalyst,evap,secondary_air,ac_refrigerant,o2_sensor,o2_heater,egr", "obd_01_incomplete": ""}},
		{"Ulbotech capture 81 0F 80 00: MIL, 1 DTC, compression, EGR/VVT supported", []byte{0x81, 0x0F, 0x80, 0x00},
			MonitorStatus{MIL: true, DTCCount: 1, Readiness: true, Compression: true,
				Supported: []string{"misfire", "fuel_system", "components", "egr_vvt"}},
			map[string]any{"obd_01_mil": true, "obd_01_ignition": "compression", "obd_01_ready": true, "obd_01_monitors": "misfire,fuel_system,components,egr_vvt"}},
		{"compression, incomplete", []byte{0x00, 0x7F, 0xFF, 0xFF},
			MonitorStatus{Readiness: true, Compression: true,
				Supported:  []string{"misfire", "fuel_system", "components", "nmhc_catalyst", "nox_scr", "boost_pressure", "exhaust_gas_sensor", "pm_filter", "egr_vvt"},
				Incomplete: []string{"misfire", "fuel_system", "components", "nmhc_catalyst", "nox_scr", "boost_pressure", "exhaust_gas_sensor", "pm_filter", "egr_vvt"}},
			map[string]any{"obd_01_ready": false}},
		{"incomplete bit of an unsupported test ignored", []byte{0x00, 0x70, 0x00, 0xFF},
			MonitorStatus{Readiness: true}, map[string]any{"obd_01_ready": true, "obd_01_monitors": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DecodeMonitorStatus(tt.data); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeMonitorStatus(%x) = %+v, want %+v", tt.data, got, tt.want)
			}
			v, err := Decode(PIDMonitorStatus, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			s := signal.New("dev", time.Unix(0, 0))
			v.Apply(&s)
			for k, want := range tt.attrs {
				if got := s.Attrs[k]; got != want {
					t.Errorf("attr %s = %#v, want %#v", k, got, want)
				}
			}
		})
	}
	// A device's DTC count alone (Teltonika IO 30): no MIL attr.
	v, _ := Scaled(PIDMonitorStatus, 3)
	s := signal.New("dev", time.Unix(0, 0))
	v.Apply(&s)
	if _, ok := s.Attrs["obd_01_mil"]; ok || s.Attrs["obd_01_dtc_count"] != 3.0 {
		t.Errorf("Scaled(01, 3) attrs %v", s.Attrs)
	}
}
