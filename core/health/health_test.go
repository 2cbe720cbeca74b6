package health

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestHealthLogsOnlyStateChanges(t *testing.T) {
	var buf bytes.Buffer
	h := New(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info}), time.Second)
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
