package wasmdecoder

import (
	"errors"
	"sync"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

// TestHammer: sessions on many goroutines share a pool of 2 instances
// while other goroutines make the guest trap: every good frame decodes,
// every bad one fails alone.
func TestHammer(t *testing.T) {
	h := newHost(t, Config{Budget: testBudget, PoolSize: 2, MaxFailures: 1 << 30})
	m, err := loadGuest(t, h, guest{decode: "(unreachable)"})
	if err != nil {
		t.Fatal(err)
	}
	const workers, frames = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*frames)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP})
			for i := range frames {
				if w%2 == 1 && i%3 == 0 {
					if _, err := sess.Decode([]byte("x"), recvT); !errors.Is(err, ErrTrap) {
						errs <- err
					}
					continue
				}
				res, err := sess.Decode(goodFrame, recvT)
				if err != nil || len(res.Signals) != 1 || res.Signals[0].DeviceID != "dev1" {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected: %v", err)
	}
	if st := m.Stats(); st.Errors["trap"] != 4*14 {
		t.Errorf("stats %+v, want %d traps", st, 4*14)
	}
}
