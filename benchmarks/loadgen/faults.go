package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Fault kinds of a labelled fleet. Each names what a broken tracker does;
// the records it spoils carry the kind as their label.
const (
	FaultZeroFix         = "zero_fix"     // (0,0), no satellites, for 15 minutes
	FaultClockAhead      = "clock_ahead"  // a stretch stamped 3 h ahead
	FaultClockSlow       = "clock_slow"   // every record stamped 3 h behind
	FaultGPSRollover     = "gps_rollover" // every record 1024 weeks in the past
	FaultOBDEnvelope     = "obd_envelope" // RPM outside what an engine does
	FaultOdoBackwards    = "odometer_backwards"
	FaultTeleport        = "teleport"         // single fixes hundreds of km off the track
	FaultTeleportStretch = "teleport_stretch" // a stretch of consistent fixes displaced 90 km
	FaultDupSame         = "dup_same"         // five twins of each of 40 records, same time
	FaultDupRestamped    = "dup_restamped"    // earlier records re-sent with new times
	FaultFrozenPosition  = "frozen_position"  // the position stops while the speed is > 50 km/h
	FaultReportingGap    = "reporting_gap"    // ten minutes without records (the first after is labelled)
	FaultStuckOBD        = "stuck_obd"        // RPM frozen at one value while the engine runs
	FaultRPMIgnitionOff  = "rpm_ignition_off" // RPM with the ignition off
	FaultSpeedDistance   = "speed_distance"   // reported speed 0 while the fixes move at road speed
	FaultAcceleration    = "impossible_acceleration"
	FaultSatsValidity    = "sats_hdop_validity" // a valid fix with 1–2 satellites, or HDOP 40 with 12
	FaultRepeatedFix     = "repeated_fix"       // the last fix repeated with new times
)

// FaultKinds lists every kind, in report order.
var FaultKinds = []string{
	FaultZeroFix, FaultClockAhead, FaultClockSlow, FaultGPSRollover, FaultOBDEnvelope, FaultOdoBackwards,
	FaultTeleport, FaultTeleportStretch, FaultDupSame, FaultDupRestamped, FaultFrozenPosition,
	FaultReportingGap, FaultStuckOBD, FaultRPMIgnitionOff, FaultSpeedDistance, FaultAcceleration,
	FaultSatsValidity, FaultRepeatedFix,
}

// IsolatedKinds are the faults a clean device shows once, rarely: the
// devices keep counting as clean, the record as faulty.
var IsolatedKinds = []string{FaultZeroFix, FaultTeleport, FaultOBDEnvelope}

// DefaultFaults is the default fault mix: one device per kind.
const DefaultFaults = "all=1"

// FaultSpec is one -faults entry: Devices devices carry Kind.
type FaultSpec struct {
	Kind    string
	Devices int
}

// ParseFaults parses "kind=share,…". A share below 1 is a fraction of the
// fleet (at least one device), from 1 up a device count; "all=N" gives
// every kind N devices; "isolated=N" gives N clean devices one isolated
// fault each (kind "isolated").
func ParseFaults(s string, devices int) ([]FaultSpec, error) {
	var out []FaultSpec
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kind, v, ok := strings.Cut(part, "=")
		if !ok {
			v = "1"
		}
		share, err := strconv.ParseFloat(v, 64)
		if err != nil || share < 0 || math.IsInf(share, 0) || math.IsNaN(share) {
			return nil, fmt.Errorf("parsing faults %q: share %q is not a non-negative number", s, v)
		}
		n := int(math.Round(share))
		if share > 0 && share < 1 {
			n = max(1, int(math.Round(share*float64(devices))))
		}
		kinds := []string{kind}
		switch {
		case kind == "all":
			kinds = FaultKinds
		case kind == "isolated":
		case !knownKind(kind):
			return nil, fmt.Errorf("parsing faults %q: unknown kind %q (have %s, all, isolated)", s, kind, strings.Join(FaultKinds, ", "))
		}
		for _, k := range kinds {
			if seen[k] {
				return nil, fmt.Errorf("parsing faults %q: kind %s given twice", s, k)
			}
			seen[k] = true
			if n > 0 {
				out = append(out, FaultSpec{Kind: k, Devices: n})
			}
		}
	}
	total := 0
	for _, f := range out {
		total += f.Devices
	}
	if total > devices {
		return nil, fmt.Errorf("parsing faults %q: %d faulty devices in a fleet of %d", s, total, devices)
	}
	return out, nil
}

func knownKind(k string) bool {
	for _, f := range FaultKinds {
		if f == k {
			return true
		}
	}
	return false
}

// FleetConfig describes a labelled-fault fleet.
type FleetConfig struct {
	Devices  int
	Records  int           // records per device before faults add or remove some
	Interval time.Duration // device time between records
	Start    time.Time     // device time of the first record (true time)
	// End, when set instead of Start, is the true device time by which
	// every device has sent its last record (a history that ends now):
	// Start is derived from the longest device's span.
	End      time.Time
	Faults   []FaultSpec
	IMEIBase int64
	Seed     uint64
}

// Label is the truth about one record of a labelled fleet.
type Label struct {
	IMEI string `json:"imei"`
	Seq  int    `json:"seq"` // position in the device's send order
	// TS is the device time as sent (Unix microseconds); with Volt it
	// identifies the stored signal (twins share TS but not Volt).
	TS   int64   `json:"ts_us"`
	Volt float64 `json:"volt"`
	// Kind is the fault that spoilt this record, "" for a clean one.
	Kind string `json:"kind"`
	// DeviceFault is the device's fault kind, "" for a clean device
	// (which may still carry an isolated faulty record).
	DeviceFault string `json:"device_fault"`
}

// FleetDevice is one device of a labelled fleet: its records in send order
// and their labels.
type FleetDevice struct {
	IMEI    string
	Fault   string // "" for a clean device
	Records []Record
	Labels  []Label
}

// Fleet is a labelled-fault fleet.
type Fleet struct {
	Devices []FleetDevice
	span    time.Duration // from Start to the latest true device time
}

// Records counts the fleet's records.
func (f *Fleet) Records() int {
	n := 0
	for _, d := range f.Devices {
		n += len(d.Records)
	}
	return n
}

// WriteLabels writes one JSON label per record (JSONL), devices in order.
func (f *Fleet) WriteLabels(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, d := range f.Devices {
		for _, l := range d.Labels {
			if err := enc.Encode(l); err != nil {
				return fmt.Errorf("writing labels: %w", err)
			}
		}
	}
	return nil
}

// ReadLabels reads what WriteLabels wrote.
func ReadLabels(r io.Reader) ([]Label, error) {
	dec := json.NewDecoder(r)
	var out []Label
	for {
		var l Label
		err := dec.Decode(&l)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading labels: %w", err)
		}
		out = append(out, l)
	}
}

// NewFleet builds the labelled fleet: deterministic for a seed. Faulty
// devices are picked at random; each carries one fault kind.
func NewFleet(cfg FleetConfig) (*Fleet, error) {
	if cfg.Devices <= 0 {
		return nil, errors.New("loadgen: a fleet needs at least one device")
	}
	if cfg.Records < 100 {
		return nil, errors.New("loadgen: a labelled fleet needs at least 100 records per device")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.IMEIBase == 0 {
		cfg.IMEIBase = 351800000000000
	}
	if !cfg.End.IsZero() {
		// Build once from End to learn the span, then from the start
		// that makes the span end at End: the content does not depend
		// on the start.
		probe := cfg
		probe.Start, probe.End = cfg.End, time.Time{}
		fl, err := NewFleet(probe)
		if err != nil {
			return nil, err
		}
		cfg.Start, cfg.End = cfg.End.Add(-fl.span), time.Time{}
	}
	if cfg.Start.IsZero() {
		return nil, errors.New("loadgen: a labelled fleet needs a start or an end time")
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xfa17))
	faults := make([]string, cfg.Devices)
	perm := rng.Perm(cfg.Devices)
	next := 0
	for _, f := range cfg.Faults {
		for range f.Devices {
			if next >= len(perm) {
				return nil, fmt.Errorf("loadgen: more faulty devices than the fleet's %d", cfg.Devices)
			}
			faults[perm[next]] = f.Kind
			next++
		}
	}
	fl := &Fleet{}
	for i := range cfg.Devices {
		d := newDrive(cfg, i)
		dev := d.build(faults[i])
		fl.Devices = append(fl.Devices, dev)
		fl.span = max(fl.span, d.clock.Sub(cfg.Start))
	}
	return fl, nil
}

// drive simulates one vehicle of a labelled fleet.
type drive struct {
	cfg  FleetConfig
	rng  *rand.Rand
	imei string

	lat, lon, heading, speed, odo float64
	target                        float64   // speed the driver aims for
	clock                         time.Time // true device time after the last record
	stopFor                       int       // records left standing still
}

func newDrive(cfg FleetConfig, i int) *drive {
	d := &drive{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1)), imei: strconv.FormatInt(cfg.IMEIBase+int64(i), 10)}
	d.lat = 40 + d.rng.Float64()*12
	d.lon = -5 + d.rng.Float64()*25
	d.heading = d.rng.Float64() * 360
	d.odo = 5000 + d.rng.Float64()*150000
	d.speed = 40 + d.rng.Float64()*30
	d.target = d.speed
	return d
}

// step advances the vehicle by dt and returns its true record.
func (d *drive) step(ts time.Time, dt time.Duration) Record {
	sec := dt.Seconds()
	switch {
	case d.stopFor > 0:
		d.stopFor--
		d.speed = math.Max(0, d.speed-8*sec)
	default:
		if d.rng.Float64() < 0.01 {
			d.stopFor = 5 + d.rng.IntN(10) // a traffic light
		}
		if d.rng.Float64() < 0.05 {
			d.target = 35 + d.rng.Float64()*75
		}
		// At most 2 m/s² (7.2 km/h per second) toward the target.
		dv := math.Max(-7.2*sec, math.Min(7.2*sec, d.target-d.speed))
		d.speed = math.Max(0, d.speed+dv*0.5+d.rng.NormFloat64())
	}
	if d.speed > 0 {
		d.heading = math.Mod(d.heading+d.rng.NormFloat64()*4+360, 360)
	}
	km := d.speed * sec / 3600
	d.lat += km / 111.2 * math.Cos(d.heading*math.Pi/180)
	d.lon += km / (111.2 * math.Cos(d.lat*math.Pi/180)) * math.Sin(d.heading*math.Pi/180)
	d.odo += km
	rpm := 0.0
	if d.speed > 0 || d.stopFor > 0 {
		rpm = math.Round(750 + d.speed*24 + d.rng.NormFloat64()*40)
	}
	return Record{
		TS: ts, Lat: round(d.lat, 1e6), Lon: round(d.lon, 1e6), Alt: math.Round(120 + d.rng.Float64()*30),
		Speed: math.Round(d.speed), Heading: math.Round(d.heading), Sats: 7 + d.rng.IntN(7), Odo: round(d.odo, 1e3),
		Volt: round(13.6+d.rng.Float64()*0.6, 1e2),
		Engine: &Engine{
			Ignition: true, RPM: rpm, Coolant: math.Round(86 + d.rng.Float64()*8),
			HDOP: round(0.7+d.rng.Float64()*1.2, 10),
		},
	}
}

type labelled struct {
	r    Record
	kind string
}

// build drives the device through its records and injects its fault.
func (d *drive) build(fault string) FleetDevice {
	n, dt := d.cfg.Records, d.cfg.Interval
	recs := make([]labelled, 0, n+32)
	// Fault stretch: somewhere in the second quarter to third quarter.
	from := n/4 + d.rng.IntN(n/4)
	spots := d.spots(n, 5) // isolated single-record faults
	isolatedAt, isolatedKind := -1, ""
	if fault == "isolated" {
		isolatedAt = n/5 + d.rng.IntN(3*n/5)
		isolatedKind = IsolatedKinds[d.rng.IntN(len(IsolatedKinds))]
	}
	ts := d.cfg.Start.Add(time.Duration(d.rng.IntN(int(dt/time.Millisecond))) * time.Millisecond).Truncate(time.Millisecond)
	var frozen Record
	stuckRPM := 0.0
	for i := 0; i < n; i++ {
		r := d.step(ts, dt)
		ts = ts.Add(dt)
		kind := ""
		in := func(length int) bool { return i >= from && i < from+length }
		switch fault {
		case FaultZeroFix:
			// Fifteen minutes without a fix (gps_broken opens after ten).
			if i >= n/5 && i < n/5+min(int(15*time.Minute/dt), 3*n/5) {
				r.Lat, r.Lon, r.Sats, r.Speed, r.Heading, r.Alt = 0, 0, 0, 0, 0, 0
				r.Engine.HDOP = 99.9
				kind = fault
			}
		case FaultClockAhead:
			if in(40) {
				r.TS = r.TS.Add(3 * time.Hour)
				kind = fault
			}
		case FaultClockSlow:
			r.TS = r.TS.Add(-3 * time.Hour)
			kind = fault
		case FaultGPSRollover:
			r.TS = r.TS.Add(-1024 * 7 * 24 * time.Hour)
			kind = fault
		case FaultOBDEnvelope:
			if spots[i] {
				r.Engine.RPM = 14000 + float64(d.rng.IntN(4000))
				kind = fault
			}
		case FaultOdoBackwards:
			if spots[i] {
				r.Odo = round(r.Odo-50-d.rng.Float64()*100, 1e3)
				kind = fault
			}
		case FaultTeleport:
			if spots[i] {
				r.Lat, r.Lon = d.displace(r, 150+d.rng.Float64()*300)
				kind = fault
			}
		case FaultTeleportStretch:
			if in(30) {
				r.Lat = round(r.Lat+0.8, 1e6) // 89 km north, moving consistently
				kind = fault
			}
		case FaultFrozenPosition:
			if in(30) {
				d.stopFor, d.target = 0, math.Max(d.target, 70)
				d.speed = math.Max(d.speed, 60)
				r.Speed = math.Max(r.Speed, 60)
				if i == from {
					frozen = r
				} else {
					r.Lat, r.Lon = frozen.Lat, frozen.Lon
					kind = fault
				}
			}
		case FaultStuckOBD:
			if in(40) {
				d.stopFor = 0
				d.speed, d.target = math.Max(d.speed, 30), math.Max(d.target, 50)
				if i == from {
					stuckRPM = r.Engine.RPM
				} else {
					r.Engine.RPM = stuckRPM
					kind = fault
				}
			}
		case FaultRPMIgnitionOff:
			if in(20) {
				d.stopFor = 2 // standing still
				d.speed = 0
				r.Speed = 0
				r.Engine.Ignition = false
				r.Engine.RPM = math.Round(1200 + d.rng.Float64()*800)
				kind = fault
			}
		case FaultSpeedDistance:
			if in(30) {
				d.stopFor = 0
				d.speed, d.target = math.Max(d.speed, 50), math.Max(d.target, 70)
				r.Speed = 0
				kind = fault
			}
		case FaultAcceleration:
			if spots[i] && r.Speed < 100 {
				r.Speed = r.Speed + 160 // +160 km/h in one interval, then back
				kind = fault
			}
		case FaultSatsValidity:
			if in(20) {
				if i%2 == 0 {
					r.Sats, r.Engine.HDOP = 1+d.rng.IntN(2), 0.9 // a "valid" fix from one or two satellites
				} else {
					r.Sats, r.Engine.HDOP = 12, 40+float64(d.rng.IntN(20)) // twelve satellites, HDOP 40
				}
				kind = fault
			}
		case FaultRepeatedFix:
			if in(30) {
				d.stopFor = 0
				d.speed = math.Max(d.speed, 40)
				if i == from {
					frozen = r
				} else {
					ts := r.TS
					r = frozen
					e := *frozen.Engine
					r.Engine, r.TS = &e, ts
					kind = fault
				}
			}
		case FaultReportingGap:
			if spots[i] {
				// Ten minutes without a record: the vehicle drives on.
				for range int(10 * time.Minute / dt) {
					d.step(ts, dt)
					ts = ts.Add(dt)
				}
				r = d.step(ts, dt)
				ts = ts.Add(dt)
				kind = fault
			}
		}
		if i == isolatedAt {
			kind = isolatedKind
			switch isolatedKind {
			case FaultZeroFix:
				r.Lat, r.Lon, r.Sats, r.Speed, r.Heading, r.Alt = 0, 0, 0, 0, 0, 0
				r.Engine.HDOP = 99.9
			case FaultTeleport:
				r.Lat, r.Lon = d.displace(r, 200)
			case FaultOBDEnvelope:
				r.Engine.RPM = 15500
			}
		}
		recs = append(recs, labelled{r, kind})
		switch fault {
		case FaultDupSame:
			if in(40) {
				// A storm of twins: same device time, the voltage read again.
				for k := range 5 {
					t := r
					e := *r.Engine
					t.Engine = &e
					t.Volt = round(r.Volt+0.01*float64(k+1), 1e2)
					recs = append(recs, labelled{t, fault})
				}
			}
		case FaultDupRestamped:
			if in(1) {
				// Twenty earlier records re-sent with new device times
				// while the vehicle drives on.
				base := len(recs) - 21
				for k := range 20 {
					c := recs[base+k].r
					e := *c.Engine
					c.Engine = &e
					c.TS = ts
					ts = ts.Add(dt)
					d.step(ts, dt) // time and driving go on
					recs = append(recs, labelled{c, fault})
				}
			}
		}
	}
	d.clock = ts
	dev := FleetDevice{IMEI: d.imei, Fault: fault}
	if fault == "isolated" {
		dev.Fault = ""
	}
	for i, lr := range recs {
		dev.Records = append(dev.Records, lr.r)
		dev.Labels = append(dev.Labels, Label{
			IMEI: d.imei, Seq: i, TS: lr.r.TS.UnixMicro(), Volt: lr.r.Volt, Kind: lr.kind, DeviceFault: dev.Fault,
		})
	}
	return dev
}

// spots picks k record indexes at least 20 apart for isolated faults.
func (d *drive) spots(n, k int) map[int]bool {
	out := map[int]bool{}
	step := n / (k + 1)
	for j := 1; j <= k; j++ {
		out[j*step+d.rng.IntN(step/2)] = true
	}
	return out
}

// displace moves r's position km away in a random direction.
func (d *drive) displace(r Record, km float64) (lat, lon float64) {
	b := d.rng.Float64() * 2 * math.Pi
	lat = r.Lat + km/111.2*math.Cos(b)
	lon = r.Lon + km/(111.2*math.Cos(r.Lat*math.Pi/180))*math.Sin(b)
	return round(lat, 1e6), round(lon, 1e6)
}

// KindCounts counts the labelled faulty records per kind.
func (f *Fleet) KindCounts() map[string]int {
	out := map[string]int{}
	for _, d := range f.Devices {
		for _, l := range d.Labels {
			if l.Kind != "" {
				out[l.Kind]++
			}
		}
	}
	return out
}

// FaultyDevices lists the IMEIs of the devices with a fault kind, sorted.
func (f *Fleet) FaultyDevices() []string {
	var out []string
	for _, d := range f.Devices {
		if d.Fault != "" {
			out = append(out, d.IMEI)
		}
	}
	sort.Strings(out)
	return out
}
