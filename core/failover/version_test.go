package failover

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

// TestIntegrationDrainsMessagesOfTheVersion1Codec: a message an older
// build published (testdata/batch_v1.hex: batch("old", 0, 3) in the
// version 1 codec, before decoder_version, with its codec header 1) is
// still replayed after an upgrade, its signals without a decoder version,
// next to a message written now, whose signals keep theirs.
func TestIntegrationDrainsMessagesOfTheVersion1Codec(t *testing.T) {
	testenv.Integration(t)
	text, err := os.ReadFile("testdata/batch_v1.hex")
	if err != nil {
		t.Fatal(err)
	}
	v1, err := hex.DecodeString(string(bytes.TrimSpace(text)))
	if err != nil || len(v1) < 4 || v1[3] != 1 {
		t.Fatalf("fixture is not a version 1 batch (%v)", err)
	}
	url := testenv.VHost(t)
	b := testBroker(t, url, nil)
	ctx := context.Background()
	ch := rawConn(t, url)
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(ctx, "", "fc.failover", false, false, amqp.Publishing{
		ContentType: ContentType, DeliveryMode: amqp.Persistent, MessageId: "old-1",
		Headers: amqp.Table{HeaderCodec: int32(1), HeaderSignals: int64(3)}, Body: v1,
	}); err != nil {
		t.Fatal(err)
	}
	now := batch("new", 0, 2)
	for i := range now {
		now[i].DecoderVersion = "1.2.0+sha256:abcdef123456"
	}
	if err := b.Write(ctx, now); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	versions := map[string]string{} // device/seq -> decoder version
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		res, err := b.Drain(ctx, func(_ context.Context, sigs []signal.Signal) error {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range sigs {
				if s.Path != signal.PathFailover {
					t.Errorf("path %q", s.Path)
				}
				versions[s.DeviceID+"/"+s.TS.Format(time.TimeOnly)] = s.DecoderVersion
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.DeadLettered > 0 {
			t.Fatalf("drain dead-lettered %d messages: the version 1 message was not read", res.DeadLettered)
		}
		mu.Lock()
		n := len(versions)
		mu.Unlock()
		if n == 5 {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]string{
		"old/00:00:00": "", "old/00:00:01": "", "old/00:00:02": "",
		"new/00:00:00": now[0].DecoderVersion, "new/00:00:01": now[0].DecoderVersion,
	}
	if len(versions) != len(want) {
		t.Fatalf("drained %v, want %v", versions, want)
	}
	for k, v := range want {
		if got, ok := versions[k]; !ok || got != v {
			t.Errorf("%s: decoder version %q (drained: %v), want %q", k, got, ok, v)
		}
	}
}
