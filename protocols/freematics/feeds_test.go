package freematics

import (
	"fmt"
	"sync"
	"testing"
)

func TestFeedTableBounds(t *testing.T) {
	t.Run("per source: the source's least recently used goes first", func(t *testing.T) {
		tb := &feedTable{max: 100, perSource: 3}
		a1, _ := tb.assign("a1", "A", "")
		tb.assign("a2", "A", "")
		tb.assign("a3", "A", "")
		b1, _ := tb.assign("b1", "B", "")
		if _, ok := tb.lookup(a1, "A", ""); !ok { // a1 used: a2 is now the idlest of A
			t.Fatal("a1 not found")
		}
		tb.assign("a4", "A", "")
		if _, ok := tb.byDev["a2"]; ok {
			t.Error("a2 (idlest of A) kept")
		}
		for _, dev := range []string{"a1", "a3", "a4", "b1"} {
			if _, ok := tb.byDev[dev]; !ok {
				t.Errorf("%s evicted", dev)
			}
		}
		if got, ok := tb.lookup(b1, "B", ""); !ok || got != "b1" {
			t.Errorf("b1's feed resolves to %q, %v", got, ok)
		}
	})
	t.Run("global: the least recently used goes first", func(t *testing.T) {
		tb := &feedTable{max: 4, perSource: 100}
		for i := range 4 {
			tb.assign(fmt.Sprint("d", i), fmt.Sprint("S", i), "")
		}
		tb.assign("d0", "S0", "") // used again
		tb.assign("d4", "S4", "")
		if _, ok := tb.byDev["d1"]; ok {
			t.Error("d1 (idlest) kept")
		}
		if tb.len() != 4 {
			t.Errorf("%d entries, max 4", tb.len())
		}
	})
	t.Run("an id in use is never handed out again", func(t *testing.T) {
		tb := &feedTable{max: feedIDs, perSource: 2}
		held, _ := tb.assign("good", "G", "")
		for i := range 3 * feedIDs {
			id, err := tb.assign(fmt.Sprint("flood", i), "F", "")
			if err != nil {
				t.Fatal(err)
			}
			if id == held {
				t.Fatalf("flood login %d got the held id %X", i, held)
			}
		}
		if got, ok := tb.lookup(held, "G", ""); !ok || got != "good" {
			t.Errorf("held id resolves to %q, %v", got, ok)
		}
	})
	t.Run("a device moving to another address counts there", func(t *testing.T) {
		tb := &feedTable{max: 100, perSource: 2}
		id, _ := tb.assign("m", "A", "")
		tb.assign("m", "B", "")
		if _, ok := tb.lookup(id, "A", ""); ok {
			t.Error("the old address still resolves the feed")
		}
		if tb.sources["A"] != nil {
			t.Error("the old address still counts the device")
		}
		if got, ok := tb.lookup(id, "B", ""); !ok || got != "m" {
			t.Errorf("new address: %q, %v", got, ok)
		}
	})
}

// TestFeedTableHammer logs devices in and resolves their feeds from many
// goroutines at once (run with -race).
func TestFeedTableHammer(t *testing.T) {
	d := &Decoder{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip := fmt.Sprintf("198.51.100.%d", w+1)
			for i := range 500 {
				dev := fmt.Sprintf("W%02dDEV%04d", w, i)
				res, err := udpSession(d, ip, 1000+i, nil).Decode(withChecksum("0#EV=1,TS=1,ID="+dev), recv)
				if err != nil {
					errs <- err
					return
				}
				var feed uint16
				fmt.Sscanf(string(res.Ack), "%X#", &feed)
				res, err = udpSession(d, ip, 30000+i, nil).Decode(withChecksum(fmt.Sprintf("%X#0:2,24:1250", feed)), recv)
				if err != nil || len(res.Signals) != 1 || res.Signals[0].DeviceID != dev {
					errs <- fmt.Errorf("%s by feed %X: %+v, %v", dev, feed, res.Signals, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
