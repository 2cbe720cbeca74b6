package teltonika

import (
	"math"
	"reflect"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// decodeIO decodes one codec 8E record carrying the given IO elements.
func decodeIO(t *testing.T, fixed []ioVal, nx []ioVal) signal.Signal {
	t.Helper()
	r := sampleRecord
	r.io = [4][]ioVal{}
	for _, v := range fixed {
		g := map[int]int{1: 0, 2: 1, 4: 2, 8: 3}[len(v.v)]
		r.io[g] = append(r.io[g], v)
	}
	r.nx = nx
	s := newSession(t, plugins.SessionConfig{})
	mustDecode(t, s, loginFrame(testIMEI))
	res := mustDecode(t, s, tcpFrame(avlData(Codec8E, []rec{r})))
	if len(res.Signals) != 1 {
		t.Fatalf("%d signals", len(res.Signals))
	}
	if err := plugins.CheckSignals(res.Signals); err != nil {
		t.Fatalf("CheckSignals: %v", err)
	}
	return res.Signals[0]
}

func TestOBDIOTable(t *testing.T) {
	// Teltonika's list: IO 30 = PID 01 … IO 60 = PID 5E, 31 ids.
	want := []byte{0x01, 0x04, 0x05, 0x06, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x1F, 0x21, 0x22, 0x23,
		0x2C, 0x2D, 0x2F, 0x31, 0x33, 0x42, 0x43, 0x46, 0x4D, 0x4E, 0x59, 0x5B, 0x5C, 0x5D, 0x5E}
	if len(want) != 31 || ioOBDLast-ioOBDFirst+1 != 31 {
		t.Fatalf("%d PIDs for IO %d–%d, want 31", len(want), ioOBDFirst, ioOBDLast)
	}
	if len(obdIOs) != len(want) {
		t.Fatalf("table holds %d, want %d", len(obdIOs), len(want))
	}
	for i, pid := range want {
		if obdIOs[i].pid != pid {
			t.Errorf("IO %d = PID %02X, want %02X", ioOBDFirst+i, obdIOs[i].pid, pid)
		}
	}
}

func TestOBDIO(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name  string
		io    ioVal
		field func(s *signal.Signal) float64 // canonical field, or nil
		attr  string
		want  float64
	}{
		{"30 dtc count 0", ioVal{30, []byte{0}}, nil, "obd_01_dtc_count", 0},
		{"30 dtc count 127", ioVal{30, []byte{127}}, nil, "obd_01_dtc_count", 127},
		{"31 load 0", ioVal{31, []byte{0}}, func(s *signal.Signal) float64 { return s.EngineLoad }, "", 0},
		{"31 load 100", ioVal{31, []byte{100}}, func(s *signal.Signal) float64 { return s.EngineLoad }, "", 100},
		{"32 coolant -128", ioVal{32, []byte{0x80}}, func(s *signal.Signal) float64 { return s.Coolant }, "", -128},
		{"32 coolant 127", ioVal{32, []byte{0x7F}}, func(s *signal.Signal) float64 { return s.Coolant }, "", 127},
		{"33 stft -100", ioVal{33, []byte{0x9C}}, nil, "obd_06_stft_b1_pct", -100},
		{"33 stft 100", ioVal{33, []byte{100}}, nil, "obd_06_stft_b1_pct", 100},
		{"34 fuel pressure max", ioVal{34, []byte{0x02, 0xFD}}, nil, "obd_0a_fuel_pressure_kpa", 765},
		{"35 map 255", ioVal{35, []byte{0xFF}}, nil, "obd_0b_map_kpa", 255},
		{"36 rpm 0", ioVal{36, []byte{0, 0}}, func(s *signal.Signal) float64 { return s.RPM }, "", 0},
		{"36 rpm 16383", ioVal{36, []byte{0x3F, 0xFF}}, func(s *signal.Signal) float64 { return s.RPM }, "", 16383},
		{"37 speed 255 (attr: GNSS speed is the field)", ioVal{37, []byte{0xFF}}, nil, "obd_0d_speed_kmh", 255},
		{"38 timing -64", ioVal{38, []byte{0xC0}}, nil, "obd_0e_timing_advance_deg", -64},
		{"38 timing 63", ioVal{38, []byte{0x3F}}, nil, "obd_0e_timing_advance_deg", 63},
		{"39 intake -40", ioVal{39, []byte{0xD8}}, nil, "obd_0f_intake_temp_c", -40},
		{"40 maf max", ioVal{40, []byte{0xFF, 0xFF}}, nil, "obd_10_maf_gs", 655.35},
		{"41 throttle 0", ioVal{41, []byte{0}}, func(s *signal.Signal) float64 { return s.Throttle }, "", 0},
		{"41 throttle 100", ioVal{41, []byte{100}}, func(s *signal.Signal) float64 { return s.Throttle }, "", 100},
		{"42 run time max", ioVal{42, []byte{0xFF, 0xFF}}, nil, "obd_1f_run_time_s", 65535},
		{"43 mil distance max", ioVal{43, []byte{0xFF, 0xFF}}, nil, "obd_21_mil_distance_km", 65535},
		{"44 rail rel max", ioVal{44, []byte{0xFF, 0xFF}}, nil, "obd_22_fuel_rail_rel_pressure_kpa", 6553.5},
		{"45 rail gauge max", ioVal{45, []byte{0xFF, 0xFF}}, nil, "obd_23_fuel_rail_gauge_pressure_kpa", 655350},
		{"46 egr 100", ioVal{46, []byte{100}}, nil, "obd_2c_egr_commanded_pct", 100},
		{"47 egr error -100", ioVal{47, []byte{0x9C}}, nil, "obd_2d_egr_error_pct", -100},
		{"48 fuel 0", ioVal{48, []byte{0}}, func(s *signal.Signal) float64 { return s.Fuel }, "", 0},
		{"48 fuel 100", ioVal{48, []byte{100}}, func(s *signal.Signal) float64 { return s.Fuel }, "", 100},
		{"49 clr distance max", ioVal{49, []byte{0xFF, 0xFF}}, nil, "obd_31_clr_distance_km", 65535},
		{"50 baro 255", ioVal{50, []byte{0xFF}}, nil, "obd_33_baro_kpa", 255},
		{"51 module voltage max (attr: IO 66 is the field)", ioVal{51, []byte{0xFF, 0xFF}}, nil, "obd_42_module_voltage_v", 65.535},
		{"52 abs load max", ioVal{52, []byte{0xFF, 0xFF}}, nil, "obd_43_abs_load_pct", 65535},
		{"53 ambient -128", ioVal{53, []byte{0x80}}, nil, "obd_46_ambient_temp_c", -128},
		{"54 mil time max", ioVal{54, []byte{0xFF, 0xFF}}, nil, "obd_4d_mil_time_min", 65535},
		{"55 clr time 0", ioVal{55, []byte{0, 0}}, nil, "obd_4e_clr_time_min", 0},
		{"56 rail abs max", ioVal{56, []byte{0xFF, 0xFF}}, nil, "obd_59_fuel_rail_pressure_kpa", 655350},
		{"57 hybrid 100", ioVal{57, []byte{100}}, nil, "obd_5b_hybrid_battery_pct", 100},
		{"58 oil -40", ioVal{58, []byte{0xD8}}, nil, "obd_5c_oil_temp_c", -40},
		{"59 injection min", ioVal{59, []byte{0x80, 0x00}}, nil, "obd_5d_injection_timing_deg", -327.68},
		{"59 injection max", ioVal{59, []byte{0x7F, 0xFF}}, nil, "obd_5d_injection_timing_deg", 327.67},
		{"60 fuel rate max", ioVal{60, []byte{0xFF, 0xFF}}, nil, "obd_5e_fuel_rate_lph", 655.35},
		{"60 fuel rate 0", ioVal{60, []byte{0, 0}}, nil, "obd_5e_fuel_rate_lph", 0},
		{"389 OEM odometer", ioVal{389, []byte{0, 0x01, 0xE2, 0x40}}, func(s *signal.Signal) float64 { return s.Odometer }, "oem_odometer_km", 123456},
		{"390 OEM fuel litres", ioVal{390, []byte{0, 0, 0x01, 0xF5}}, func(s *signal.Signal) float64 { return s.Fuel }, "oem_fuel_level_l", nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := decodeIO(t, []ioVal{tt.io}, nil)
			if tt.field != nil {
				got := tt.field(&s)
				if math.IsNaN(tt.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tt.want) > 1e-9) {
					t.Errorf("field = %v, want %v", got, tt.want)
				}
			}
			if tt.attr != "" {
				got, ok := s.Attrs[tt.attr].(float64)
				want := tt.want
				if tt.io.id == 390 {
					want = 50.1
				}
				if !ok || math.Abs(got-want) > 1e-9 {
					t.Errorf("attr %s = %#v, want %v (attrs %v)", tt.attr, s.Attrs[tt.attr], want, s.Attrs)
				}
			}
		})
	}
}

func TestOBDOdometerPrecedence(t *testing.T) {
	// IO 16 (GNSS total odometer, m) keeps the field; IO 389 stays an attr.
	s := decodeIO(t, []ioVal{{16, be(4, 5000)}, {389, be(4, 123456)}}, nil)
	if s.Odometer != 5 || s.Attrs["oem_odometer_km"] != 123456.0 {
		t.Errorf("odometer %v attrs %v", s.Odometer, s.Attrs)
	}
}

func TestOBDVINAndDTCs(t *testing.T) {
	s := decodeIO(t, []ioVal{{30, []byte{3}}}, []ioVal{
		{256, []byte("WV1ZZZ2EZ86015388")},
		{281, []byte("P0299,P0675,U0100")},
	})
	if s.Attrs["vin"] != "WV1ZZZ2EZ86015388" {
		t.Errorf("vin %v", s.Attrs["vin"])
	}
	if !reflect.DeepEqual(s.DTCs, []string{"P0299", "P0675", "U0100"}) {
		t.Errorf("dtcs %v", s.DTCs)
	}
	if s.Attrs["obd_01_dtc_count"] != 3.0 {
		t.Errorf("dtc count %v", s.Attrs["obd_01_dtc_count"])
	}
}

func TestDTCCodes(t *testing.T) {
	for in, want := range map[string][]string{
		"":                  nil,
		"P0301":             {"P0301"},
		"P0301,P0420":       {"P0301", "P0420"},
		"P0301P0420":        nil, // no separator: not two codes this reader can trust
		"P0301 C1234;B0001": {"P0301", "C1234", "B0001"},
		"XP0301,P030":       nil,
		"p0301,U2BAC":       {"U2BAC"},
	} {
		if got := dtcCodes(in); !reflect.DeepEqual(got, want) {
			t.Errorf("dtcCodes(%q) = %v, want %v", in, got, want)
		}
	}
}
