package integrity

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/organizer"
)

func TestHealthLogsOnlyStateChanges(t *testing.T) {
	var buf bytes.Buffer
	h := NewHealth(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info}), time.Second)
	status := StatusOK
	h.Add(Probe{Name: "postgres", Check: func(context.Context) (string, string) { return status, "detail " + status }})
	h.Add(Probe{Name: "panicky", Check: func(context.Context) (string, string) { panic("boom") }})
	ctx := context.Background()
	for _, s := range []string{StatusOK, StatusOK, StatusFail, StatusFail, StatusOK} {
		status = s
		err := h.Run(ctx)
		if err == nil || !strings.Contains(err.Error(), "panicky: check panicked: boom") {
			t.Fatalf("run error %v", err)
		}
	}
	logs := buf.String()
	if n := strings.Count(logs, "service check failing: check=postgres"); n != 1 {
		t.Errorf("postgres failure logged %d times:\n%s", n, logs)
	}
	if n := strings.Count(logs, "service check recovered: check=postgres"); n != 1 {
		t.Errorf("recovery logged %d times:\n%s", n, logs)
	}
	if n := strings.Count(logs, "check=panicky"); n != 1 {
		t.Errorf("panicking check logged %d times:\n%s", n, logs)
	}
	rs := h.Results()
	if len(rs) != 2 || rs[0].Name != "panicky" || rs[1].Status != StatusOK || rs[1].Detail != "detail ok" {
		t.Fatalf("results %+v", rs)
	}
}

func TestOrganizerProbe(t *testing.T) {
	o := organizer.New(hclog.NewNullLogger(), 1)
	fail := true
	o.Add(organizer.Job{Name: "score", Interval: time.Hour, Run: func(context.Context) error {
		if fail {
			return context.DeadlineExceeded
		}
		return nil
	}})
	ctx := context.Background()
	o.RunNow(ctx, "score") //nolint:errcheck // the failure is what is tested
	now := time.Now()
	p := OrganizerProbe(o, func() time.Time { return now })
	if s, d := p.Check(ctx); s != StatusWarn || !strings.Contains(d, "failing jobs: score") {
		t.Fatalf("%s %s", s, d)
	}
	fail = false
	if err := o.RunNow(ctx, "score"); err != nil {
		t.Fatal(err)
	}
	if s, d := p.Check(ctx); s != StatusOK {
		t.Fatalf("%s %s", s, d)
	}
	now = now.Add(4 * time.Hour)
	if s, d := p.Check(ctx); s != StatusWarn || !strings.Contains(d, "lagging jobs: score: last success 3h59m") {
		t.Fatalf("%s %s", s, d)
	}
}
