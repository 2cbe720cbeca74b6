package amqplink

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// An unreachable broker: the first Get dials and fails, the ones during
// the backoff fail at once with ErrUnavailable, the backoff doubles up to
// ReconnectMax, and no error carries the URL's password.
func TestLinkBacksOffAndRedacts(t *testing.T) {
	l := New(Options{URL: "amqp://fleet:s3cret-pw@127.0.0.1:1/", Name: "test",
		DialTimeout: time.Second, ReconnectMin: time.Hour, ReconnectMax: 2 * time.Hour}, nil)
	defer l.Close()
	_, err := l.Get()
	if err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("first Get: %v, want a connection error", err)
	}
	for i := 0; i < 3; i++ {
		_, err := l.Get()
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get during backoff: %v, want ErrUnavailable", err)
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Fatalf("error carries the password: %v", err)
		}
	}
	if l.Failures() != 1 || l.Connects() != 0 || l.Connected() || l.Due() {
		t.Fatalf("failures %d connects %d connected %v due %v", l.Failures(), l.Connects(), l.Connected(), l.Due())
	}
	l.mu.Lock()
	l.nextTry = time.Time{} // the backoff is over
	l.mu.Unlock()
	if _, err := l.Get(); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get after the backoff: %v, want a new attempt", err)
	}
	l.mu.Lock()
	backoff := l.backoff
	l.mu.Unlock()
	if l.Failures() != 2 || backoff != 2*time.Hour {
		t.Fatalf("failures %d backoff %v, want 2 and the doubled backoff", l.Failures(), backoff)
	}
	l.Close()
	if _, err := l.Get(); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Get after Close: %v", err)
	}
}
