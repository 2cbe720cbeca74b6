package meitrack

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// alarms maps event codes to alarm names (Meitrack's event table).
var alarms = map[int64]string{
	1: "sos", 17: "low_battery", 18: "low_power", 19: "overspeed", 20: "geofence_enter",
	21: "geofence_exit", 22: "power_restored", 23: "power_cut", 36: "tow", 44: "jamming",
	78: "accident", 90: "cornering", 91: "cornering", 129: "braking", 130: "acceleration",
	135: "fatigue_driving",
}

func setEvent(sig *signal.Signal, event int64) {
	sig.SetAttr("event", event)
	if a, ok := alarms[event]; ok {
		sig.SetAttr("alarm", a)
	}
}

func digitsOnly(v string) bool { return v != "" && strings.Trim(v, "0123456789") == "" }

// decimal parses a field that must be a plain decimal number.
func decimal(name, v string) (float64, error) {
	if v == "" || strings.Trim(v, "0123456789.-") != "" {
		return 0, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(v))
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(v))
	}
	return f, nil
}

func integer(name, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not an integer", plugins.ErrMalformed, name, clip(v))
	}
	return n, nil
}

// hexOpt parses an optional hexadecimal field: empty is absent.
func hexOpt(name, v string) (int64, bool, error) {
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(v, 16, 32)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %s %q is not hexadecimal", plugins.ErrMalformed, name, clip(v))
	}
	return int64(n), true, nil
}

// report decodes an AAA (or AFF) text report:
// event,lat,lon,yymmddhhmmss,A|V,sats,gsm,speed,course,hdop,alt,odometer,
// runtime,mcc|mnc|lac|cid,io,analog[,event data,reserved,protocol,fuel,
// temperatures,data count,data…]. AFF puts one more number first.
func (s *Session) report(m message, frame []byte) (signal.Signal, error) {
	f := strings.Split(string(m.data), ",")
	if m.cmd == "AFF" && len(f) > 0 {
		f = f[1:]
	}
	if len(f) < 16 {
		return signal.Signal{}, fmt.Errorf("%w: %s report of %d fields, want at least 16", plugins.ErrMalformed, m.cmd, len(f))
	}
	event, err := integer("event", f[0])
	if err != nil {
		return signal.Signal{}, err
	}
	lat, err := decimal("latitude", f[1])
	if err != nil {
		return signal.Signal{}, err
	}
	lon, err := decimal("longitude", f[2])
	if err != nil {
		return signal.Signal{}, err
	}
	if math.Abs(lat) > 90 || math.Abs(lon) > 180 {
		return signal.Signal{}, fmt.Errorf("%w: position %s,%s out of range", plugins.ErrMalformed, f[1], f[2])
	}
	d := f[3]
	if len(d) != 12 || !digitsOnly(d) {
		return signal.Signal{}, fmt.Errorf("%w: date and time %q are not yymmddhhmmss", plugins.ErrMalformed, clip(d))
	}
	two := func(i int) int { n, _ := strconv.Atoi(d[i : i+2]); return n }
	ts, ok := civil(2000+two(0), two(2), two(4), two(6), two(8), two(10))
	if !ok {
		return signal.Signal{}, fmt.Errorf("%w: date and time %s out of range", plugins.ErrMalformed, d)
	}
	if f[4] != "A" && f[4] != "V" {
		return signal.Signal{}, fmt.Errorf("%w: validity %q is neither A nor V", plugins.ErrMalformed, clip(f[4]))
	}
	sig := s.newSignal(ts, frame)
	sig.Valid = signal.FlagOf(f[4] == "A")
	if f[4] == "A" || lat != 0 || lon != 0 { // 0,0 without a fix: no position
		sig.Lat, sig.Lon = lat, lon
	}
	setEvent(&sig, event)
	sig.SetAttr("command", m.cmd)
	nums := []struct {
		name string
		dst  *float64
	}{{"satellites", &sig.Sats}, {"gsm signal", nil}, {"speed", &sig.Speed}, {"course", &sig.Heading}, {"hdop", &sig.HDOP}, {"altitude", &sig.Alt}}
	for i, n := range nums {
		v, err := decimal(n.name, f[5+i])
		if err != nil {
			return signal.Signal{}, err
		}
		if n.dst == nil {
			sig.SetAttr("rssi", int64(v))
			continue
		}
		*n.dst = v
	}
	odo, err := integer("odometer", f[11])
	if err != nil {
		return signal.Signal{}, err
	}
	sig.Odometer = float64(odo) / 1000 // metres → km
	runtime, err := integer("runtime", f[12])
	if err != nil {
		return signal.Signal{}, err
	}
	sig.SetAttr("runtime", runtime)
	if err := cell(&sig, f[13]); err != nil {
		return signal.Signal{}, err
	}
	io := f[14]
	if len(io) != 4 {
		return signal.Signal{}, fmt.Errorf("%w: io state %q is not four hex digits", plugins.ErrMalformed, clip(io))
	}
	in, _, err1 := hexOpt("input", io[:2])
	out, _, err2 := hexOpt("output", io[2:])
	if err1 != nil || err2 != nil {
		return signal.Signal{}, fmt.Errorf("%w: io state %q is not four hex digits", plugins.ErrMalformed, io)
	}
	sig.SetAttr("input", in)
	sig.SetAttr("output", out)
	if err := s.analog(&sig, f[15]); err != nil {
		return signal.Signal{}, err
	}
	if err := extras(&sig, event, f[16:]); err != nil {
		return signal.Signal{}, err
	}
	return sig, nil
}

// cell decodes mcc|mnc|lac|cid (decimal, decimal, hex, hex; any may be
// empty).
func cell(sig *signal.Signal, v string) error {
	p := strings.Split(v, "|")
	if len(p) != 4 {
		return fmt.Errorf("%w: base station %q is not mcc|mnc|lac|cid", plugins.ErrMalformed, clip(v))
	}
	for i, name := range []string{"mcc", "mnc"} {
		if p[i] == "" {
			continue
		}
		n, err := strconv.ParseUint(p[i], 10, 16)
		if err != nil {
			return fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(p[i]))
		}
		sig.SetAttr(name, int64(n))
	}
	for i, name := range []string{"lac", "cid"} {
		n, ok, err := hexOpt(name, p[2+i])
		if err != nil {
			return err
		}
		if ok {
			sig.SetAttr(name, n)
		}
	}
	return nil
}

// scales are the volts per count of the hexadecimal battery and power
// fields, per model (Meitrack's documents: 10-bit ADC at 3 V or 12-bit at
// 3.3 V behind dividers, or centivolts).
var scales = map[string][2]float64{
	"MVT340": {3.0 * 2 / 1024, 3.0 * 16 / 1024}, "MVT380": {3.0 * 2 / 1024, 3.0 * 16 / 1024},
	"MT90": {3.3 * 2 / 4096, 0},
	"T1":   {3.3 * 2 / 4096, 3.3 * 16 / 4096}, "T3": {3.3 * 2 / 4096, 3.3 * 16 / 4096},
	"MVT100": {3.3 * 2 / 4096, 3.3 * 16 / 4096}, "MVT600": {3.3 * 2 / 4096, 3.3 * 16 / 4096},
	"MVT800": {3.3 * 2 / 4096, 3.3 * 16 / 4096}, "TC68": {3.3 * 2 / 4096, 3.3 * 16 / 4096},
	"TC68S": {3.3 * 2 / 4096, 3.3 * 16 / 4096},
	"T311":  {0.01, 0.01}, "T322X": {0.01, 0.01}, "T333": {0.01, 0.01}, "T355": {0.01, 0.01},
}

// analog decodes the analog block: battery|power|rtc|mcu|gps in volts
// (newer firmware, decimals), or adc1|adc2|adc3|battery|power in hex.
func (s *Session) analog(sig *signal.Signal, v string) error {
	p := strings.Split(v, "|")
	if len(p) != 5 {
		return fmt.Errorf("%w: analog block %q has %d parts, want 5", plugins.ErrMalformed, clip(v), len(p))
	}
	if strings.Contains(v, ".") {
		names := []string{"battery_v", "power", "rtc_v", "mcu_v", "gps_v"}
		for i, name := range names {
			if p[i] == "" {
				continue
			}
			f, err := decimal(name, p[i])
			if err != nil {
				return err
			}
			if i == 1 {
				sig.Voltage = f
				continue
			}
			sig.SetAttr(name, f)
		}
		return nil
	}
	vals := make([]int64, 5)
	have := make([]bool, 5)
	for i := range p {
		n, ok, err := hexOpt([]string{"adc1", "adc2", "adc3", "battery", "power"}[i], p[i])
		if err != nil {
			return err
		}
		vals[i], have[i] = n, ok
	}
	for i := 0; i < 3; i++ {
		if have[i] {
			sig.SetAttr("adc"+strconv.Itoa(i+1), vals[i])
		}
	}
	sc, known := scales[s.model]
	if have[3] {
		if known {
			sig.SetAttr("battery_v", float64(vals[3])*sc[0])
		} else {
			sig.SetAttr("battery_raw", vals[3])
		}
	}
	if have[4] {
		if known && sc[1] != 0 {
			sig.Voltage = float64(vals[4]) * sc[1]
		} else {
			sig.SetAttr("power_raw", vals[4])
		}
	}
	return nil
}

// extras decodes the optional tail: event data, reserved, protocol, fuel
// (4 hex: whole and hundredths), temperatures (id + value, '|'
// separated), data count and data.
func extras(sig *signal.Signal, event int64, f []string) error {
	get := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	if v := get(0); v != "" {
		if event == 37 {
			sig.SetAttr("driver_id", v)
		} else {
			sig.SetAttr("event_data", v)
		}
	}
	protocol := int64(0)
	if v := get(2); v != "" {
		n, err := integer("protocol version", v)
		if err != nil {
			return err
		}
		protocol = n
	}
	if v := get(3); v != "" {
		whole, ok1, err1 := hexOpt("fuel", v[:min(2, len(v))])
		frac, ok2, err2 := hexOpt("fuel", v[min(2, len(v)):])
		if len(v) != 4 || err1 != nil || err2 != nil || !ok1 || !ok2 {
			return fmt.Errorf("%w: fuel %q is not four hex digits", plugins.ErrMalformed, clip(v))
		}
		sig.SetAttr("fuel_level", float64(whole)+float64(frac)*0.01)
	}
	if v := get(4); v != "" {
		for _, t := range strings.Split(v, "|") {
			if len(t) != 6 {
				return fmt.Errorf("%w: temperature %q is not six hex digits", plugins.ErrMalformed, clip(t))
			}
			raw, err := strconv.ParseUint(t, 16, 32)
			if err != nil {
				return fmt.Errorf("%w: temperature %q is not hexadecimal", plugins.ErrMalformed, clip(t))
			}
			id := raw >> 16
			var c float64
			if protocol >= 3 {
				c = float64(int16(raw&0xffff)) * 0.01
			} else {
				whole := float64(int8(raw >> 8 & 0xff))
				frac := float64(raw&0xff) * 0.01
				if whole < 0 {
					frac = -frac
				}
				c = whole + frac
			}
			sig.SetAttr("temp"+strconv.FormatUint(id, 10), c)
		}
	}
	if len(f) > 6 {
		sig.SetAttr("data", strings.Join(f[6:], ","))
	}
	return nil
}
