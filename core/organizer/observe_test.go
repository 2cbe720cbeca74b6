package organizer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/health"
)

func TestOrganizerProbe(t *testing.T) {
	o := New(hclog.NewNullLogger(), 1)
	fail := true
	o.Add(Job{Name: "score", Interval: time.Hour, Run: func(context.Context) error {
		if fail {
			return context.DeadlineExceeded
		}
		return nil
	}})
	ctx := context.Background()
	o.RunNow(ctx, "score") //nolint:errcheck // the failure is what is tested
	now := time.Now()
	p := o.Checker(func() time.Time { return now })
	if s, d := p.Check(ctx); s != health.StatusWarn || !strings.Contains(d, "failing jobs: score") {
		t.Fatalf("%s %s", s, d)
	}
	fail = false
	if err := o.RunNow(ctx, "score"); err != nil {
		t.Fatal(err)
	}
	if s, d := p.Check(ctx); s != health.StatusOK {
		t.Fatalf("%s %s", s, d)
	}
	now = now.Add(4 * time.Hour)
	if s, d := p.Check(ctx); s != health.StatusWarn || !strings.Contains(d, "lagging jobs: score: last success 3h59m") {
		t.Fatalf("%s %s", s, d)
	}
}
