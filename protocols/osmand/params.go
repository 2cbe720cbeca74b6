package osmand

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// decoding is one request being decoded.
type decoding struct {
	s      *Session
	frame  []byte // the request, copied once for all its signals
	recv   time.Time
	device string
}

func (d *decoding) newSignal(ts time.Time) signal.Signal {
	if ts.IsZero() {
		ts = d.recv
	}
	sg := signal.New(d.device, ts)
	sg.Recv = d.recv
	sg.Protocol = Name
	sg.Frame = d.frame
	return sg
}

func (d *decoding) setDevice(id string) error {
	id = strings.TrimSpace(id)
	if id == "" {
		return nil
	}
	if len(id) > 64 {
		return fmt.Errorf("decoding osmand request: %w: device id of %d characters", plugins.ErrMalformed, len(id))
	}
	if d.s.cfg.AllowDevice != nil && !d.s.cfg.AllowDevice(id) {
		d.device = id
		return fmt.Errorf("decoding osmand request: %w: %s", plugins.ErrUnauthorized, id)
	}
	d.device = id
	return nil
}

// query decodes the OsmAnd query-string protocol: parameters from the URL,
// or, when the URL has none, from a form-encoded body.
func (d *decoding) query(req *http.Request, body []byte, contentType string) ([]signal.Signal, error) {
	params, err := url.ParseQuery(req.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("decoding osmand query: %w: %v", plugins.ErrMalformed, err)
	}
	if len(params) == 0 && len(bytes.TrimSpace(body)) > 0 {
		if contentType != "" && !strings.HasPrefix(contentType, "application/x-www-form-urlencoded") && !strings.HasPrefix(contentType, "text/plain") {
			return nil, fmt.Errorf("decoding osmand body: %w: Content-Type %q", plugins.ErrUnsupported, contentType)
		}
		params, err = url.ParseQuery(string(bytes.TrimSpace(body)))
		if err != nil {
			return nil, fmt.Errorf("decoding osmand form body: %w: %v", plugins.ErrMalformed, err)
		}
	}
	for _, k := range []string{"id", "deviceid", "i"} {
		if v := params.Get(k); v != "" {
			if err := d.setDevice(v); err != nil {
				return nil, err
			}
			break
		}
	}
	if d.device == "" {
		return nil, fmt.Errorf("decoding osmand query: %w: no id or deviceid parameter", plugins.ErrNoDevice)
	}

	sg := d.newSignal(time.Time{})
	hasTS := false
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var lat, lon = math.NaN(), math.NaN()
	valid := signal.Unknown
	for _, k := range keys {
		vals := params[k]
		v := strings.TrimSpace(vals[len(vals)-1])
		if v == "" {
			continue
		}
		var err error
		switch k {
		case "id", "deviceid", "i":
		case "timestamp", "d":
			var ts time.Time
			ts, err = parseTime(v)
			if err == nil {
				sg.TS, hasTS = ts, true
			}
		case "lat", "la":
			lat, err = number(v)
		case "lon", "lo":
			lon, err = number(v)
		case "location":
			a, b, ok := strings.Cut(v, ",")
			if !ok {
				err = fmt.Errorf("location %q is not lat,lon", v)
				break
			}
			if lat, err = number(a); err == nil {
				lon, err = number(b)
			}
		case "speed", "s":
			// A negative speed or bearing is unknown (iOS reports -1 for an
			// invalid one, and Traccar Client passes it on), as in the JSON
			// body.
			var f float64
			if f, err = number(v); err == nil && f >= 0 {
				sg.Speed = f * d.s.speedFactor
			}
		case "bearing", "heading":
			var f float64
			if f, err = number(v); err == nil && f >= 0 {
				sg.Heading = f
			}
		case "altitude", "al":
			sg.Alt, err = number(v)
		case "hdop", "h":
			sg.HDOP, err = number(v)
		case "sat", "sa":
			sg.Sats, err = number(v)
		case "odometer":
			sg.Odometer, err = number(v) // km in this protocol
		case "rpm":
			sg.RPM, err = number(v)
		case "fuel":
			sg.Fuel, err = number(v)
		case "coolant":
			sg.Coolant, err = number(v)
		case "voltage", "power":
			sg.Voltage, err = number(v)
		case "engine_load":
			sg.EngineLoad, err = number(v)
		case "throttle":
			sg.Throttle, err = number(v)
		case "accuracy", "p", "prec":
			var f float64
			if f, err = number(v); err == nil {
				sg.SetAttr("accuracy", f)
			}
		case "batt":
			var f float64
			if f, err = number(v); err == nil {
				sg.SetAttr("battery_level", f)
			}
		case "charge":
			var b bool
			if b, err = boolean(v); err == nil {
				sg.SetAttr("charging", b)
			}
		case "valid":
			var b bool
			if b, err = boolean(v); err == nil {
				valid = signal.FlagOf(b)
			}
		case "v":
			switch {
			case strings.EqualFold(v, "A"):
				valid = signal.True
			case strings.EqualFold(v, "V"):
				valid = signal.False
			default:
				err = fmt.Errorf("%q is not A or V", v)
			}
		case "driverUniqueId":
			sg.SetAttr("driver_id", v)
		case "cell", "wifi":
			sg.SetAttr(k, strings.Join(vals, ";"))
		default:
			sg.SetAttr(k, guess(v))
		}
		if err != nil {
			return nil, fmt.Errorf("decoding osmand parameter %s: %w: %v", k, plugins.ErrMalformed, err)
		}
	}
	if err := checkPosition(lat, lon); err != nil {
		return nil, fmt.Errorf("decoding osmand parameters: %w", err)
	}
	if !math.IsNaN(lat) && !math.IsNaN(lon) {
		sg.Lat, sg.Lon = lat, lon
		if valid == signal.Unknown {
			valid = signal.True // the protocol sends fixes only
		}
	}
	sg.Valid = valid
	if !hasTS {
		// No device time: the receive time of the report's first copy, so
		// that a resend (same parameters, whatever their order or escaping)
		// gets the same key. The protocol has no sequence number: an
		// identical report within the resend window is taken as a resend.
		sg.TS = d.s.dec.times.Stamp(d.device, []byte(params.Encode()), d.recv.Truncate(time.Microsecond))
	}
	return []signal.Signal{sg}, nil
}

// checkPosition refuses a latitude or longitude outside the globe.
func checkPosition(lat, lon float64) error {
	if math.Abs(lat) > 90 {
		return fmt.Errorf("%w: latitude %v is beyond ±90°", plugins.ErrMalformed, lat)
	}
	if math.Abs(lon) > 180 {
		return fmt.Errorf("%w: longitude %v is beyond ±180°", plugins.ErrMalformed, lon)
	}
	return nil
}

// boolean parses the protocol's flags: true/false or 1/0.
func boolean(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true, false, 1 or 0", v)
}

// number parses a finite decimal number.
func number(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return f, nil
}

// guess types a free parameter: integer, number, boolean or text.
func guess(v string) any {
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		return i
	}
	if f, err := number(v); err == nil {
		return f
	}
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	return v
}

// parseTime parses a device time and refuses one that cannot be a device's
// clock: at or before the Unix epoch (0, -1: an unset clock) or after the
// year 9999 (beyond what RFC 3339 writes and Postgres orders sanely).
func parseTime(v string) (time.Time, error) {
	t, err := parseTimeValue(v)
	if err != nil {
		return t, err
	}
	if t.Unix() <= 0 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("timestamp %q is %s, outside 1970–9999", v, t.Format(time.RFC3339))
	}
	return t, nil
}

// parseTimeValue accepts Unix seconds, Unix milliseconds, ddMMyyHHmmss, RFC
// 3339 (with or without zone, fractional seconds) and "yyyy-MM-dd HH:mm:ss";
// times without a zone are UTC.
func parseTimeValue(v string) (time.Time, error) {
	if len(v) == 12 && isDigits(v) {
		if t, err := time.Parse("020106150405", v); err == nil {
			return t, nil
		}
	}
	if isDigits(v) || (strings.HasPrefix(v, "-") && isDigits(v[1:])) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("timestamp %q: %v", v, err)
		}
		if n < math.MaxInt32 {
			return time.Unix(n, 0).UTC(), nil
		}
		return time.UnixMilli(n).UTC(), nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1e11 {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC().Truncate(time.Millisecond), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q is not Unix seconds/milliseconds or ISO 8601", v)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// The JSON body of Traccar Client (the transistorsoft background-geolocation
// shape): {"location": {...} or [...], "device_id": "..."}.
type jsonBody struct {
	DeviceID json.RawMessage `json:"device_id"`
	ID       json.RawMessage `json:"id"`
	Location json.RawMessage `json:"location"`
}

type jsonLocation struct {
	Timestamp string                  `json:"timestamp"`
	Coords    *jsonCoords             `json:"coords"`
	IsMoving  *bool                   `json:"is_moving"`
	Odometer  *float64                `json:"odometer"` // m
	Event     *string                 `json:"event"`
	Mock      *bool                   `json:"mock"`
	UUID      *string                 `json:"uuid"`
	Activity  *struct{ Type *string } `json:"activity"`
	Battery   *struct {
		Level      *float64 `json:"level"` // 0..1, -1 unknown
		IsCharging *bool    `json:"is_charging"`
	} `json:"battery"`
	Alarm  *string                    `json:"alarm"`
	Extras map[string]json.RawMessage `json:"extras"`
}

type jsonCoords struct {
	Latitude         *float64 `json:"latitude"`
	Longitude        *float64 `json:"longitude"`
	Accuracy         *float64 `json:"accuracy"`
	Speed            *float64 `json:"speed"`   // m/s, negative = unknown
	Heading          *float64 `json:"heading"` // negative = unknown
	Altitude         *float64 `json:"altitude"`
	AltitudeAccuracy *float64 `json:"altitude_accuracy"`
}

func (d *decoding) json(body []byte) ([]signal.Signal, error) {
	var root jsonBody
	if err := json.Unmarshal(body, &root); err != nil {
		return nil, fmt.Errorf("decoding osmand JSON: %w: %v", plugins.ErrMalformed, err)
	}
	id := jsonID(root.DeviceID)
	if id == "" {
		id = jsonID(root.ID)
	}
	if err := d.setDevice(id); err != nil {
		return nil, err
	}
	if d.device == "" {
		return nil, fmt.Errorf("decoding osmand JSON: %w: no device_id", plugins.ErrNoDevice)
	}
	var locs []jsonLocation
	switch t := bytes.TrimSpace(root.Location); {
	case len(t) == 0 || bytes.Equal(t, []byte("null")):
		return nil, fmt.Errorf("decoding osmand JSON: %w: no location", plugins.ErrMalformed)
	case t[0] == '[':
		if err := json.Unmarshal(t, &locs); err != nil {
			return nil, fmt.Errorf("decoding osmand JSON locations: %w: %v", plugins.ErrMalformed, err)
		}
	default:
		var l jsonLocation
		if err := json.Unmarshal(t, &l); err != nil {
			return nil, fmt.Errorf("decoding osmand JSON location: %w: %v", plugins.ErrMalformed, err)
		}
		locs = []jsonLocation{l}
	}
	out := make([]signal.Signal, 0, len(locs))
	for i, l := range locs {
		sg, err := d.jsonLocation(l)
		if err != nil {
			return nil, fmt.Errorf("decoding osmand JSON location %d: %w", i, err)
		}
		out = append(out, sg)
	}
	return out, nil
}

// jsonID accepts the device id as a JSON string or number.
func jsonID(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

func (d *decoding) jsonLocation(l jsonLocation) (signal.Signal, error) {
	if l.Timestamp == "" {
		return signal.Signal{}, fmt.Errorf("%w: location without timestamp", plugins.ErrMalformed)
	}
	ts, err := parseTime(l.Timestamp)
	if err != nil {
		return signal.Signal{}, fmt.Errorf("%w: %v", plugins.ErrMalformed, err)
	}
	sg := d.newSignal(ts)
	if c := l.Coords; c != nil {
		if c.Latitude == nil || c.Longitude == nil {
			return signal.Signal{}, fmt.Errorf("%w: coords without latitude/longitude", plugins.ErrMalformed)
		}
		if err := checkPosition(*c.Latitude, *c.Longitude); err != nil {
			return signal.Signal{}, err
		}
		sg.Lat, sg.Lon, sg.Valid = *c.Latitude, *c.Longitude, signal.True
		if c.Speed != nil && *c.Speed >= 0 {
			sg.Speed = *c.Speed * 3.6
		}
		if c.Heading != nil && *c.Heading >= 0 {
			sg.Heading = *c.Heading
		}
		if c.Altitude != nil {
			sg.Alt = *c.Altitude
		}
		if c.Accuracy != nil && *c.Accuracy >= 0 {
			sg.SetAttr("accuracy", *c.Accuracy)
		}
		if c.AltitudeAccuracy != nil && *c.AltitudeAccuracy >= 0 {
			sg.SetAttr("altitude_accuracy", *c.AltitudeAccuracy)
		}
	}
	if l.IsMoving != nil {
		sg.SetAttr("motion", *l.IsMoving)
	}
	if l.Odometer != nil && *l.Odometer >= 0 {
		sg.Odometer = *l.Odometer / 1000
	}
	if l.Event != nil && *l.Event != "" {
		sg.SetAttr("event", *l.Event)
	}
	if l.Mock != nil {
		sg.SetAttr("mock", *l.Mock)
	}
	if l.UUID != nil && *l.UUID != "" {
		sg.SetAttr("uuid", *l.UUID)
	}
	if l.Activity != nil && l.Activity.Type != nil {
		sg.SetAttr("activity", *l.Activity.Type)
	}
	if b := l.Battery; b != nil {
		if b.Level != nil && *b.Level >= 0 {
			sg.SetAttr("battery_level", math.Round(*b.Level*100))
		}
		if b.IsCharging != nil {
			sg.SetAttr("charging", *b.IsCharging)
		}
	}
	if l.Alarm != nil && *l.Alarm != "" {
		sg.SetAttr("alarm", *l.Alarm)
	}
	for k, raw := range l.Extras {
		if _, taken := sg.Attrs[k]; taken {
			continue // a decoded value wins over an extra of the same name
		}
		if v, ok := extraValue(raw); ok {
			sg.SetAttr(k, v)
		}
	}
	return sg, nil
}

// extraValue keeps scalar extras: integers as int64, other numbers as
// float64, booleans, strings.
func extraValue(raw json.RawMessage) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil, false
	}
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, true
		}
		if f, err := x.Float64(); err == nil && !math.IsInf(f, 0) {
			return f, true
		}
	case bool, string:
		return x, true
	}
	return nil, false
}
