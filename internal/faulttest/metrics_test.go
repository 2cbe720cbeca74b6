package faulttest

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metric sums the samples of a Prometheus metric on the node's /metrics
// whose labels contain every one of labels (e.g. `acked="true"`); ok is
// false when the metric is not exposed at all.
func (r *running) metric(t *testing.T, name string, labels ...string) (sum float64, ok bool) {
	t.Helper()
	addr := r.n.APIAddr()
	if addr == nil {
		t.Fatal("the node's API is disabled: no /metrics")
	}
	return metricAt(t, addr.String(), name, labels...)
}

// metricAt is metric for the node whose API listens on addr (host:port).
func metricAt(t *testing.T, addr, name string, labels ...string) (sum float64, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("reading /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, value, found := strings.Cut(line, " ")
		if !found || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		if !match {
			continue
		}
		ok = true
		if v, err := strconv.ParseFloat(strings.Fields(value)[0], 64); err == nil {
			sum += v
		}
	}
	return sum, ok
}
