// Package freematics decodes the text protocol of Freematics ONE+ telematics
// units (the "Freematics Hub" protocol, firmware telelogger) over UDP and
// TCP.
//
// A message is `HEADER#BODY*CS`: HEADER is the device id, or (four hex
// digits or fewer) the feed id the server assigned at login; BODY is a list
// of comma-separated items; CS is the sum of every byte before '*' modulo
// 256 in hex. Event messages carry `EV=n` among `KEY=value` items; data
// messages carry `hexkey:value` (or `hexkey=value`) items, where key 0 (the
// device's millisecond tick) starts each record. See README.md for the
// full mapping.
package freematics

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/obd2"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id.
const Name = "freematics"

// Event numbers of the Freematics Hub protocol.
const (
	EventLogin     = 1
	EventLogout    = 2
	EventSync      = 3
	EventReconnect = 4
	EventCommand   = 5
	EventAck       = 6
	EventPing      = 7
)

// SyncInterval is how often a data message is answered with a sync event,
// as the Freematics Hub server does (SYNC_INTERVAL, 15 s).
const SyncInterval = 15 * time.Second

// MaxDeviceID bounds a device id (message header, ID= or VIN=): Freematics
// ids are a few characters (the firmware's device id, a VIN of 17), and the
// store caps ids at 128 bytes. A longer id is ErrMalformed.
const MaxDeviceID = 128

// Decoder is the Freematics decoder. Its zero value is ready to use. It
// keeps the feed ids it assigned at login, shared by all sessions, so that a
// device whose UDP source port changes keeps being recognised by feed id
// (bounded: see feedTable), and the times it gave records without a device
// time, so that a resend gets the same key (plugins.ServerTimes).
type Decoder struct {
	feeds feedTable
	times plugins.ServerTimes
}

var _ plugins.Decoder = (*Decoder)(nil)

func init() { plugins.Register(&Decoder{}) }

// Info describes the decoder.
func (*Decoder) Info() plugins.Info {
	return plugins.Info{
		Name:        Name,
		Transports:  []plugins.Transport{plugins.UDP, plugins.TCP},
		DefaultPort: 5170,
		Description: "Freematics ONE+ (Freematics Hub text protocol: DEVICE#key:value,...*CS)",
		Options:     []plugins.Option{optServerKey},
	}
}

// optServerKey is the key every login must carry (see NewSession).
var optServerKey = plugins.StringOption{
	Name: "server_key", MaxLen: 128,
	Doc: "when set, the key every event must carry (`SK=`), as on a Freematics Hub started with a server key",
}

// NewSession starts a session for one UDP source or TCP connection.
// Listener option server_key, when set, is the key a login must carry
// (SK=...), as on a Freematics Hub server started with a server key.
func (d *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 64 << 10
	}
	return &Session{dec: d, cfg: cfg, serverKey: optServerKey.Get(cfg.Options), source: sourceOf(cfg.RemoteAddr)}
}

// Session is one device's state: its id and feed id, the datagram count
// reported in replies, and the offset between the device's millisecond tick
// and UTC learned from GPS time.
type Session struct {
	dec       *Decoder
	cfg       plugins.SessionConfig
	serverKey string
	source    string // the remote IP address

	dev string
	// authed: with a server key, dev was identified by an event that
	// carried the key (or by a feed id such an event was given); data for
	// it is accepted, data for any other device is not.
	authed   bool
	feed     uint16
	received int
	lastSync time.Time
	// tickBase is UTC minus the device tick, known after a record with GPS
	// date and time or an event with TS= (then from the receive time).
	tickBase    time.Time
	hasTickBase bool
	baseTick    uint64 // the tick tickBase was learned at
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
	_ plugins.EOFFramer        = (*Session)(nil)
)

// DeviceID is the device identified so far.
func (s *Session) DeviceID() string { return s.dev }

// Frame frames TCP input: one message per line, ended by LF (CR LF
// accepted). The line terminator is part of the frame.
func (s *Session) Frame(buf []byte) (int, error) {
	i := bytes.IndexByte(buf, '\n')
	if i < 0 {
		if len(buf) >= s.cfg.MaxFrame {
			return 0, fmt.Errorf("framing freematics line: %w: no line end in %d bytes", plugins.ErrTooLarge, len(buf))
		}
		return 0, nil
	}
	if i+1 > s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing freematics line: %w: %d bytes", plugins.ErrTooLarge, i+1)
	}
	return i + 1, nil
}

// FrameAtEOF frames the last message of an input that ends without a
// line end (plugins.EOFFramer): the rest is the message. Over MaxFrame it
// is ErrTooLarge.
func (s *Session) FrameAtEOF(buf []byte) (int, error) {
	if len(buf) > s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing freematics line: %w: %d bytes without a line end", plugins.ErrTooLarge, len(buf))
	}
	return len(buf), nil
}

// Checksum is the Freematics checksum: the sum of the bytes modulo 256.
func Checksum(b []byte) byte {
	var sum byte
	for _, c := range b {
		sum += c
	}
	return sum
}

// AppendChecksum appends "*CS" (uppercase hex, no padding, as the firmware
// and the Hub server write it) to msg.
func AppendChecksum(msg []byte) []byte {
	return fmt.Appendf(msg, "*%X", Checksum(msg))
}

// split checks the checksum and returns header and body.
func split(frame []byte) (header, body string, err error) {
	frame = bytes.TrimRight(frame, "\r\n\x00 ")
	star := bytes.LastIndexByte(frame, '*')
	if star < 0 {
		return "", "", fmt.Errorf("%w: no checksum", plugins.ErrMalformed)
	}
	cs := frame[star+1:]
	if len(cs) == 0 || len(cs) > 2 {
		return "", "", fmt.Errorf("%w: checksum %q is not one or two hex digits", plugins.ErrMalformed, cs)
	}
	want, err := strconv.ParseUint(string(cs), 16, 8)
	if err != nil {
		return "", "", fmt.Errorf("%w: checksum %q is not hex", plugins.ErrMalformed, cs)
	}
	if got := Checksum(frame[:star]); got != byte(want) {
		return "", "", fmt.Errorf("%w: computed %X, frame says %s", plugins.ErrChecksum, got, cs)
	}
	msg := frame[:star]
	hash := bytes.IndexByte(msg, '#')
	if hash <= 0 {
		return "", "", fmt.Errorf("%w: no HEADER# prefix", plugins.ErrMalformed)
	}
	return string(msg[:hash]), string(msg[hash+1:]), nil
}

// Decode decodes one datagram (UDP) or line (TCP).
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) > s.cfg.MaxFrame {
		return plugins.Result{DeviceID: s.dev}, fmt.Errorf("decoding freematics message: %w: %d bytes, cap %d", plugins.ErrTooLarge, len(frame), s.cfg.MaxFrame)
	}
	header, body, err := split(frame)
	if err != nil {
		return plugins.Result{DeviceID: s.dev}, fmt.Errorf("decoding freematics message: %w", err)
	}
	s.received++
	if isEvent(body) {
		res, err := s.event(header, body, frame, recv)
		if err != nil {
			return plugins.Result{DeviceID: s.dev}, fmt.Errorf("decoding freematics event: %w", err)
		}
		return res, nil
	}
	if err := s.identify(header, false); err != nil {
		return plugins.Result{DeviceID: s.dev}, fmt.Errorf("decoding freematics data: %w", err)
	}
	sigs, err := s.data(body, frame, recv)
	if err != nil {
		return plugins.Result{DeviceID: s.dev}, fmt.Errorf("decoding freematics data from %s: %w", s.dev, err)
	}
	res := plugins.Result{Signals: sigs, DeviceID: s.dev}
	// The Hub answers data only with a periodic sync event; the device
	// keeps its connection alive on it.
	if s.lastSync.IsZero() || recv.Sub(s.lastSync) >= SyncInterval {
		s.lastSync = recv
		res.Ack = s.reply(EventSync, recv)
	}
	return res, nil
}

func isEvent(body string) bool {
	for item := range strings.SplitSeq(body, ",") {
		if strings.HasPrefix(item, "EV=") {
			return true
		}
	}
	return false
}

// identify resolves the header of a message to a device. keyed says the
// message itself carried the listener's server key (an event with SK=);
// on a listener with a key, a message that did not is accepted only for a
// device a keyed event identified.
func (s *Session) identify(header string, keyed bool) error {
	if len(header) > 4 {
		if err := s.setDevice(header, keyed); err != nil {
			return err
		}
		return s.checkAuthed()
	}
	id, err := strconv.ParseUint(header, 16, 16)
	if err != nil {
		return fmt.Errorf("%w: header %q is neither a device id nor a hex feed id", plugins.ErrMalformed, header)
	}
	if s.dev != "" && uint16(id) == s.feed {
		if keyed {
			s.authed = true
		}
		return s.checkAuthed()
	}
	// A feed id this server assigned at a login from this address (with
	// this listener's key) names its device, whatever UDP port it comes
	// from; any other id belongs to the session's device.
	if dev, ok := s.dec.feeds.lookup(uint16(id), s.source, s.serverKey); ok {
		return s.setDevice(dev, true)
	}
	if s.dev != "" {
		if keyed {
			s.authed = true
		}
		return s.checkAuthed()
	}
	return fmt.Errorf("%w: feed id %X was not assigned by a login from this address", plugins.ErrNoDevice, id)
}

// checkAuthed refuses a message for the session's device when the listener
// has a server key and no event carrying it identified the device.
func (s *Session) checkAuthed() error {
	if s.serverKey != "" && !s.authed {
		return fmt.Errorf("%w: %s: no event with the server key identified this device", plugins.ErrUnauthorized, s.dev)
	}
	return nil
}

// setDevice makes dev the session's device. keyed says the listener's
// server key vouches for it (an event carried the key, or a feed id given
// to such an event named it).
func (s *Session) setDevice(dev string, keyed bool) error {
	if len(dev) > MaxDeviceID {
		return fmt.Errorf("%w: device id of %d bytes, at most %d", plugins.ErrMalformed, len(dev), MaxDeviceID)
	}
	if dev == s.dev {
		if keyed && !s.authed {
			s.authed = true
			// The feed's login is now keyed: record it so that other
			// sessions of this device resolve its feed id.
			if _, err := s.dec.feeds.assign(dev, s.source, s.serverKey); err != nil {
				return err
			}
		}
		return nil
	}
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(dev) {
		return fmt.Errorf("%w: %s", plugins.ErrUnauthorized, dev)
	}
	key := ""
	if keyed {
		key = s.serverKey
	}
	feed, err := s.dec.feeds.assign(dev, s.source, key)
	if err != nil {
		return err
	}
	s.dev, s.feed, s.authed = dev, feed, keyed
	s.hasTickBase = false
	return nil
}

// reply builds a server message "FEED#EV=n,RX=count,TM=unix*CS", ended
// by LF on TCP where messages are lines.
func (s *Session) reply(ev int, recv time.Time) []byte {
	msg := AppendChecksum(fmt.Appendf(nil, "%X#EV=%d,RX=%d,TM=%d", s.feed, ev, s.received, recv.Unix()))
	if s.cfg.Transport == plugins.TCP {
		msg = append(msg, '\n')
	}
	return msg
}

// eventKeys are the keys of the event handshake itself; any other key makes
// the event a record (it carries data such as VIN or signal strength).
var eventKeys = map[string]bool{"EV": true, "TS": true, "ID": true, "SK": true, "TK": true}

func (s *Session) event(header, body string, frame []byte, recv time.Time) (plugins.Result, error) {
	kv := map[string]string{}
	var order []string
	for item := range strings.SplitSeq(body, ",") {
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return plugins.Result{}, fmt.Errorf("%w: event item %q is not KEY=value", plugins.ErrMalformed, item)
		}
		if _, dup := kv[k]; !dup {
			order = append(order, k)
		}
		kv[k] = v
	}
	ev, err := strconv.Atoi(kv["EV"])
	if err != nil || ev <= 0 {
		return plugins.Result{}, fmt.Errorf("%w: event number %q", plugins.ErrMalformed, kv["EV"])
	}
	var tick uint64
	hasTick := false
	if v, ok := kv["TS"]; ok && v != "" {
		if tick, err = strconv.ParseUint(v, 10, 32); err != nil {
			return plugins.Result{}, fmt.Errorf("%w: event TS %q is not a millisecond tick", plugins.ErrMalformed, v)
		}
		hasTick = true
	}
	dev := kv["ID"]
	if dev == "" {
		dev = kv["VIN"]
	}
	// Every event the firmware sends carries the server key it was built
	// with (SK=), not only the login: check it on each one.
	keyed := false
	if s.serverKey != "" {
		if subtle.ConstantTimeCompare([]byte(kv["SK"]), []byte(s.serverKey)) != 1 {
			who := dev
			if who == "" {
				who = s.dev
			}
			return plugins.Result{DeviceID: who, Close: true}, fmt.Errorf("%w: event %d from %q: wrong or missing server key", plugins.ErrUnauthorized, ev, truncate(who))
		}
		keyed = true
	}
	if dev == "" {
		if err := s.identify(header, keyed); err != nil {
			return plugins.Result{}, err
		}
	} else if err := s.setDevice(dev, keyed); err != nil {
		return plugins.Result{}, err
	}
	// A login follows a reboot, which restarts the tick: learn the tick
	// base afresh from it; other events only fill a missing base.
	if hasTick && (ev == EventLogin || !s.hasTickBase) {
		s.learnTickBase(recv, tick, false)
	}
	res := plugins.Result{DeviceID: s.dev}
	if ev != EventAck {
		res.Ack = s.reply(ev, recv)
	}
	if ev == EventLogin || ev == EventSync {
		s.lastSync = recv
	}
	// An event that carries data (VIN, signal strength, a command result)
	// is kept as a record at the receive time: it has no device time.
	var extra []string
	for _, k := range order {
		if !eventKeys[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return res, nil
	}
	sig := signal.New(s.dev, s.serverTime(frame, recv.UTC().Truncate(time.Second)))
	sig.Recv = recv
	sig.Protocol = Name
	sig.Frame = append([]byte(nil), frame...)
	sig.SetAttr("event", int64(ev))
	for _, k := range extra {
		v := kv[k]
		switch k {
		case "VIN":
			sig.SetAttr("vin", v)
		case "SSI":
			if _, err := parseFloat(v); err != nil {
				return plugins.Result{}, fmt.Errorf("%w: event SSI (signal strength) %q is not a number", plugins.ErrMalformed, v)
			}
			setNumberAttr(&sig, "rssi", v)
		case "MSG":
			sig.SetAttr("result", v)
		default:
			setNumberAttr(&sig, "ev_"+strings.ToLower(k), v)
		}
	}
	res.Signals = []signal.Signal{sig}
	return res, nil
}

// setNumberAttr stores v as an integer or float when it parses, else as
// the string.
func setNumberAttr(sig *signal.Signal, name, v string) {
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		sig.SetAttr(name, i)
		return
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		sig.SetAttr(name, f)
		return
	}
	sig.SetAttr(name, v)
}

// record is one data record while it is being parsed.
type record struct {
	sig     signal.Signal
	tick    uint64
	hasTick bool
	date    string // ddmmyy
	clock   string // hhmmsscc
	// obd holds the record's OBD values, applied after its other fields so
	// that GPS speed and battery voltage keep the canonical fields and the
	// OBD readings go to attrs whatever the order in the message.
	obd []obd2.Value
}

// Data keys of the Freematics firmware (non-OBD "custom PIDs").
const (
	keyTick        = 0x0
	keyLat         = 0xA
	keyLon         = 0xB
	keyAlt         = 0xC
	keySpeed       = 0xD
	keyHeading     = 0xE
	keySats        = 0xF
	keyTime        = 0x10
	keyDate        = 0x11
	keyHDOP        = 0x12
	keyAcc         = 0x20
	keyGyro        = 0x21
	keyCompass     = 0x22
	keyMEMSTemp    = 0x23
	keyBattery     = 0x24
	keyOrientation = 0x25
	keyTrip        = 0x30
	keyDataSize    = 0x80
	keyCSQ         = 0x81
	keyDeviceTemp  = 0x82
	keyHall        = 0x83
	keyTransport   = 0x84
	keyOBDBase     = 0x100
)

func (s *Session) data(body string, frame []byte, recv time.Time) ([]signal.Signal, error) {
	var recs []*record
	var cur *record
	for item := range strings.SplitSeq(body, ",") {
		if item == "" {
			continue
		}
		i := strings.IndexAny(item, ":=")
		if i <= 0 {
			return nil, fmt.Errorf("%w: item %q is not key:value", plugins.ErrMalformed, item)
		}
		key, err := strconv.ParseUint(item[:i], 16, 16)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q is not hex", plugins.ErrMalformed, item[:i])
		}
		val := item[i+1:]
		if key == keyTick || cur == nil {
			cur = &record{sig: signal.New(s.dev, time.Time{})}
			recs = append(recs, cur)
		}
		if err := cur.set(uint16(key), val); err != nil {
			return nil, fmt.Errorf("%w: item %q: %v", plugins.ErrMalformed, item, err)
		}
	}
	if len(recs) == 0 {
		return nil, nil
	}
	// Device time: GPS date and time where a record has them; otherwise the
	// device tick against the newest known tick base (from GPS time in this
	// or an earlier message, or from the login); otherwise the receive time,
	// earlier records offset by their tick difference.
	var lastTick uint64
	for _, r := range recs {
		if r.hasTick && r.tick > lastTick {
			lastTick = r.tick
		}
		ts, ok := r.gpsTime()
		switch {
		case ok:
			r.sig.TS = ts
			if r.hasTick {
				s.learnTickBase(ts, r.tick, true)
			}
		case r.date != "" && r.clock != "":
			return nil, fmt.Errorf("%w: GPS date %s and time %s make no time", plugins.ErrMalformed, r.date, r.clock)
		}
	}
	frameCopy := append([]byte(nil), frame...)
	out := make([]signal.Signal, 0, len(recs))
	// Records timed from the receive time: from the first copy's, so that
	// a resend of the message gets the same times.
	base := recv
	if !s.hasTickBase {
		for _, r := range recs {
			if r.sig.TS.IsZero() {
				base = s.serverTime(frame, recv.UTC().Truncate(time.Millisecond))
				break
			}
		}
	}
	for _, r := range recs {
		for _, v := range r.obd {
			v.Apply(&r.sig)
		}
		if r.sig.TS.IsZero() {
			r.sig.TS = s.timeOf(r, lastTick, base)
			if ts, ok := r.gpsClockNear(r.sig.TS); ok {
				r.sig.TS = ts
			}
		}
		r.sig.TS = r.sig.TS.UTC()
		r.sig.Recv = recv
		r.sig.Protocol = Name
		r.sig.Frame = frameCopy
		out = append(out, r.sig)
	}
	return out, nil
}

// serverTime is the time of a record that has no device time: recv, or,
// for a resend of the same message within the resend window, the time its
// first copy got (see README "Resends").
func (s *Session) serverTime(frame []byte, recv time.Time) time.Time {
	return s.dec.times.Stamp(s.dev, bytes.TrimRight(frame, "\r\n\x00 "), recv)
}

// truncate shortens an id for an error message.
func truncate(id string) string {
	if len(id) > 64 {
		return id[:64] + "…"
	}
	return id
}

// learnTickBase learns UTC minus the device tick from a time known at a
// tick: a GPS time (exact), or the receive time of an event (off by the
// network delay). The base is shared by the device's sessions (see
// feedTable.tickBase), so that records timed by their tick get the same
// time, and key, when they are sent again on a new session.
func (s *Session) learnTickBase(at time.Time, tick uint64, fromGPS bool) {
	base := at.Add(-time.Duration(tick) * time.Millisecond)
	s.tickBase = s.dec.feeds.tickBase(s.dev, base, fromGPS)
	s.hasTickBase, s.baseTick = true, tick
}

func (s *Session) timeOf(r *record, lastTick uint64, recv time.Time) time.Time {
	switch {
	// A tick far below the one the base was learned at means the device
	// rebooted without a login: the base no longer holds.
	case r.hasTick && s.hasTickBase && r.tick+60_000 >= s.baseTick:
		return s.tickBase.Add(time.Duration(r.tick) * time.Millisecond).Truncate(time.Millisecond)
	case r.hasTick:
		return recv.Add(-time.Duration(lastTick-r.tick) * time.Millisecond).Truncate(time.Millisecond)
	}
	return recv.Truncate(time.Millisecond)
}

// gpsClockNear places a GPS time of day without a date on the day that
// puts it nearest to approx (the tick or receive time), within 12 hours.
func (r *record) gpsClockNear(approx time.Time) (time.Time, bool) {
	if r.clock == "" || r.date != "" {
		return time.Time{}, false
	}
	c := fmt.Sprintf("%08s", r.clock)
	n, err := strconv.Atoi(c)
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	hh, mm, ss, cs := n/1000000, n/10000%100, n/100%100, n%100
	if hh > 23 || mm > 59 || ss > 59 {
		return time.Time{}, false
	}
	approx = approx.UTC()
	y, mo, d := approx.Date()
	best, bestDiff := time.Time{}, 12*time.Hour+1
	for _, day := range []int{d - 1, d, d + 1} {
		t := time.Date(y, mo, day, hh, mm, ss, cs*int(10*time.Millisecond), time.UTC)
		diff := t.Sub(approx)
		if diff < 0 {
			diff = -diff
		}
		if diff < bestDiff {
			best, bestDiff = t, diff
		}
	}
	return best, bestDiff <= 12*time.Hour
}

// gpsTime combines the GPS date (ddmmyy) and time (hhmmsscc).
func (r *record) gpsTime() (time.Time, bool) {
	if r.date == "" || r.clock == "" {
		return time.Time{}, false
	}
	d := fmt.Sprintf("%06s", r.date)
	c := fmt.Sprintf("%08s", r.clock)
	day, e1 := strconv.Atoi(d[0:2])
	mon, e2 := strconv.Atoi(d[2:4])
	yr, e3 := strconv.Atoi(d[4:6])
	hh, e4 := strconv.Atoi(c[0:2])
	mm, e5 := strconv.Atoi(c[2:4])
	ss, e6 := strconv.Atoi(c[4:6])
	cs, e7 := strconv.Atoi(c[6:8])
	for _, e := range []error{e1, e2, e3, e4, e5, e6, e7} {
		if e != nil {
			return time.Time{}, false
		}
	}
	if day < 1 || day > 31 || mon < 1 || mon > 12 || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, false
	}
	t := time.Date(2000+yr, time.Month(mon), day, hh, mm, ss, cs*10*int(time.Millisecond), time.UTC)
	if t.Day() != day && ss < 60 { // 31 February, not a leap second rolling over
		return time.Time{}, false
	}
	return t, true
}

func parseFloat(v string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("value %q is not a number", v)
	}
	return f, nil
}

// setTriple stores "x;y;z" as three numeric attrs.
func (r *record) setTriple(v string, names [3]string) error {
	parts := strings.Split(v, ";")
	if len(parts) != 3 {
		return fmt.Errorf("value %q is not x;y;z", v)
	}
	for i, p := range parts {
		f, err := parseFloat(p)
		if err != nil {
			return err
		}
		r.sig.SetAttr(names[i], f)
	}
	return nil
}

func (r *record) set(key uint16, v string) error {
	sig := &r.sig
	switch key {
	case keyTick:
		t, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("tick %q is not a number", v)
		}
		r.tick, r.hasTick = t, true
		sig.SetAttr("tick_ms", int64(t))
		return nil
	case keyDate:
		// ddmmyy, leading zeros dropped; 0 when the GPS has no date yet.
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || len(v) > 6 {
			return fmt.Errorf("GPS date %q is not ddmmyy", v)
		}
		if n == 0 {
			return nil
		}
		if day, mon := n/10000, n/100%100; day < 1 || day > 31 || mon < 1 || mon > 12 {
			return fmt.Errorf("GPS date %q is not a date (ddmmyy)", v)
		}
		r.date = v
		return nil
	case keyTime:
		// hhmmsscc, leading zeros dropped.
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || len(v) > 8 {
			return fmt.Errorf("GPS time %q is not hhmmsscc", v)
		}
		if hh, mm, ss := n/1000000, n/10000%100, n/100%100; hh > 23 || mm > 59 || ss > 60 {
			return fmt.Errorf("GPS time %q is not a time of day (hhmmsscc)", v)
		}
		r.clock = v
		return nil
	case keyAcc:
		return r.setTriple(v, [3]string{"acc_x", "acc_y", "acc_z"})
	case keyGyro:
		return r.setTriple(v, [3]string{"gyro_x", "gyro_y", "gyro_z"})
	case keyCompass:
		return r.setTriple(v, [3]string{"mag_x", "mag_y", "mag_z"})
	case keyOrientation:
		return r.setTriple(v, [3]string{"pitch", "yaw", "roll"})
	}
	if key >= keyOBDBase && key <= keyOBDBase+0xFF {
		f, err := parseFloat(v)
		if err != nil {
			return err
		}
		val, err := obd2.Scaled(byte(key-keyOBDBase), f)
		if err != nil {
			return err
		}
		r.obd = append(r.obd, val)
		return nil
	}
	f, err := parseFloat(v)
	if err != nil {
		if keyName(key) == "" {
			sig.SetAttr(fmt.Sprintf("key_%x", key), v)
			return nil
		}
		return err
	}
	switch key {
	case keyLat:
		sig.Lat = f
	case keyLon:
		sig.Lon = f
	case keyAlt:
		sig.Alt = f
	case keySpeed:
		// TinyGPS, which the Freematics firmware reads the GPS with, reports
		// an unknown speed as 9 999 999.99 kn (18 520 000 km/h): no speed.
		// The value stays as attr speed_raw.
		if d, _ := signal.DomainOf(signal.FieldSpeed); d.Contains(f) {
			sig.Speed = f
		} else {
			sig.SetAttr("speed_raw", f)
		}
	case keyHeading:
		sig.Heading = f
	case keySats:
		sig.Sats = f
	case keyHDOP:
		sig.HDOP = f
	case keyBattery:
		// Battery voltage in 0.01 V (the vehicle battery at the OBD port).
		if math.IsNaN(sig.Voltage) {
			sig.Voltage = f / 100
		} else {
			sig.SetAttr("battery_v", f/100)
		}
	case keyMEMSTemp:
		sig.SetAttr("mems_temp_c", f/10)
	case keyDeviceTemp:
		sig.SetAttr("device_temp_c", f/10)
	case keyCSQ:
		sig.SetAttr("rssi", f)
	case keyTrip:
		sig.SetAttr("trip_distance", f)
	case keyDataSize:
		sig.SetAttr("data_size", f)
	case keyHall:
		sig.SetAttr("hall", f)
	case keyTransport:
		sig.SetAttr("network_transport", f)
	default:
		sig.SetAttr(fmt.Sprintf("key_%x", key), f)
	}
	return nil
}

// keyName reports whether a key has a fixed numeric meaning (its value must
// parse); unknown keys keep non-numeric values as strings.
func keyName(key uint16) string {
	switch key {
	case keyLat, keyLon, keyAlt, keySpeed, keyHeading, keySats, keyHDOP, keyBattery,
		keyMEMSTemp, keyDeviceTemp, keyCSQ, keyTrip, keyDataSize, keyHall, keyTransport:
		return "known"
	}
	return ""
}
