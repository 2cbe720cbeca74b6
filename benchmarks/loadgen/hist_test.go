package loadgen

import (
	"testing"
	"time"
)

func TestLatencyQuantiles(t *testing.T) {
	var l Latency
	for i := 1; i <= 1000; i++ {
		l.Observe(time.Duration(i) * time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, 1000 * time.Millisecond}}
	for _, tc := range tests {
		got := l.Quantile(tc.q)
		// Buckets are 4 % wide: the answer is an upper bound within 4 %.
		if got < tc.want || float64(got) > float64(tc.want)*1.04 {
			t.Errorf("q%.2f = %v, want %v..+4%%", tc.q, got, tc.want)
		}
	}
	var m Latency
	m.Observe(5 * time.Second)
	l.Merge(&m)
	if l.Count() != 1001 || l.Max() != 5*time.Second {
		t.Errorf("after merge: count %d max %v", l.Count(), l.Max())
	}
	var empty Latency
	if empty.Quantile(0.5) != 0 {
		t.Errorf("empty quantile = %v", empty.Quantile(0.5))
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		in      string
		want    []Share
		wantErr bool
	}{
		{"teltonika", []Share{{"teltonika", 1}}, false},
		{"teltonika=6, gt06=2,osmand=0", []Share{{"teltonika", 6}, {"gt06", 2}}, false},
		{"nosuch=1", nil, true},
		{"teltonika=x", nil, true},
		{"teltonika=0", nil, true},
	}
	for _, tc := range tests {
		got, err := ParseMix(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseMix(%q) error %v", tc.in, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("ParseMix(%q) = %v, want %v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("ParseMix(%q) = %v, want %v", tc.in, got, tc.want)
			}
		}
	}
}
