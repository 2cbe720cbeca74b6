package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
)

// Bounds every endpoint checks before it runs a query (README, HTTP API).
const (
	defaultLimit = 100
	maxLimit     = 1000
	// maxOffset bounds offset paging: deeper pages cost Postgres a scan of
	// every skipped row; narrow with from/to or use the cursor instead.
	maxOffset = 1_000_000
	// maxParamBytes bounds a text parameter (a device id, a rule name…).
	maxParamBytes = 1024
	// maxCursorBytes bounds an encoded cursor.
	maxCursorBytes = 4096
)

// The range of times from, to and cursors may name: what Go's RFC 3339
// parser reads and Postgres's timestamptz holds (years 1 to 9999).
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// badRequest is a parameter problem: 400 with its text.
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

func badf(format string, a ...any) error { return badRequest{fmt.Sprintf(format, a...)} }

// params checks a request's query string before any parameter is read
// (limitOffset, timeRange, decodeCursor and r.URL.Query() then see exactly
// what it accepted). Only the names an endpoint takes are accepted, each
// at most once; every value must be valid UTF-8 without NUL or other
// control characters and at most maxParamBytes long (maxCursorBytes for a
// cursor).
func params(r *http.Request, allowed ...string) (url.Values, error) {
	return paramsRaw(r, nil, allowed...)
}

// maxRawParamBytes bounds a parameter taken as raw bytes.
const maxRawParamBytes = 64 << 10

// paramsRaw is params, except that the values of the names in raw may hold
// any bytes (up to maxRawParamBytes): GET /api/rejected/records finds a
// refused record by the device ID as the device sent it, NUL or invalid
// UTF-8 included, and turns it into its stored printable form itself.
func paramsRaw(r *http.Request, raw []string, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest{"the query string does not parse (percent-encode reserved characters)"}
	}
	for name, vs := range q {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return nil, badf("unknown parameter %q: %s takes none", clip(name), r.URL.Path)
			}
			return nil, badf("unknown parameter %q: this endpoint takes %s", clip(name), strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return nil, badf("parameter %s given %d times", name, len(vs))
		}
		if slices.Contains(raw, name) {
			if len(vs[0]) > maxRawParamBytes {
				return nil, badf("%s is %d bytes; at most %d", name, len(vs[0]), maxRawParamBytes)
			}
			continue
		}
		max := maxParamBytes
		if name == "cursor" {
			max = maxCursorBytes
		}
		if err := checkText(name, vs[0], max); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// pathID reads the {id} path value under the same rules as a parameter.
func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := checkText("device id", id, maxParamBytes); err != nil {
		return "", err
	}
	return id, nil
}

// checkText refuses what Postgres cannot compare with a text column (NUL,
// invalid UTF-8) and what no stored value holds (control characters, a
// value beyond max bytes).
func checkText(name, v string, max int) error {
	switch {
	case len(v) > max:
		return badf("%s is %d bytes; at most %d", name, len(v), max)
	case !utf8.ValidString(v):
		return badf("%s is not valid UTF-8", name)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return badf("%s contains control characters", name)
	}
	return nil
}

// clip shortens a name for an error message.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// limitOffset reads limit (1…maxLimit, default defaultLimit) and offset
// (0…maxOffset).
func limitOffset(r *http.Request) (limit, offset int, err error) {
	q := r.URL.Query()
	limit = defaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return 0, 0, badf("limit must be an integer between 1 and %d", maxLimit)
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxOffset {
			return 0, 0, badf("offset must be an integer between 0 and %d (narrow with from/to, or page with cursor where offered)", maxOffset)
		}
		offset = n
	}
	return limit, offset, nil
}

// timeRange reads the from and to parameters (defaults: the Unix epoch
// and the year 9999); from must not be after to.
func timeRange(r *http.Request) (from, to time.Time, err error) {
	q := r.URL.Query()
	if from, err = parseTime(r, "from", time.Unix(0, 0).UTC()); err != nil {
		return from, to, err
	}
	if to, err = parseTime(r, "to", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		return from, to, err
	}
	if q.Get("from") != "" && q.Get("to") != "" && from.After(to) {
		return from, to, badRequest{"from must not be after to"}
	}
	return from, to, nil
}

// parseTime accepts RFC 3339 or Unix seconds between the years 1 and 9999.
func parseTime(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	rangeErr := badf("%s must lie between %s and %s", name, minTime.Format(time.RFC3339), maxTime.Format(time.RFC3339))
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		if t = t.UTC(); t.Before(minTime) || t.After(maxTime) {
			return time.Time{}, rangeErr
		}
		return t, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || n < minTime.Unix() || n > maxTime.Unix() {
			return time.Time{}, rangeErr
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Time{}, badf("%s must be an RFC 3339 time (2026-03-01T10:00:00Z) or Unix seconds", name)
}

// cursor is an opaque keyset position: the sort value and the row's tie
// breaker. It is not signed: every field is checked for its shape before
// it reaches a query, and a client that edits one only moves its own page.
type cursor struct {
	Sort  string `json:"s,omitempty"`
	Value string `json:"v"`
	ID    string `json:"i"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadCursor = badRequest{"cursor is not one this API returned"}

// errNoRecords: the server was built without Deps.Records.
var errNoRecords = errors.New("no rejected records lister")

// decodeCursor reads the cursor parameter: base64url JSON of exactly the
// fields above with text fields that pass checkText. Endpoints check the
// values against their sort order.
func decodeCursor(r *http.Request) (*cursor, error) {
	v := r.URL.Query().Get("cursor")
	if v == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, errBadCursor
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var c cursor
	if err := dec.Decode(&c); err != nil || dec.More() {
		return nil, errBadCursor
	}
	for _, f := range []string{c.Sort, c.Value, c.ID} {
		if checkText("cursor", f, maxParamBytes) != nil {
			return nil, errBadCursor
		}
	}
	return &c, nil
}

// cursorTime reads a time a cursor carries: RFC 3339 as this API writes
// it, or Postgres's ISO text as older versions wrote it.
func cursorTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t, err = time.Parse("2006-01-02 15:04:05.999999-07", v)
	}
	if err != nil || t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, errBadCursor
	}
	return t.UTC(), nil
}

// fail answers an error: 400 with the text of a parameter problem; else a
// generic text (the error itself goes to the log, never to the client:
// it may quote SQL, users or hosts) with 503 when Postgres cannot be
// reached or is overloaded, 500 when it refused the query. The request
// log line (logRequests) names the method and path.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var br badRequest
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, br.msg)
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "request canceled")
	case errors.As(err, &pgErr) && (s.deps.Unavailable == nil || !s.deps.Unavailable(err)):
		s.log.Error("api query failed", "error", err)
		writeError(w, http.StatusInternalServerError, "internal error (details in the server log)")
	default:
		s.log.Error("api query failed", "error", err)
		writeError(w, http.StatusServiceUnavailable, "database unavailable")
	}
}
