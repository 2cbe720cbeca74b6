package plugins

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestServerTimesStamp(t *testing.T) {
	tests := []struct {
		name string
		// second receipt
		device string
		fp     string
		at     time.Duration // after the first
		same   bool          // gets the first receipt's time
	}{
		{"resend within the window", "dev1", "frame-a", 90 * time.Second, true},
		{"resend at the end of the window", "dev1", "frame-a", DefaultResendWindow, true},
		{"resend after the window", "dev1", "frame-a", DefaultResendWindow + time.Second, false},
		{"another frame of the device", "dev1", "frame-b", time.Second, false},
		{"the same frame of another device", "dev2", "frame-a", time.Second, false},
		{"device and fingerprint do not run together", "dev1f", "rame-a", time.Second, false},
		{"stamped after its resend (concurrent sessions)", "dev1", "frame-a", -time.Second, true},
		{"receive clock went back beyond the window", "dev1", "frame-a", -DefaultResendWindow - time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c ServerTimes
			if got := c.Stamp("dev1", []byte("frame-a"), t0); !got.Equal(t0) {
				t.Fatalf("first receipt stamped %v, want the receive time %v", got, t0)
			}
			recv := t0.Add(tt.at)
			got := c.Stamp(tt.device, []byte(tt.fp), recv)
			want := recv
			if tt.same {
				want = t0
			}
			if !got.Equal(want) {
				t.Errorf("second receipt stamped %v, want %v", got, want)
			}
		})
	}
}

func TestServerTimesNewMessageAfterWindowIsRemembered(t *testing.T) {
	c := NewServerTimes(0, time.Minute)
	c.Stamp("d", []byte("x"), t0)
	second := t0.Add(2 * time.Minute)
	if got := c.Stamp("d", []byte("x"), second); !got.Equal(second) {
		t.Fatalf("after the window: %v, want %v", got, second)
	}
	// A resend of the second message gets the second's time, not the
	// first's.
	if got := c.Stamp("d", []byte("x"), second.Add(30*time.Second)); !got.Equal(second) {
		t.Errorf("resend of the second message: %v, want %v", got, second)
	}
}

func TestServerTimesBounded(t *testing.T) {
	c := NewServerTimes(100, time.Hour)
	long := strings.Repeat("x", 50<<10)
	for i := range 1000 {
		c.Stamp(long+fmt.Sprint(i), []byte(long), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if n := c.Len(); n != 100 {
		t.Fatalf("%d entries remembered, cap 100", n)
	}
	// The newest are kept, the oldest forgotten.
	newest := t0.Add(999 * time.Millisecond)
	if got := c.Stamp(long+"999", []byte(long), t0.Add(time.Second)); !got.Equal(newest) {
		t.Errorf("newest entry: %v, want %v", got, newest)
	}
	at := t0.Add(time.Second)
	if got := c.Stamp(long+"0", []byte(long), at); !got.Equal(at) {
		t.Errorf("oldest entry was kept: %v", got)
	}
}

func TestServerTimesExpire(t *testing.T) {
	c := NewServerTimes(0, time.Minute)
	for i := range 500 {
		c.Stamp(fmt.Sprint("d", i), nil, t0)
	}
	c.Stamp("late", nil, t0.Add(2*time.Minute))
	if n := c.Len(); n != 1 {
		t.Errorf("%d entries after the window passed, want 1", n)
	}
}

// TestServerTimesHammer stamps from many goroutines at once (run with
// -race): every goroutine resending the same frames must see one time per
// frame.
func TestServerTimesHammer(t *testing.T) {
	c := NewServerTimes(1<<12, time.Hour)
	const workers, frames = 8, 2000
	results := make([][]time.Time, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]time.Time, frames)
			for i := range frames {
				recv := t0.Add(time.Duration(w*frames+i) * time.Microsecond)
				out[i] = c.Stamp(fmt.Sprint("dev", i%7), []byte(fmt.Sprint("frame", i)), recv)
				if i%97 == 0 {
					_ = c.Len()
				}
			}
			results[w] = out
		}()
	}
	wg.Wait()
	// Fewer distinct frames than the cap, all within the window: none is
	// forgotten, so every worker got the first receipt's time.
	for i := range frames {
		for w := 1; w < workers; w++ {
			if !results[w][i].Equal(results[0][i]) {
				t.Fatalf("frame %d: worker %d got %v, worker 0 %v", i, w, results[w][i], results[0][i])
			}
		}
	}
	if n := c.Len(); n > 1<<12 {
		t.Errorf("%d entries, cap %d", n, 1<<12)
	}
}
