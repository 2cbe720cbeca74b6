package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Share is one protocol's part of the simulated fleet.
type Share struct {
	Protocol string
	Weight   int
}

// ParseMix parses "teltonika=6,gt06=2,jsonl=1" (a bare name weighs 1).
func ParseMix(s string) ([]Share, error) {
	var out []Share
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, hasW := strings.Cut(part, "=")
		weight := 1
		if hasW {
			n, err := strconv.Atoi(w)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("parsing protocol mix %q: weight %q is not a non-negative integer", s, w)
			}
			weight = n
		}
		if _, err := CodecFor(name); err != nil {
			return nil, err
		}
		if weight > 0 {
			out = append(out, Share{Protocol: name, Weight: weight})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("parsing protocol mix %q: no protocol with a positive weight", s)
	}
	return out, nil
}

// Config describes a simulated fleet.
type Config struct {
	// Targets maps each protocol to the server's host:port for it.
	Targets map[string]string
	// Mix splits the devices between protocols by weight.
	Mix []Share
	// Devices is the fleet size.
	Devices int
	// Rate is records per second per device; 0 sends the next frame as
	// soon as the previous one is acked (closed loop). Protocols with
	// one-second device time never exceed one record per second.
	Rate float64
	// PerFrame is records per frame, capped by each protocol's maximum
	// (0: teltonika 10, jsonl 5, others 1).
	PerFrame int
	// BadShare is the share of bad data, split evenly between zero fixes
	// and future timestamps (shares of records) and duplicate resends and
	// corrupted frames (shares of frames).
	BadShare float64
	// AckTimeout: a frame not acked within it is resent on a new connection.
	AckTimeout time.Duration
	// RampUp spreads the devices' first connections over this long.
	RampUp time.Duration
	// Idle devices connect, log in and then stay silent (no goroutine, no
	// buffer on this side), for connection-count tests.
	Idle bool
	// MaxBacklog bounds a device's unacked records (a tracker's flash); the
	// oldest are dropped beyond it and counted.
	MaxBacklog int
	// IMEIBase is the first device's IMEI (15 digits); devices are numbered
	// up from it. 0 picks a random base.
	IMEIBase int64
	// Seed makes the records reproducible (0 = random).
	Seed uint64
	Log  hclog.Logger
}

func (c *Config) defaults() error {
	if c.Devices <= 0 {
		return errors.New("loadgen: need at least one device")
	}
	if len(c.Mix) == 0 {
		return errors.New("loadgen: empty protocol mix")
	}
	for _, s := range c.Mix {
		if _, ok := c.Targets[s.Protocol]; !ok {
			return fmt.Errorf("loadgen: no target address for protocol %s", s.Protocol)
		}
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 30 * time.Second
	}
	if c.MaxBacklog <= 0 {
		c.MaxBacklog = 100000
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.IMEIBase == 0 {
		c.IMEIBase = 350000000000000 + rand.Int64N(9000)*100000
	}
	if c.Log == nil {
		c.Log = hclog.NewNullLogger()
	}
	return nil
}

// DefaultPerFrame is the records per frame a protocol's device sends by
// default: Teltonika trackers batch, the others mostly send one.
func DefaultPerFrame(protocol string) int {
	switch protocol {
	case "teltonika":
		return 10
	case "jsonl":
		return 5
	default:
		return 1
	}
}

// Counters are the generator's totals.
type Counters struct {
	Devices      int    `json:"devices"`
	Connected    int64  `json:"connected"`
	Connects     uint64 `json:"connects"`
	ConnectFails uint64 `json:"connect_failures"`
	Frames       uint64 `json:"frames_acked"`
	Acked        uint64 `json:"records_acked"`
	Resends      uint64 `json:"frames_resent"`  // frames sent again after a timeout or reconnect
	Timeouts     uint64 `json:"ack_timeouts"`   // acks not received in AckTimeout
	Refused      uint64 `json:"frames_refused"` // connection closed or a non-ack reply instead of an ack
	ZeroFixes    uint64 `json:"bad_zero_fixes"`
	Future       uint64 `json:"bad_future_timestamps"`
	Duplicates   uint64 `json:"bad_duplicate_frames"`
	Corrupted    uint64 `json:"bad_corrupted_frames"`
	CorruptAcked uint64 `json:"corrupted_frames_acked"` // should stay 0: the server acked a damaged frame
	Dropped      uint64 `json:"records_dropped_backlog_full"`
	Backlog      int64  `json:"records_unacked"`
}

// Generator runs a simulated fleet.
type Generator struct {
	cfg     Config
	devices []*device

	connected                                        atomic.Int64
	connects, connectFails, frames, acked, resends   atomic.Uint64
	timeouts, refused, zero, future, dups, corrupted atomic.Uint64
	corruptAcked, dropped                            atomic.Uint64
	backlog                                          atomic.Int64

	lat   lockedLatency // since the last Sample
	mu    sync.Mutex
	total Latency
	last  uint64

	idleMu sync.Mutex
	idle   []net.Conn
}

// New prepares a fleet; Run drives it.
func New(cfg Config) (*Generator, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	g := &Generator{cfg: cfg}
	weight := 0
	for _, s := range cfg.Mix {
		weight += s.Weight
	}
	// Deal protocols round-robin by weight so every prefix of the fleet
	// has the mix.
	deal := make([]string, 0, weight)
	for _, s := range cfg.Mix {
		for range s.Weight {
			deal = append(deal, s.Protocol)
		}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	perm := rng.Perm(len(deal))
	for i := range cfg.Devices {
		proto := deal[perm[i%len(deal)]]
		codec, _ := CodecFor(proto)
		per := cfg.PerFrame
		if per <= 0 {
			per = DefaultPerFrame(proto)
		}
		per = min(per, codec.MaxPerFrame())
		rate := cfg.Rate
		if maxRate := float64(time.Second) / float64(codec.Resolution()); rate == 0 && maxRate <= 1 || rate > maxRate {
			rate = maxRate
		}
		d := &device{
			g: g, codec: codec, target: cfg.Targets[proto],
			imei:     strconv.FormatInt(cfg.IMEIBase+int64(i), 10),
			perFrame: per, rate: rate,
			rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
		}
		d.lat = 35 + d.rng.Float64()*25
		d.lon = -10 + d.rng.Float64()*35
		d.heading = d.rng.Float64() * 360
		d.odo = d.rng.Float64() * 200000
		g.devices = append(g.devices, d)
	}
	return g, nil
}

// Run drives the fleet until ctx ends, then lets each device wait for the
// ack of the frame it has in flight (up to AckTimeout) and returns. Idle
// fleets stay connected until ctx ends.
func (g *Generator) Run(ctx context.Context) {
	hard, cancelHard := context.WithCancel(context.Background())
	defer cancelHard()
	stopHard := context.AfterFunc(ctx, func() {
		t := time.NewTimer(g.cfg.AckTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelHard()
		case <-hard.Done():
		}
	})
	defer stopHard()
	var wg sync.WaitGroup
	start := time.Now()
	for i, d := range g.devices {
		delay := time.Duration(0)
		if g.cfg.RampUp > 0 {
			delay = time.Duration(float64(g.cfg.RampUp) * float64(i) / float64(len(g.devices)))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if delay > 0 && !sleepCtx(ctx, time.Until(start.Add(delay))) {
				return
			}
			if g.cfg.Idle {
				d.runIdle(ctx)
				return
			}
			d.run(ctx, hard)
		}()
	}
	wg.Wait()
	if g.cfg.Idle {
		<-ctx.Done()
		g.idleMu.Lock()
		for _, c := range g.idle {
			c.Close()
		}
		g.idle = nil
		g.idleMu.Unlock()
		g.connected.Store(0)
	}
}

// Burst gives every device n more records at once, timestamped in the
// past (as after a coverage gap), which they send as fast as acks allow.
func (g *Generator) Burst(n int) {
	for _, d := range g.devices {
		d.burst.Add(int64(n))
	}
}

// Sample is what happened since the previous Sample.
type Sample struct {
	Acked   uint64  // records acked since the previous sample
	Latency Latency // ack latencies of frames acked since the previous sample
}

// Sample returns the records acked and the ack latencies observed since the
// previous call.
func (g *Generator) Sample() Sample {
	h := g.lat.take()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total.Merge(&h)
	now := g.acked.Load()
	s := Sample{Acked: now - g.last, Latency: h}
	g.last = now
	return s
}

// TotalLatency is every ack latency observed so far (call Sample first to
// include the latest).
func (g *Generator) TotalLatency() Latency {
	h := g.lat.take()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total.Merge(&h)
	return g.total
}

// Counters returns the totals so far.
func (g *Generator) Counters() Counters {
	return Counters{
		Devices: len(g.devices), Connected: g.connected.Load(), Connects: g.connects.Load(),
		ConnectFails: g.connectFails.Load(), Frames: g.frames.Load(), Acked: g.acked.Load(),
		Resends: g.resends.Load(), Timeouts: g.timeouts.Load(), Refused: g.refused.Load(),
		ZeroFixes: g.zero.Load(), Future: g.future.Load(), Duplicates: g.dups.Load(),
		Corrupted: g.corrupted.Load(), CorruptAcked: g.corruptAcked.Load(), Dropped: g.dropped.Load(),
		Backlog: g.backlog.Load(),
	}
}

// Ledger returns, per device IMEI, the device times (Unix microseconds,
// ascending) of every record the server acknowledged. Call it after Run.
func (g *Generator) Ledger() map[string][]int64 {
	out := make(map[string][]int64, len(g.devices))
	for _, d := range g.devices {
		ts := append([]int64(nil), d.ledger...)
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		out[d.imei] = ts
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// device is one simulated tracker.
type device struct {
	g        *Generator
	codec    Codec
	target   string
	imei     string
	perFrame int
	rate     float64
	rng      *rand.Rand
	burst    atomic.Int64

	conn   net.Conn
	r      *bufio.Reader
	serial uint16

	// movement
	lat, lon, heading, speed, odo float64

	lastTS     time.Time // last normal device time
	pastTS     time.Time // next backlog (burst) device time
	pending    []Record  // generated, not acked
	generated  int64     // records generated at the configured rate
	started    time.Time
	lastFrame  []byte // the last acked frame, for duplicate resends
	lastSerial uint16
	ledger     []int64
	buf        []byte
}

func (d *device) share(part float64) bool {
	return d.g.cfg.BadShare > 0 && d.rng.Float64() < d.g.cfg.BadShare*part
}

// next makes the device's next live record.
func (d *device) next(now time.Time) Record {
	res := d.codec.Resolution()
	ts := now.Truncate(res)
	if !ts.After(d.lastTS) {
		ts = d.lastTS.Add(res)
	}
	d.lastTS = ts
	return d.record(ts, true)
}

// record makes a record at device time ts, moving the vehicle; bad data is
// mixed in when bad is set.
func (d *device) record(ts time.Time, bad bool) Record {
	// Drive: speed changes slowly, heading drifts.
	d.speed = math.Max(0, math.Min(130, d.speed+d.rng.NormFloat64()*3))
	d.heading = math.Mod(d.heading+d.rng.NormFloat64()*5+360, 360)
	step := d.speed / 3600 // km in one second
	d.lat += step / 111 * math.Cos(d.heading*math.Pi/180)
	d.lon += step / 111 * math.Sin(d.heading*math.Pi/180)
	d.odo += step
	r := Record{
		TS: ts, Lat: round(d.lat, 1e6), Lon: round(d.lon, 1e6), Alt: math.Round(100 + d.rng.Float64()*50),
		Speed: math.Round(d.speed), Heading: math.Round(d.heading), Sats: 6 + d.rng.IntN(8),
		Odo: round(d.odo, 1e3), Volt: round(12.4+d.rng.Float64()*2, 1e2),
	}
	switch {
	case !bad:
	case d.share(0.25):
		r.Lat, r.Lon, r.Sats, r.Speed = 0, 0, 0, 0
		d.g.zero.Add(1)
	case d.share(0.25 / 0.75): // of the remaining three quarters
		r.TS = r.TS.Add(24 * time.Hour)
		d.g.future.Add(1)
	}
	return r
}

func round(v, scale float64) float64 { return math.Round(v*scale) / scale }

func (d *device) push(r Record) {
	if len(d.pending) >= d.g.cfg.MaxBacklog {
		d.pending = d.pending[1:]
		d.g.dropped.Add(1)
		d.g.backlog.Add(-1)
	}
	d.pending = append(d.pending, r)
	d.g.backlog.Add(1)
}

// fill generates the records due by now; it returns when the next one is
// due (zero when closed loop).
func (d *device) fill(now time.Time) time.Duration {
	if n := d.burst.Swap(0); n > 0 {
		if d.pastTS.IsZero() {
			d.pastTS = d.started.Add(-2 * time.Hour).Truncate(d.codec.Resolution())
		}
		for range n {
			d.push(d.record(d.pastTS, false))
			d.pastTS = d.pastTS.Add(d.codec.Resolution())
		}
	}
	if d.rate <= 0 {
		for len(d.pending) < d.perFrame {
			d.push(d.next(now))
		}
		return 0
	}
	due := int64(now.Sub(d.started).Seconds() * d.rate)
	for d.generated < due {
		d.generated++
		d.push(d.next(now))
	}
	next := d.started.Add(time.Duration(float64(d.generated+1) / d.rate * float64(time.Second)))
	return next.Sub(now)
}

func (d *device) close() {
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
		d.g.connected.Add(-1)
	}
}

func (d *device) connect(ctx context.Context) error {
	dl := net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1}
	c, err := dl.DialContext(ctx, "tcp", d.target)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", d.target, err)
	}
	d.g.connects.Add(1)
	d.g.connected.Add(1)
	d.conn = c
	if d.r == nil {
		d.r = bufio.NewReaderSize(c, 512)
	} else {
		d.r.Reset(c)
	}
	if hello := d.codec.Hello(d.imei, d.serial); hello != nil {
		d.serial++
		c.SetDeadline(time.Now().Add(d.g.cfg.AckTimeout)) //nolint:errcheck
		if _, err := c.Write(hello); err != nil {
			d.close()
			return fmt.Errorf("writing login: %w", err)
		}
		if err := d.codec.ReadHelloAck(d.r); err != nil {
			d.close()
			return fmt.Errorf("logging in: %w", err)
		}
	}
	return nil
}

// runIdle connects and logs in once, then leaves the connection open with
// no goroutine or buffer attached.
func (d *device) runIdle(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if err := d.connect(ctx); err != nil {
			d.g.connectFails.Add(1)
			d.g.cfg.Log.Debug("idle device connect", "imei", d.imei, "error", err)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		d.conn.SetDeadline(time.Time{}) //nolint:errcheck
		d.g.idleMu.Lock()
		d.g.idle = append(d.g.idle, d.conn)
		d.g.idleMu.Unlock()
		d.conn, d.r = nil, nil
		return
	}
}

// run is the device's life: generate, send, wait for the ack, resend
// after failures. ctx ending stops new frames; hard ending aborts.
func (d *device) run(ctx, hard context.Context) {
	d.started = time.Now()
	if d.rate > 0 {
		// Start at a random phase of the frame interval (as if part of a
		// frame were already recorded), so a rate-limited fleet sends
		// evenly from the first second.
		phase := time.Duration(d.rng.Float64() * float64(d.perFrame) / d.rate * float64(time.Second))
		d.started = d.started.Add(-phase)
	}
	d.lastTS = d.started.Add(-time.Duration(d.rng.IntN(1000)) * time.Millisecond).Truncate(d.codec.Resolution())
	stop := context.AfterFunc(hard, func() {
		// Unblocks a read in flight; the loop sees hard done.
		if c := d.conn; c != nil {
			c.SetDeadline(time.Now()) //nolint:errcheck
		}
	})
	defer stop()
	defer d.close()
	backoff := 50 * time.Millisecond
	resend := false
	for ctx.Err() == nil && hard.Err() == nil {
		now := time.Now()
		wait := d.fill(now)
		if d.rate > 0 && !resend && d.burst.Load() == 0 && len(d.pending) < d.perFrame {
			// Like a tracker: send when a full frame's worth is recorded.
			target := d.generated + int64(d.perFrame-len(d.pending))
			due := d.started.Add(time.Duration(float64(target) / d.rate * float64(time.Second)))
			if !sleepCtx(ctx, due.Sub(now)) {
				return
			}
			continue
		}
		if len(d.pending) == 0 {
			if !sleepCtx(ctx, wait) {
				return
			}
			continue
		}
		if d.conn == nil {
			if err := d.connect(ctx); err != nil {
				d.g.connectFails.Add(1)
				d.g.cfg.Log.Debug("device connect", "imei", d.imei, "error", err)
				if !sleepCtx(ctx, backoff+time.Duration(d.rng.Int64N(int64(backoff)))) {
					return
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
		}
		n := min(len(d.pending), d.perFrame)
		recs := d.pending[:n]
		if d.share(0.25) {
			d.g.corrupted.Add(1)
			if d.exchange(d.codec.Encode(d.buf[:0], d.imei, d.serial, recs, true), d.serial, n) == nil {
				// A damaged frame must not be acked; keep the records and
				// send them properly.
				d.g.corruptAcked.Add(1)
			}
			d.serial++
			d.close()
			resend = true
			continue
		}
		d.buf = d.codec.Encode(d.buf[:0], d.imei, d.serial, recs, false)
		if resend {
			d.g.resends.Add(1)
		}
		serial := d.serial
		err := d.exchange(d.buf, serial, n)
		d.serial++
		if err != nil && !errors.Is(err, errServerClosing) {
			d.close()
			resend = true
			if hard.Err() != nil {
				return
			}
			sleepCtx(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		resend = false
		for _, r := range recs {
			d.ledger = append(d.ledger, r.TS.UnixMicro())
		}
		d.g.frames.Add(1)
		d.g.acked.Add(uint64(n))
		d.g.backlog.Add(-int64(n))
		d.lastFrame, d.lastSerial = append(d.lastFrame[:0], d.buf...), serial
		d.pending = d.pending[n:]
		if len(d.pending) == 0 {
			d.pending = d.pending[:0:0]
		}
		if errors.Is(err, errServerClosing) {
			d.close()
			continue
		}
		if d.share(0.25) && len(d.lastFrame) > 0 {
			// Resend the frame just acked, as a device does when the ack
			// got lost: the server must store its records only once.
			d.g.dups.Add(1)
			if err := d.exchange(d.lastFrame, d.lastSerial, n); err != nil {
				d.close()
			}
		}
	}
}

// exchange writes one frame and reads its ack, timing it.
func (d *device) exchange(frame []byte, serial uint16, n int) error {
	start := time.Now()
	d.conn.SetDeadline(start.Add(d.g.cfg.AckTimeout)) //nolint:errcheck
	if _, err := d.conn.Write(frame); err != nil {
		d.g.refused.Add(1)
		return fmt.Errorf("writing frame: %w", err)
	}
	err := d.codec.ReadAck(d.r, serial, n)
	if err != nil && !errors.Is(err, errServerClosing) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			d.g.timeouts.Add(1)
		} else {
			d.g.refused.Add(1)
		}
		return err
	}
	d.g.lat.observe(time.Since(start))
	return err
}
