package spool

import (
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/core/health"
)

func TestSpoolCheckReportsDeadSegments(t *testing.T) {
	for _, tc := range []struct {
		name   string
		st     Stats
		status string
		detail string
	}{
		{"empty", Stats{}, health.StatusOK, "empty"},
		{"empty but dead/ holds segments", Stats{DeadBacklog: 2}, health.StatusWarn, "2 undecodable segments in dead/"},
		{"backlog and dead", Stats{Signals: 5, Records: 1, DeadBacklog: 1}, health.StatusWarn, "1 undecodable segments in dead/"},
		{"full", Stats{Full: true, Bytes: 10, MaxBytes: 10}, health.StatusFail, "full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, detail := check(tc.st)
			if status != tc.status || !strings.Contains(detail, tc.detail) {
				t.Fatalf("check = %s %q, want %s containing %q", status, detail, tc.status, tc.detail)
			}
		})
	}
}
