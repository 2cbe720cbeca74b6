package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Exports stream: each row is formatted as pgx scans it into the same
// variables and goes out through a fixed buffer, flushed to the client
// every exportFlushRows rows, so memory does not grow with the export
// (BenchmarkExport measures it).
const (
	exportBufferBytes = 64 << 10
	exportFlushRows   = 5000
)

// exportColumns are the CSV columns: the canonical fields (DESIGN.md §3)
// with the row id, dtcs space-separated and attrs as JSON text.
var exportColumns = []string{"id", "device_id", "ts", "recv", "lat", "lon", "alt", "speed", "heading", "sats", "hdop", "valid",
	"rpm", "coolant", "fuel", "voltage", "odometer", "engine_load", "throttle", "dtcs", "attrs", "protocol", "path", "decoder_version"}

// The numeric columns from lat, in exportColumns order.
var exportNumeric = exportColumns[4:11]
var exportOBD = exportColumns[12:19]

const exportSelect = `SELECT id, device_id, ts, recv, lat, lon, alt, speed, heading, sats, hdop, valid,
	rpm, coolant, fuel, voltage, odometer, engine_load, throttle, dtcs, attrs::text, protocol, path, coalesce(decoder_version, '')
	FROM signals `

// exportRow is one scanned row; the scan targets are reused.
type exportRow struct {
	id                             int64
	device                         string
	ts, recv                       time.Time
	num                            [7]*float64 // lat … hdop
	valid                          *bool
	obd                            [7]*float64 // rpm … throttle
	dtcs                           []string
	attrs                          *string
	protocol, path, decoderVersion string
	targets                        []any
}

func newExportRow() *exportRow {
	x := &exportRow{}
	x.targets = []any{&x.id, &x.device, &x.ts, &x.recv}
	for i := range x.num {
		x.targets = append(x.targets, &x.num[i])
	}
	x.targets = append(x.targets, &x.valid)
	for i := range x.obd {
		x.targets = append(x.targets, &x.obd[i])
	}
	x.targets = append(x.targets, &x.dtcs, &x.attrs, &x.protocol, &x.path, &x.decoderVersion)
	return x
}

func (x *exportRow) hasPos() bool {
	return x.num[0] != nil && x.num[1] != nil && !math.IsNaN(*x.num[0]) && !math.IsNaN(*x.num[1])
}

// exportFormat writes the start, each row and the end of an export.
type exportFormat struct {
	contentType, ext string
	// positions: only rows with a position (GPX has no point without one).
	positions bool
	head      func(w *bufio.Writer, device string)
	row       func(w *bufio.Writer, x *exportRow, n int)
	tail      func(w *bufio.Writer, n int)
}

var exportFormats = map[string]*exportFormat{
	"csv":     {contentType: "text/csv; charset=utf-8", ext: "csv", head: csvHead, row: csvRow, tail: func(*bufio.Writer, int) {}},
	"geojson": {contentType: "application/geo+json", ext: "geojson", head: geojsonHead, row: geojsonRow, tail: geojsonTail},
	"gpx":     {contentType: "application/gpx+xml", ext: "gpx", positions: true, head: gpxHead, row: gpxRow, tail: gpxTail},
}

// deviceExport is GET /api/devices/{id}/signals.{csv,geojson,gpx}: the
// device's signals in [from, to) (default: all), oldest first.
func (s *Server) deviceExport(format string) http.HandlerFunc {
	f := exportFormats[format]
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		if err != nil {
			s.fail(w, err)
			return
		}
		if _, err := params(r, "from", "to"); err != nil {
			s.fail(w, err)
			return
		}
		from, to, err := timeRange(r)
		if err != nil {
			s.fail(w, err)
			return
		}
		if !s.deviceOr404(w, r, id) {
			return
		}
		where := `WHERE device_id = $1 AND ts >= $2 AND ts < $3 `
		if f.positions {
			where += `AND lat IS NOT NULL AND lon IS NOT NULL AND lat <> 'NaN' AND lon <> 'NaN' `
		}
		s.export(w, r, f, id, exportSelect+where+`ORDER BY ts, id`, id, from, to)
	}
}

// fleetExport is GET /api/signals.csv: every device's signals in [from,
// to) (both required), by device time; protocol narrows it.
func (s *Server) fleetExport(w http.ResponseWriter, r *http.Request) {
	q, err := params(r, "from", "to", "protocol")
	if err != nil {
		s.fail(w, err)
		return
	}
	for _, name := range []string{"from", "to"} {
		if q.Get(name) == "" {
			s.fail(w, badf("%s is required: the fleet-wide export covers one time range (RFC 3339 or Unix seconds)", name))
			return
		}
	}
	from, to, err := timeRange(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.export(w, r, exportFormats["csv"], "fleet", exportSelect+`WHERE ts >= $1 AND ts < $2 AND ($3 = '' OR protocol = $3) ORDER BY ts, id`,
		from, to, q.Get("protocol"))
}

func (s *Server) export(w http.ResponseWriter, r *http.Request, f *exportFormat, name, sql string, args ...any) {
	rows, err := s.deps.DB.Query(r.Context(), sql, args...)
	if err != nil {
		s.fail(w, fmt.Errorf("exporting signals: %w", err))
		return
	}
	defer rows.Close()
	// The first row decides the status: a query that fails at once still
	// gets a proper error response.
	more := rows.Next()
	if !more && rows.Err() != nil {
		s.fail(w, fmt.Errorf("exporting signals: %w", rows.Err()))
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, fileName(name), f.ext))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, exportBufferBytes)
	f.head(bw, name)
	x := newExportRow()
	n := 0
	for ; more; more = rows.Next() {
		if err := rows.Scan(x.targets...); err != nil {
			s.abort(r, fmt.Errorf("exporting signals: %w", err))
		}
		f.row(bw, x, n)
		n++
		if n%exportFlushRows == 0 {
			if bw.Flush() != nil {
				return // the client went away
			}
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return
			}
		}
	}
	if err := rows.Err(); err != nil {
		s.abort(r, fmt.Errorf("exporting signals: %w", err))
	}
	f.tail(bw, n)
	bw.Flush() //nolint:errcheck // the client went away
}

// fileName keeps a device id's safe characters for Content-Disposition.
func fileName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return strings.TrimLeft(string(b), ".")
}

// --- CSV (RFC 4180: CRLF-free lines, quoted fields where needed) ---

func csvHead(w *bufio.Writer, _ string) {
	w.WriteString(strings.Join(exportColumns, ",")) //nolint:errcheck // bufio keeps the first error; the flush reports it
	w.WriteByte('\n')                               //nolint:errcheck
}

func csvRow(w *bufio.Writer, x *exportRow, _ int) {
	var b [64]byte
	w.Write(strconv.AppendInt(b[:0], x.id, 10)) //nolint:errcheck
	w.WriteByte(',')                            //nolint:errcheck
	csvField(w, x.device)
	w.WriteByte(',')                                            //nolint:errcheck
	w.Write(x.ts.UTC().AppendFormat(b[:0], time.RFC3339Nano))   //nolint:errcheck
	w.WriteByte(',')                                            //nolint:errcheck
	w.Write(x.recv.UTC().AppendFormat(b[:0], time.RFC3339Nano)) //nolint:errcheck
	for _, p := range x.num {
		w.WriteByte(',') //nolint:errcheck
		writeNum(w, p)
	}
	w.WriteByte(',') //nolint:errcheck
	if x.valid != nil {
		w.WriteString(strconv.FormatBool(*x.valid)) //nolint:errcheck
	}
	for _, p := range x.obd {
		w.WriteByte(',') //nolint:errcheck
		writeNum(w, p)
	}
	w.WriteByte(',') //nolint:errcheck
	csvField(w, strings.Join(x.dtcs, " "))
	w.WriteByte(',') //nolint:errcheck
	if x.attrs != nil {
		csvField(w, *x.attrs)
	}
	for _, v := range []string{x.protocol, x.path, x.decoderVersion} {
		w.WriteByte(',') //nolint:errcheck
		csvField(w, v)
	}
	w.WriteByte('\n') //nolint:errcheck
}

// csvField quotes a field holding a comma, quote or line break. Values
// are exported as stored (no spreadsheet formula escaping: the export is
// data, and a changed value would not compare with the API's).
func csvField(w *bufio.Writer, v string) {
	if !strings.ContainsAny(v, ",\"\r\n") {
		w.WriteString(v) //nolint:errcheck
		return
	}
	w.WriteByte('"')                                //nolint:errcheck
	w.WriteString(strings.ReplaceAll(v, `"`, `""`)) //nolint:errcheck
	w.WriteByte('"')                                //nolint:errcheck
}

func writeNum(w *bufio.Writer, p *float64) {
	if p == nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
		return
	}
	var b [32]byte
	w.Write(strconv.AppendFloat(b[:0], *p, 'f', -1, 64)) //nolint:errcheck
}

// --- GeoJSON (RFC 7946): one Feature per signal, geometry null without a position ---

func geojsonHead(w *bufio.Writer, _ string) {
	w.WriteString(`{"type":"FeatureCollection","features":[` + "\n") //nolint:errcheck
}

func geojsonRow(w *bufio.Writer, x *exportRow, n int) {
	if n > 0 {
		w.WriteString(",\n") //nolint:errcheck
	}
	w.WriteString(`{"type":"Feature","geometry":`) //nolint:errcheck
	if x.hasPos() {
		w.WriteString(`{"type":"Point","coordinates":[`) //nolint:errcheck
		writeNum(w, x.num[1])
		w.WriteByte(',') //nolint:errcheck
		writeNum(w, x.num[0])
		if x.num[2] != nil && !math.IsNaN(*x.num[2]) && !math.IsInf(*x.num[2], 0) {
			w.WriteByte(',') //nolint:errcheck
			writeNum(w, x.num[2])
		}
		w.WriteString(`]}`) //nolint:errcheck
	} else {
		w.WriteString(`null`) //nolint:errcheck
	}
	var b [64]byte
	w.WriteString(`,"properties":{"id":`)                       //nolint:errcheck
	w.Write(strconv.AppendInt(b[:0], x.id, 10))                 //nolint:errcheck
	w.WriteString(`,"device_id":`)                              //nolint:errcheck
	jsonString(w, x.device)                                     //nolint:errcheck
	w.WriteString(`,"ts":"`)                                    //nolint:errcheck
	w.Write(x.ts.UTC().AppendFormat(b[:0], time.RFC3339Nano))   //nolint:errcheck
	w.WriteString(`","recv":"`)                                 //nolint:errcheck
	w.Write(x.recv.UTC().AppendFormat(b[:0], time.RFC3339Nano)) //nolint:errcheck
	w.WriteByte('"')                                            //nolint:errcheck
	for i, p := range x.num[3:] {
		jsonNumProp(w, exportNumeric[3+i], p)
	}
	if x.valid != nil {
		w.WriteString(`,"valid":` + strconv.FormatBool(*x.valid)) //nolint:errcheck
	}
	for i, p := range x.obd {
		jsonNumProp(w, exportOBD[i], p)
	}
	if len(x.dtcs) > 0 {
		b, _ := json.Marshal(x.dtcs)
		w.WriteString(`,"dtcs":`) //nolint:errcheck
		w.Write(b)                //nolint:errcheck
	}
	if x.attrs != nil {
		w.WriteString(`,"attrs":`) //nolint:errcheck
		w.WriteString(*x.attrs)    //nolint:errcheck // jsonb text is JSON
	}
	w.WriteString(`,"protocol":`) //nolint:errcheck
	jsonString(w, x.protocol)
	w.WriteString(`,"path":`) //nolint:errcheck
	jsonString(w, x.path)
	if x.decoderVersion != "" {
		w.WriteString(`,"decoder_version":`) //nolint:errcheck
		jsonString(w, x.decoderVersion)
	}
	w.WriteString(`}}`) //nolint:errcheck
}

func jsonNumProp(w *bufio.Writer, name string, p *float64) {
	if p == nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
		return
	}
	w.WriteString(`,"` + name + `":`) //nolint:errcheck
	writeNum(w, p)
}

func jsonString(w *bufio.Writer, s string) {
	b, _ := json.Marshal(s)
	w.Write(b) //nolint:errcheck
}

func geojsonTail(w *bufio.Writer, _ int) {
	w.WriteString("\n]}\n") //nolint:errcheck
}

// --- GPX 1.1: one track, one segment, a trkpt per fix ---

const gpxNS = "https://fleetcore.dev/xmlschemas/gpx/1"

func gpxHead(w *bufio.Writer, device string) {
	w.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<gpx version="1.1" creator="fleetcore" xmlns="http://www.topografix.com/GPX/1/1" xmlns:fc="` + gpxNS + `">` + "\n" +
		`<trk><name>`) //nolint:errcheck
	xmlText(w, device)
	w.WriteString("</name><trkseg>\n") //nolint:errcheck
}

// gpxRow writes a trkpt: ele, time, fix (none when the device said the
// fix is invalid), sat and hdop as GPX has them; speed (km/h) and course
// in fleetcore's extension namespace (GPX 1.1 has no speed element).
func gpxRow(w *bufio.Writer, x *exportRow, _ int) {
	w.WriteString(`<trkpt lat="`) //nolint:errcheck
	writeNum(w, x.num[0])
	w.WriteString(`" lon="`) //nolint:errcheck
	writeNum(w, x.num[1])
	w.WriteString(`">`) //nolint:errcheck
	if p := finite(x.num[2]); p != nil {
		w.WriteString(`<ele>`) //nolint:errcheck
		writeNum(w, p)
		w.WriteString(`</ele>`) //nolint:errcheck
	}
	var b [64]byte
	w.WriteString(`<time>`)                                   //nolint:errcheck
	w.Write(x.ts.UTC().AppendFormat(b[:0], time.RFC3339Nano)) //nolint:errcheck
	w.WriteString(`</time>`)                                  //nolint:errcheck
	if x.valid != nil && !*x.valid {
		w.WriteString(`<fix>none</fix>`) //nolint:errcheck
	}
	if p := finite(x.num[5]); p != nil && *p >= 0 {
		w.WriteString(`<sat>`)                          //nolint:errcheck
		w.WriteString(strconv.FormatInt(int64(*p), 10)) //nolint:errcheck
		w.WriteString(`</sat>`)                         //nolint:errcheck
	}
	if p := finite(x.num[6]); p != nil {
		w.WriteString(`<hdop>`) //nolint:errcheck
		writeNum(w, p)
		w.WriteString(`</hdop>`) //nolint:errcheck
	}
	speed, course := finite(x.num[3]), finite(x.num[4])
	if speed != nil || course != nil {
		w.WriteString(`<extensions>`) //nolint:errcheck
		if speed != nil {
			w.WriteString(`<fc:speed_kmh>`) //nolint:errcheck
			writeNum(w, speed)
			w.WriteString(`</fc:speed_kmh>`) //nolint:errcheck
		}
		if course != nil {
			w.WriteString(`<fc:course>`) //nolint:errcheck
			writeNum(w, course)
			w.WriteString(`</fc:course>`) //nolint:errcheck
		}
		w.WriteString(`</extensions>`) //nolint:errcheck
	}
	w.WriteString("</trkpt>\n") //nolint:errcheck
}

func gpxTail(w *bufio.Writer, _ int) {
	w.WriteString("</trkseg></trk>\n</gpx>\n") //nolint:errcheck
}

// xmlText escapes text for an XML element.
func xmlText(w io.Writer, s string) {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	r.WriteString(w, s) //nolint:errcheck
}
