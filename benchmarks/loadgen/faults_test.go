package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/signal"
)

var fleetStart = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func testFleet(t *testing.T, seed uint64) *Fleet {
	t.Helper()
	specs, err := ParseFaults(DefaultFaults+",isolated=4", 30)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFleet(FleetConfig{Devices: 30, Records: 200, Interval: 5 * time.Second, Start: fleetStart, Faults: specs, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestParseFaults(t *testing.T) {
	for _, tc := range []struct {
		in      string
		devices int
		want    []FaultSpec
		err     bool
	}{
		{"teleport=2,zero_fix=0.1", 50, []FaultSpec{{FaultTeleport, 2}, {FaultZeroFix, 5}}, false},
		{"clock_slow=0.001", 50, []FaultSpec{{FaultClockSlow, 1}}, false},
		{"isolated=3,dup_same", 10, []FaultSpec{{"isolated", 3}, {FaultDupSame, 1}}, false},
		{"teleport=0", 10, nil, false},
		{"nonsense=1", 10, nil, true},
		{"teleport=x", 10, nil, true},
		{"teleport=1,teleport=2", 10, nil, true},
		{"all=1", 5, nil, true}, // more faulty devices than the fleet
	} {
		got, err := ParseFaults(tc.in, tc.devices)
		if (err != nil) != tc.err {
			t.Errorf("%q: error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %v, want %v", tc.in, got, tc.want)
		}
	}
	all, err := ParseFaults("all=1", len(FaultKinds))
	if err != nil || len(all) != len(FaultKinds) {
		t.Fatalf("all=1: %v, %v", all, err)
	}
}

func TestFleetDeterministic(t *testing.T) {
	a, b, c := testFleet(t, 7), testFleet(t, 7), testFleet(t, 8)
	var la, lb, lc bytes.Buffer
	for _, x := range []struct {
		f *Fleet
		w *bytes.Buffer
	}{{a, &la}, {b, &lb}, {c, &lc}} {
		if err := x.f.WriteLabels(x.w); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(a, b) || !bytes.Equal(la.Bytes(), lb.Bytes()) {
		t.Fatal("the same seed built two different fleets")
	}
	if bytes.Equal(la.Bytes(), lc.Bytes()) {
		t.Fatal("seeds 7 and 8 built the same fleet")
	}
	labels, err := ReadLabels(&la)
	if err != nil || len(labels) != a.Records() {
		t.Fatalf("read %d labels (%v), want %d", len(labels), err, a.Records())
	}
}

func TestFleetLabels(t *testing.T) {
	f := testFleet(t, 3)
	counts := f.KindCounts()
	t.Logf("%d records, faulty per kind %v", f.Records(), counts)
	for _, k := range FaultKinds {
		if counts[k] == 0 {
			t.Errorf("kind %s: no labelled record", k)
		}
	}
	if n := len(f.FaultyDevices()); n != len(FaultKinds) {
		t.Errorf("%d faulty devices, want one per kind (%d)", n, len(FaultKinds))
	}
	isolated := 0
	for _, d := range f.Devices {
		bad := 0
		for _, l := range d.Labels {
			if l.Kind != "" {
				bad++
				if d.Fault != "" && l.Kind != d.Fault {
					t.Errorf("device %s (%s): a record labelled %s", d.IMEI, d.Fault, l.Kind)
				}
			}
		}
		switch {
		case d.Fault == "" && bad == 1:
			isolated++
		case d.Fault == "" && bad > 1:
			t.Errorf("clean device %s: %d faulty records", d.IMEI, bad)
		case d.Fault != "" && bad == 0:
			t.Errorf("device %s (%s): no faulty record", d.IMEI, d.Fault)
		}
	}
	if isolated != 4 {
		t.Errorf("%d clean devices with an isolated fault, want 4", isolated)
	}
}

// TestFleetFaultsDecoded sends every device through the real Teltonika
// decoder and checks that each labelled record shows its fault in the
// decoded signal and the clean ones do not.
func TestFleetFaultsDecoded(t *testing.T) {
	f := testFleet(t, 5)
	codec, _ := CodecFor("teltonika")
	for _, d := range f.Devices {
		sess := newSession(t, "teltonika")
		if _, _, err := decodeAll(t, sess, codec.Hello(d.IMEI, 0)); err != nil {
			t.Fatal(err)
		}
		var stream []byte
		for j := 0; j < len(d.Records); j += 10 {
			stream = codec.Encode(stream, d.IMEI, 0, d.Records[j:min(j+10, len(d.Records))], false)
		}
		sigs, _, err := decodeAll(t, sess, stream)
		if err != nil || len(sigs) != len(d.Records) {
			t.Fatalf("device %s: %d signals, %v", d.IMEI, len(sigs), err)
		}
		for i, s := range sigs {
			l, r := d.Labels[i], d.Records[i]
			if s.TS.UnixMicro() != l.TS || math.Abs(s.Voltage-l.Volt) > 1e-9 {
				t.Fatalf("device %s record %d: ts %v volt %v, labelled %v %v", d.IMEI, i, s.TS.UnixMicro(), s.Voltage, l.TS, l.Volt)
			}
			ign, _ := s.Attrs["ignition"].(bool)
			if ign != r.Engine.Ignition || s.RPM != r.Engine.RPM || math.Abs(s.HDOP-r.Engine.HDOP) > 1e-9 || s.Coolant != r.Engine.Coolant {
				t.Fatalf("device %s record %d: ignition %v rpm %v hdop %v coolant %v, sent %+v", d.IMEI, i, ign, s.RPM, s.HDOP, s.Coolant, *r.Engine)
			}
			checkFault(t, d, i, s, sigs)
		}
	}
}

func checkFault(t *testing.T, d FleetDevice, i int, s signal.Signal, sigs []signal.Signal) {
	t.Helper()
	l := d.Labels[i]
	truth := fleetStart.Add(-time.Hour)
	switch l.Kind {
	case "":
		ok := s.Valid == signal.True && s.RPM >= 0 && s.RPM < 8000 && s.Sats >= 7 && s.HDOP < 2 &&
			s.TS.After(truth) && s.TS.Before(fleetStart.Add(3*time.Hour))
		if !ok {
			t.Errorf("device %s record %d: labelled clean but %+v", d.IMEI, i, s)
		}
	case FaultZeroFix:
		if s.Valid != signal.False || s.Lat != 0 || s.Lon != 0 {
			t.Errorf("zero_fix record %d: %+v", i, s)
		}
	case FaultClockAhead:
		if s.TS.Sub(fleetStart) < 3*time.Hour {
			t.Errorf("clock_ahead record %d at %v", i, s.TS)
		}
	case FaultClockSlow, FaultGPSRollover:
		if s.TS.After(fleetStart.Add(-3*time.Hour + 3*time.Hour)) {
			t.Errorf("%s record %d at %v", l.Kind, i, s.TS)
		}
	case FaultOBDEnvelope:
		if s.RPM <= 10000 {
			t.Errorf("obd_envelope record %d: rpm %v", i, s.RPM)
		}
	case FaultOdoBackwards:
		if s.Odometer >= sigs[i-1].Odometer {
			t.Errorf("odometer_backwards record %d: %v after %v", i, s.Odometer, sigs[i-1].Odometer)
		}
	case FaultFrozenPosition, FaultRepeatedFix:
		p := sigs[i-1]
		if s.Lat != p.Lat || s.Lon != p.Lon || s.Speed < 40 {
			t.Errorf("%s record %d: %v,%v at %v km/h after %v,%v", l.Kind, i, s.Lat, s.Lon, s.Speed, p.Lat, p.Lon)
		}
	case FaultStuckOBD:
		if s.RPM != sigs[i-1].RPM || s.RPM == 0 {
			t.Errorf("stuck_obd record %d: rpm %v after %v", i, s.RPM, sigs[i-1].RPM)
		}
	case FaultRPMIgnitionOff:
		if ign, _ := s.Attrs["ignition"].(bool); ign || s.RPM == 0 {
			t.Errorf("rpm_ignition_off record %d: ignition %v rpm %v", i, ign, s.RPM)
		}
	case FaultSpeedDistance:
		if s.Speed != 0 || haversine(s.Lat, s.Lon, sigs[i-1].Lat, sigs[i-1].Lon) < 0.05 {
			t.Errorf("speed_distance record %d: speed %v", i, s.Speed)
		}
	case FaultAcceleration:
		if s.Speed-sigs[i-1].Speed < 100 {
			t.Errorf("impossible_acceleration record %d: %v after %v", i, s.Speed, sigs[i-1].Speed)
		}
	case FaultSatsValidity:
		if s.Valid != signal.True || !(s.Sats < 3 || s.HDOP > 20) {
			t.Errorf("sats_hdop_validity record %d: valid %v sats %v hdop %v", i, s.Valid, s.Sats, s.HDOP)
		}
	case FaultTeleport, FaultTeleportStretch:
		if haversine(s.Lat, s.Lon, sigs[i-1].Lat, sigs[i-1].Lon) < 50 && l.Kind == FaultTeleport {
			t.Errorf("teleport record %d moved only %.1f km", i, haversine(s.Lat, s.Lon, sigs[i-1].Lat, sigs[i-1].Lon))
		}
	case FaultReportingGap:
		if s.TS.Sub(sigs[i-1].TS) < 10*time.Minute {
			t.Errorf("reporting_gap record %d only %v after the previous", i, s.TS.Sub(sigs[i-1].TS))
		}
	case FaultDupSame:
		if !s.TS.Equal(sigs[i-1].TS) {
			t.Errorf("dup_same record %d at %v, previous %v", i, s.TS, sigs[i-1].TS)
		}
	case FaultDupRestamped:
		if !s.TS.After(sigs[i-1].TS) {
			t.Errorf("dup_restamped record %d not after its predecessor", i)
		}
	}
}

func haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lon2-lon1)*math.Pi/180
	a := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Sqrt(a))
}

// TestFleetSend sends a fleet to a server that decodes with the real
// Teltonika decoder and acks, and checks that every record arrived in send
// order.
func TestFleetSend(t *testing.T) {
	f := testFleet(t, 9)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	got := map[string][]int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sess := newSession(t, "teltonika")
				r := bufio.NewReader(c)
				var buf []byte
				tmp := make([]byte, 4096)
				for {
					n, err := r.Read(tmp)
					if err != nil {
						return
					}
					buf = append(buf, tmp[:n]...)
					for {
						k, err := sess.Frame(buf)
						if err != nil || k == 0 {
							break
						}
						res, err := sess.Decode(buf[:k], time.Now())
						if err != nil {
							return
						}
						mu.Lock()
						for _, s := range res.Signals {
							got[s.DeviceID] = append(got[s.DeviceID], s.TS.UnixMicro())
						}
						mu.Unlock()
						c.Write(res.Ack) //nolint:errcheck
						buf = buf[k:]
					}
				}
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := f.Send(ctx, SendOptions{Target: ln.Addr().String(), Parallel: 8})
	if err != nil {
		t.Fatal(err)
	}
	if int(st.Records) != f.Records() {
		t.Fatalf("%d records acked, fleet has %d", st.Records, f.Records())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, d := range f.Devices {
		if len(got[d.IMEI]) != len(d.Labels) {
			t.Fatalf("device %s: server got %d records, sent %d", d.IMEI, len(got[d.IMEI]), len(d.Labels))
		}
		for i, l := range d.Labels {
			if got[d.IMEI][i] != l.TS {
				t.Fatalf("device %s record %d: server got ts %d, label %d", d.IMEI, i, got[d.IMEI][i], l.TS)
			}
		}
	}
}

// TestFleetEnd: a fleet built to end at a time has no clean record after
// it, and the same content as one built from the derived start.
func TestFleetEnd(t *testing.T) {
	specs, _ := ParseFaults(DefaultFaults, 30)
	end := fleetStart.Add(time.Hour)
	f, err := NewFleet(FleetConfig{Devices: 30, Records: 150, End: end, Faults: specs, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	var latest time.Time
	for _, d := range f.Devices {
		for i, l := range d.Labels {
			ts := time.UnixMicro(l.TS)
			if l.Kind == "" && ts.After(end) {
				t.Fatalf("device %s record %d: clean but at %v, after the end %v", d.IMEI, i, ts, end)
			}
			if l.Kind == "" && ts.After(latest) {
				latest = ts
			}
		}
	}
	if end.Sub(latest) > time.Minute {
		t.Errorf("latest clean record at %v, %v before the end", latest, end.Sub(latest))
	}
}
