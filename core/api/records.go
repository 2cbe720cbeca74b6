package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/fleetcore/fleetcore/signal"
)

// RejectedFilter selects rejected_records rows (the fields of
// store.RejectedFilter, so one converts to the other).
type RejectedFilter struct {
	DeviceID string // "" any; else the device ID as the client sent it (the lister makes it the stored, printable form)
	Acked    *bool  // nil any
	Limit    int    // rows; at most MaxRejectedLimit
	Offset   int
}

// MaxRejectedLimit is the most rows one listing returns (store.MaxRejectedLimit).
const MaxRejectedLimit = 1000

// RejectedRow is one rejected_records row as the store reads it (the
// fields of store.RejectedRow, so one converts to the other). Signal is
// the decoded record (DecodeErr says why when it could not be decoded).
type RejectedRow struct {
	ID          int64
	FirstAt     time.Time
	LastAt      time.Time
	Seen        int64
	DeviceID    string // printable form
	DeviceIDLen int    // bytes of the original device ID
	TS          *time.Time
	Protocol    string
	Path        string
	Acked       bool
	SQLState    string
	Reason      string
	Signal      *signal.Signal
	DecodeErr   string
}

// RecordLister lists rejected_records: fn is called for each row f
// selects, newest first, one at a time; an error from fn stops the
// listing and is returned.
type RecordLister interface {
	RejectedRecords(ctx context.Context, f RejectedFilter, fn func(RejectedRow) error) error
}

// RejectedRecord is one row of GET /api/rejected/records: a record
// Postgres refused for its data, kept in rejected_records.
type RejectedRecord struct {
	ID          int64      `json:"id"`
	FirstAt     time.Time  `json:"first_at"`
	LastAt      time.Time  `json:"last_at"`
	Seen        int64      `json:"seen"` // times refused (resends, replays)
	DeviceID    string     `json:"device_id"`
	DeviceIDLen int        `json:"device_id_len"` // bytes of the original device ID
	TS          *time.Time `json:"ts,omitempty"`
	Protocol    string     `json:"protocol"`
	Path        string     `json:"path"`  // direct, failover, spool
	Acked       bool       `json:"acked"` // the device was acked for it
	SQLState    string     `json:"sqlstate"`
	Reason      string     `json:"reason"`
	// Record is the whole record in canonical JSON (signal); absent
	// when it could not be decoded (RecordError says why).
	Record      *signal.JSON `json:"record,omitempty"`
	FrameBytes  int          `json:"frame_bytes"`
	RecordError string       `json:"record_error,omitempty"`
}

// rejectedRecordsParams reads device, acked, limit (1–1000, default 100)
// and offset, refusing unknown or repeated parameters like every endpoint.
func rejectedRecordsParams(r *http.Request) (RejectedFilter, error) {
	q, err := paramsRaw(r, []string{"device"}, "device", "acked", "limit", "offset")
	if err != nil {
		return RejectedFilter{}, err
	}
	limit, offset, err := limitOffset(r)
	if err != nil {
		return RejectedFilter{}, err
	}
	f := RejectedFilter{Limit: min(limit, MaxRejectedLimit), Offset: offset, DeviceID: q.Get("device")}
	if v := q.Get("acked"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, badRequest{"acked must be true or false"}
		}
		f.Acked = &b
	}
	return f, nil
}

// rejectedRecords serves GET /api/rejected/records, newest first. Rows
// are streamed as they are read: the response is never built in memory.
// An error after the first row ends the list with an "error" member.
func (s *Server) rejectedRecords(w http.ResponseWriter, r *http.Request) {
	f, err := rejectedRecordsParams(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	started := false
	start := func() {
		if started {
			return
		}
		started = true
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		bw.WriteString(`{"records":[`)
	}
	enc := json.NewEncoder(bw)
	n := 0
	if s.deps.Records == nil {
		s.fail(w, errNoRecords)
		return
	}
	err = s.deps.Records.RejectedRecords(r.Context(), f, func(row RejectedRow) error {
		start()
		x := RejectedRecord{
			ID: row.ID, FirstAt: row.FirstAt.UTC(), LastAt: row.LastAt.UTC(), Seen: row.Seen,
			DeviceID: row.DeviceID, DeviceIDLen: row.DeviceIDLen, Protocol: row.Protocol, Path: row.Path,
			Acked: row.Acked, SQLState: row.SQLState, Reason: row.Reason, RecordError: row.DecodeErr,
		}
		if row.TS != nil {
			t := row.TS.UTC()
			x.TS = &t
		}
		if row.Signal != nil {
			j := row.Signal.ToJSON()
			x.Record, x.FrameBytes = &j, len(row.Signal.Frame)
		}
		if n > 0 {
			bw.WriteByte(',')
		}
		n++
		if err := enc.Encode(x); err != nil {
			return fmt.Errorf("encoding rejected record %d: %w", row.ID, err)
		}
		return nil
	})
	if err != nil && !started {
		s.fail(w, err)
		return
	}
	start()
	bw.WriteString(`],"limit":` + strconv.Itoa(f.Limit) + `,"offset":` + strconv.Itoa(f.Offset))
	if err != nil {
		s.log.Error("listing rejected records stopped", "error", err)
		msg, _ := json.Marshal("listing stopped after " + strconv.Itoa(n) + " rows")
		bw.WriteString(`,"error":` + string(msg))
	}
	bw.WriteString("}\n")
	bw.Flush() //nolint:errcheck // the client went away
}
