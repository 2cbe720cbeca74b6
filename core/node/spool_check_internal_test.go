package node

import (
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/spool"
)

func TestSpoolCheckReportsDeadSegments(t *testing.T) {
	for _, tc := range []struct {
		name   string
		st     spool.Stats
		status string
		detail string
	}{
		{"empty", spool.Stats{}, integrity.StatusOK, "empty"},
		{"empty but dead/ holds segments", spool.Stats{DeadBacklog: 2}, integrity.StatusWarn, "2 undecodable segments in dead/"},
		{"backlog and dead", spool.Stats{Signals: 5, Records: 1, DeadBacklog: 1}, integrity.StatusWarn, "1 undecodable segments in dead/"},
		{"full", spool.Stats{Full: true, Bytes: 10, MaxBytes: 10}, integrity.StatusFail, "full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, detail := spoolCheck(tc.st)
			if status != tc.status || !strings.Contains(detail, tc.detail) {
				t.Fatalf("spoolCheck = %s %q, want %s containing %q", status, detail, tc.status, tc.detail)
			}
		})
	}
}
