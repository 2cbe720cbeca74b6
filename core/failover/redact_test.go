package failover

import (
	"bytes"
	"context"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/internal/testenv"
)

// syncBuffer is a log sink that tests read while the broker writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestIntegrationReconnectHidesThePassword makes the publish and replay
// links fail to connect several times (a URL the client cannot parse, a
// wrong password on a real vhost, a closed port) and checks that neither
// the log nor any returned error quotes the password.
func TestIntegrationReconnectHidesThePassword(t *testing.T) {
	testenv.Integration(t)
	const pw = "s3cr3tPW"
	vhost, err := url.Parse(testenv.VHost(t))
	if err != nil {
		t.Fatal(err)
	}
	wrong := *vhost
	wrong.User = url.UserPassword(vhost.User.Username(), pw)
	cases := []struct{ name, url string }{
		{"unescaped slash", "amqp://guest:s3cr/3tPW@127.0.0.1:5672/"},
		{"bad port", "amqp://guest:" + pw + "@127.0.0.1:56x2/"},
		{"bad escape", "amqp://guest:" + pw + "%zz@127.0.0.1:5672/"},
		{"wrong password", wrong.String()},
		{"closed port", "amqp://guest:" + pw + "@127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			log := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs})
			o := Options{URL: tc.url, Queue: "fc.failover", DeadLetter: "fc.failover.dead", ConfirmTimeout: time.Second,
				DialTimeout: 2 * time.Second, ReconnectMin: time.Millisecond, ReconnectMax: 2 * time.Millisecond}
			b, err := New(o, log)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			var errs []string
			ctx := context.Background()
			deadline := time.Now().Add(20 * time.Second)
			for b.pub.Failures() < 2 || b.con.Failures() < 2 {
				if time.Now().After(deadline) {
					t.Fatalf("only %d/%d failed connects", b.pub.Failures(), b.con.Failures())
				}
				if err := b.Write(ctx, batch("dev", 0, 1)); err != nil {
					errs = append(errs, err.Error())
				} else {
					t.Fatal("write succeeded")
				}
				if _, err := b.Drain(ctx, (&collector{}).handle); err != nil {
					errs = append(errs, err.Error())
				}
				if err := b.Refresh(ctx); err != nil {
					errs = append(errs, err.Error())
				}
				time.Sleep(time.Millisecond) // let the backoff pass; the loop ends on the failure counts
			}
			if len(errs) == 0 || !strings.Contains(logs.String(), "rabbitmq unreachable") {
				t.Fatalf("no errors or no log line:\n%s", logs)
			}
			all := strings.Join(errs, "\n") + "\n" + logs.String()
			for _, frag := range []string{pw, "s3cr", "3tPW"} {
				if strings.Contains(all, frag) {
					t.Fatalf("password fragment %q in errors or logs:\n%s", frag, all)
				}
			}
		})
	}
}
