package suntech

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

var emergencies = map[int64]string{1: "sos", 2: "parking", 3: "power_cut", 5: "door", 6: "door", 7: "movement", 8: "vibration"}

var alerts = map[int64]string{
	1: "overspeed", 5: "geofence_exit", 6: "geofence_enter", 14: "low_battery", 15: "vibration", 16: "accident",
	40: "power_restored", 41: "power_cut", 42: "sos", 46: "acceleration", 47: "braking", 50: "jamming", 132: "door",
}

func setAlert(sig *signal.Signal, table map[int64]string, code int64) {
	sig.SetAttr("alert_id", code)
	if a, ok := table[code]; ok {
		sig.SetAttr("alarm", a)
	}
}

// result is a command answer: a record with the server's time.
func (s *Session) result(id string, res []string, typ string, frame []byte, recv time.Time) (*signal.Signal, error) {
	if err := s.setDevice(id); err != nil {
		return nil, err
	}
	sig := s.serverSignal(frame, recv)
	sig.SetAttr("type", typ)
	sig.SetAttr("result", strings.Join(res, ";"))
	return sig, nil
}

// st300 decodes the ST300/ST340/ST500/ST600/SA200 form: <model+type>;id;
// [model;]fw;date;time;[cell[;mcc;mnc;lac;rssi]];lat;lon;speed;course;
// sats;fix;odometer;power;io;<type fields>[;hbm fields].
func (s *Session) st300(protocol, typ string, v []string, frame []byte, recv time.Time) (*signal.Signal, error) {
	f := &fields{v: v, i: 1}
	if f.left() > 0 && v[1] == "Res" {
		if len(v) < 3 {
			return nil, fmt.Errorf("%w: command result without a device id", plugins.ErrMalformed)
		}
		return s.result(v[2], v[3:], typ, frame, recv)
	}
	id, err := f.next("device id")
	if err != nil {
		return nil, err
	}
	if err := s.setDevice(id); err != nil {
		return nil, err
	}
	switch typ {
	case "STT", "EMG", "EVT", "ALT", "UEX":
	case "ALV": // keep-alive
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: %s report type %q", plugins.ErrUnsupported, protocol, clip(typ))
	}
	if strings.HasPrefix(protocol, "ST3") || protocol == "ST500" || protocol == "ST600" {
		if err := f.skip("model"); err != nil {
			return nil, err
		}
	}
	fw, err := f.next("firmware version")
	if err != nil {
		return nil, err
	}
	ts, err := f.time()
	if err != nil {
		return nil, err
	}
	sig := s.newSignal(ts, frame)
	sig.SetAttr("type", typ)
	sig.SetAttr("version_fw", fw)
	if protocol != "ST500" {
		cid, err := f.hex("cell id")
		if err != nil {
			return nil, err
		}
		sig.SetAttr("cid", cid)
		if protocol == "ST600" {
			if err := cellTail(f, sig); err != nil {
				return nil, err
			}
		}
	}
	if err := fix(f, sig, true); err != nil {
		return nil, err
	}
	odo, err := f.int("odometer")
	if err != nil {
		return nil, err
	}
	sig.Odometer = float64(odo) / 1000 // metres → km
	if sig.Voltage, err = f.float("power voltage"); err != nil {
		return nil, err
	}
	io, err := f.next("io state")
	if err != nil {
		return nil, err
	}
	if len(io) >= 6 {
		if strings.Trim(io, "01") != "" {
			return nil, fmt.Errorf("%w: io state %q is not binary", plugins.ErrMalformed, clip(io))
		}
		sig.SetAttr("ignition", io[0] == '1')
		for i, name := range []string{"in1", "in2", "in3", "out1", "out2"} {
			sig.SetAttr(name, io[i+1] == '1')
		}
	}
	switch typ {
	case "STT":
		st, err := f.int("status")
		if err != nil {
			return nil, err
		}
		sig.SetAttr("status", st)
		if f.left() > 0 {
			idx, err := f.int("index")
			if err != nil {
				return nil, err
			}
			sig.SetAttr("index", idx)
		}
	case "EMG":
		code, err := f.int("emergency id")
		if err != nil {
			return nil, err
		}
		setAlert(sig, emergencies, code)
	case "EVT":
		ev, err := f.int("event id")
		if err != nil {
			return nil, err
		}
		sig.SetAttr("event", ev)
	case "ALT":
		code, err := f.int("alert id")
		if err != nil {
			return nil, err
		}
		setAlert(sig, alerts, code)
	case "UEX":
		if err := serial(f, sig); err != nil {
			return nil, err
		}
	}
	if s.set.hbm >= 1 {
		if err := s.hbmFields(f, sig); err != nil {
			return nil, err
		}
	}
	rest(f, sig)
	return sig, nil
}

// cellTail reads mcc;mnc;lac(hex);rssi after a cell id.
func cellTail(f *fields, sig *signal.Signal) error {
	mcc, err := f.int("mcc")
	if err != nil {
		return err
	}
	mnc, err := f.int("mnc")
	if err != nil {
		return err
	}
	lac, err := f.hex("lac")
	if err != nil {
		return err
	}
	rssi, err := f.int("rssi")
	if err != nil {
		return err
	}
	sig.SetAttr("mcc", mcc)
	sig.SetAttr("mnc", mnc)
	sig.SetAttr("lac", lac)
	sig.SetAttr("rssi", rssi)
	return nil
}

// fix reads lat;lon;speed;course[;sats];fix.
func fix(f *fields, sig *signal.Signal, sats bool) error {
	if err := position(f, sig); err != nil {
		return err
	}
	var err error
	if sig.Speed, err = f.float("speed"); err != nil { // km/h
		return err
	}
	if sig.Heading, err = f.float("course"); err != nil {
		return err
	}
	if sats {
		n, err := f.int("satellites")
		if err != nil {
			return err
		}
		sig.Sats = float64(n)
	}
	valid, err := f.next("fix")
	if err != nil {
		return err
	}
	sig.Valid = signal.FlagOf(valid == "1")
	noFix(sig)
	return nil
}

// hbmFields reads the fields the HBM setting adds: hours, battery,
// archive, [3 ADC], [rpm], [driver id, registered], [3 temperatures],
// and with hbm 2 the serving cell.
func (s *Session) hbmFields(f *fields, sig *signal.Signal) error {
	if f.left() > 0 {
		mins, err := f.int("hour meter")
		if err != nil {
			return err
		}
		sig.SetAttr("engine_hours", float64(mins)/60)
	}
	if f.left() > 0 {
		b, err := f.float("battery voltage")
		if err != nil {
			return err
		}
		sig.SetAttr("battery_v", b)
	}
	if f.left() > 0 {
		_ = f.skip("archive") // real-time/stored flag: see README "Resends"
	}
	if s.set.adc {
		for i := 1; i <= 3 && f.left() > 0; i++ {
			a, _ := f.next("adc")
			if a == "" {
				continue
			}
			x, err := parseFloat("adc"+strconv.Itoa(i), a)
			if err != nil {
				return err
			}
			sig.SetAttr("adc"+strconv.Itoa(i), x)
		}
	}
	if s.set.rpm && f.left() > 0 {
		rpm, err := f.int("rpm")
		if err != nil {
			return err
		}
		sig.RPM = float64(rpm)
	}
	need := 2
	if s.set.hbm >= 2 {
		need = 7
	}
	if f.left() >= need {
		d, _ := f.next("driver id")
		if d != "" {
			sig.SetAttr("driver_id", d)
		}
		_ = f.skip("driver registered")
	}
	if s.set.temp {
		for i := 1; i <= 3 && f.left() > 0; i++ {
			t, _ := f.next("temperature")
			val := t[strings.IndexByte(t, ':')+1:]
			if val == "" {
				continue
			}
			x, err := parseFloat("temperature "+strconv.Itoa(i), val)
			if err != nil {
				return err
			}
			sig.SetAttr("temp"+strconv.Itoa(i), x)
		}
	}
	if s.set.hbm >= 2 && f.left() >= 5 {
		cid, err := f.int("cell id")
		if err != nil {
			return err
		}
		sig.SetAttr("cid", cid)
		mcc, err := f.int("mcc")
		if err != nil {
			return err
		}
		mnc, err := f.int("mnc")
		if err != nil {
			return err
		}
		rssi, err := f.int("rssi")
		if err != nil {
			return err
		}
		lac, err := f.int("lac")
		if err != nil {
			return err
		}
		sig.SetAttr("mcc", mcc)
		sig.SetAttr("mnc", mnc)
		sig.SetAttr("rssi", rssi)
		sig.SetAttr("lac", lac)
	}
	return nil
}

// serial decodes the UEX serial data: a byte count, then that many bytes
// of ';'-separated items (CabAVL fuel messages, GTSL driver ids, key=value
// sensor pairs, free text), then a checksum field.
func serial(f *fields, sig *signal.Signal) error {
	remaining, err := f.int("serial data length")
	if err != nil {
		return err
	}
	total := 0.0
	for remaining > 0 {
		item, err := f.next("serial data")
		if err != nil {
			return err
		}
		remaining -= int64(len(item)) + 1
		switch {
		case strings.HasPrefix(item, "CabAVL"):
			d := strings.Split(item, ",")
			for i, name := range []string{"fuel1", "fuel2"} {
				if len(d) <= 2+i || d[2+i] == "" {
					continue
				}
				x, err := parseFloat(name, d[2+i])
				if err != nil {
					return err
				}
				if x > 0 {
					total += x
					sig.SetAttr(name, x)
				}
			}
		case strings.HasPrefix(item, "GTSL"):
			d := strings.Split(item, "|")
			if len(d) < 5 {
				return fmt.Errorf("%w: GTSL item %q has no driver id", plugins.ErrMalformed, clip(item))
			}
			sig.SetAttr("driver_id", d[4])
		case strings.Contains(item, "="):
			k, val, _ := strings.Cut(item, "=")
			val = strings.TrimSpace(val)
			if i := strings.IndexByte(val, '.'); i >= 0 {
				val = val[:i]
			}
			if len(k) < 3 || val == "" {
				setSerial(sig, item)
				continue
			}
			n, err := parseInt(k, val, 16)
			if err != nil {
				return err
			}
			switch k[0] {
			case 't':
				sig.SetAttr("temp"+k[2:3], n)
			case 'N':
				total += float64(n)
				sig.SetAttr("fuel"+k[2:3], n)
			case 'Q':
				sig.SetAttr("driving_quality", n)
			default:
				setSerial(sig, item)
			}
		default:
			setSerial(sig, item)
		}
	}
	if total > 0 {
		sig.SetAttr("fuel_level", total) // the sensors' units, summed
	}
	if f.left() > 0 {
		_ = f.skip("serial checksum")
	}
	return nil
}

// st4 decodes the ST4xx form: type;id;fw;model[;variant];7 cells;battery;
// archive;index;status[;network][…];date;time;lat;lon;speed;course;sats;fix.
func (s *Session) st4(v []string, frame []byte, recv time.Time) (*signal.Signal, error) {
	typ := v[0][5:]
	f := &fields{v: v, i: 1}
	id, err := f.next("device id")
	if err != nil {
		return nil, err
	}
	if err := s.setDevice(id); err != nil {
		return nil, err
	}
	switch typ {
	case "STT", "ALT":
	case "ALV":
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: ST4 report type %q", plugins.ErrUnsupported, clip(typ))
	}
	fw, err := f.next("firmware version")
	if err != nil {
		return nil, err
	}
	model, err := f.int("model")
	if err != nil {
		return nil, err
	}
	if model == 41 {
		if err := f.skip("variant"); err != nil {
			return nil, err
		}
	}
	attrs := map[string]any{"type": typ, "version_fw": fw}
	for i := 0; i < 7; i++ {
		cid, err := f.int("cell id")
		if err != nil {
			return nil, err
		}
		mcc, err := f.int("mcc")
		if err != nil {
			return nil, err
		}
		mnc, err := f.int("mnc")
		if err != nil {
			return nil, err
		}
		a, err := f.int("cell field")
		if err != nil {
			return nil, err
		}
		b, err := f.int("cell field")
		if err != nil {
			return nil, err
		}
		lac, rssi := b, a // the serving cell: rssi first
		if i > 0 {
			lac, rssi = a, b
		}
		if err := f.skip("timing advance"); err != nil {
			return nil, err
		}
		if i == 0 && cid > 0 {
			attrs["cid"], attrs["mcc"], attrs["mnc"], attrs["lac"], attrs["rssi"] = cid, mcc, mnc, lac, rssi
		}
	}
	bat, err := f.float("battery voltage")
	if err != nil {
		return nil, err
	}
	attrs["battery_v"] = bat
	_ = f.skip("archive") // real-time/stored flag: see README "Resends"
	idx, err := f.int("index")
	if err != nil {
		return nil, err
	}
	attrs["index"] = idx
	st, err := f.int("status")
	if err != nil {
		return nil, err
	}
	attrs["status"] = st
	if f.left() > 0 && len(v[f.i]) == 3 {
		f.i++ // collaborative network
	}
	if model == 41 {
		_ = f.skip("collaborative network")
		_ = f.skip("temperature")
		m, err := f.int("motion")
		if err != nil {
			return nil, err
		}
		attrs["motion"] = m == 2
	}
	var sig *signal.Signal
	if f.left() == 0 || v[f.i] == "" {
		sig = s.serverSignal(frame, recv)
		f.i = len(v)
	} else {
		ts, err := f.time()
		if err != nil {
			return nil, err
		}
		sig = s.newSignal(ts, frame)
		if err := fix(f, sig, true); err != nil {
			return nil, err
		}
	}
	for k, a := range attrs {
		sig.SetAttr(k, a)
	}
	rest(f, sig)
	return sig, nil
}

// st9 decodes the ST9xx form: ST910;Location|Emergency|Alert;id;[fw;]
// date;time;[cell;]lat;lon;speed;course;fix[;odometer]….
func (s *Session) st9(v []string, frame []byte) (*signal.Signal, error) {
	f := &fields{v: v, i: 1}
	typ, err := f.next("report type")
	if err != nil {
		return nil, err
	}
	id, err := f.next("device id")
	if err != nil {
		return nil, err
	}
	if err := s.setDevice(id); err != nil {
		return nil, err
	}
	switch typ {
	case "Location", "Emergency", "Alert":
	case "Alive":
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: ST9 report type %q", plugins.ErrUnsupported, clip(typ))
	}
	fw := ""
	if typ != "Alert" || s.set.protocolType == 0 {
		if fw, err = f.next("firmware version"); err != nil {
			return nil, err
		}
	}
	ts, err := f.time()
	if err != nil {
		return nil, err
	}
	sig := s.newSignal(ts, frame)
	sig.SetAttr("type", typ)
	if fw != "" {
		sig.SetAttr("version_fw", fw)
	}
	if typ != "Location" {
		sig.SetAttr("alarm", "general")
	}
	if s.set.protocolType == 1 {
		cid, err := f.next("cell id")
		if err != nil {
			return nil, err
		}
		sig.SetAttr("cell", cid)
	}
	if err := fix(f, sig, false); err != nil {
		return nil, err
	}
	if s.set.protocolType == 1 {
		odo, err := f.int("odometer")
		if err != nil {
			return nil, err
		}
		sig.Odometer = float64(odo) / 1000
	}
	rest(f, sig)
	return sig, nil
}

// travel decodes the HTE travel report: the driver id (last field), with
// the server's time (the report's times are the trip's, not a fix's).
func (s *Session) travel(v []string, frame []byte, recv time.Time) (*signal.Signal, error) {
	if len(v) < 3 {
		return nil, fmt.Errorf("%w: travel report of %d fields", plugins.ErrMalformed, len(v))
	}
	if err := s.setDevice(v[1]); err != nil {
		return nil, err
	}
	sig := s.serverSignal(frame, recv)
	sig.SetAttr("type", "HTE")
	if d := v[len(v)-1]; d != "" {
		sig.SetAttr("driver_id", d)
	}
	sig.SetAttr("trip", strings.Join(v[2:len(v)-1], ";"))
	return sig, nil
}

// setSerial keeps a serial item as text, or as hex (attr serial_hex) when
// it is binary.
func setSerial(sig *signal.Signal, item string) {
	t := strings.TrimSpace(item)
	for _, c := range []byte(t) {
		if c < 0x20 || c > 0x7e {
			sig.SetAttr("serial_hex", hex.EncodeToString([]byte(item)))
			return
		}
	}
	sig.SetAttr("serial", t)
}
