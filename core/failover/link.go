package failover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fleetcore/fleetcore/core/config"
)

// ErrUnavailable: the broker is not connected and the next reconnect
// attempt is not due yet (backoff), so the write is refused at once and
// ingest moves on to the next tier.
var ErrUnavailable = errors.New("rabbitmq unavailable")

// session is one connection and one confirm-mode channel on it.
type session struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return

	mu       sync.Mutex
	returned map[string]string // message id -> reply text
}

// wasReturned reports whether the broker returned message id (unroutable).
// It must be called after the message's confirm arrived: the broker sends
// basic.return before the basic.ack of the same message, and the client
// hands returns to the channel before it resolves the confirm, so by then
// the return (if any) is either in the channel or already in the map.
func (s *session) wasReturned(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		select {
		case r, ok := <-s.returns:
			if !ok {
				goto check
			}
			s.returned[r.MessageId] = fmt.Sprintf("%d %s", r.ReplyCode, r.ReplyText)
			continue
		default:
		}
		break
	}
check:
	why, ok := s.returned[id]
	delete(s.returned, id)
	return why, ok
}

// link keeps one session alive: it connects on demand, reconnects with
// exponential backoff after the connection or channel closes (the client
// library does not reconnect by itself), and declares the topology on
// every new connection.
type link struct {
	role string
	opt  *Options
	log  hclog.Logger
	// setup declares the topology on a fresh session.
	setup func(s *session) error

	mu      sync.Mutex
	cur     *session
	backoff time.Duration
	nextTry time.Time
	down    bool
	dialing bool
	lastErr error
	closed  bool

	connects, failures atomic.Uint64
}

func newLink(role string, opt *Options, log hclog.Logger, setup func(*session) error) *link {
	return &link{role: role, opt: opt, log: log, setup: setup}
}

// get returns the live session, connecting if one is due.
func (l *link) get() (*session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("%w: closed", ErrUnavailable)
	}
	if s := l.cur; s != nil && !s.ch.IsClosed() && !s.conn.IsClosed() {
		return s, nil
	}
	if l.cur != nil {
		l.dropLocked(errors.New("channel closed"))
	}
	if wait := time.Until(l.nextTry); wait > 0 {
		return nil, fmt.Errorf("%w: reconnecting in %v (last error: %v)", ErrUnavailable, wait.Round(time.Millisecond), l.lastErr)
	}
	if l.dialing {
		// Another writer is connecting; do not queue behind a dial that
		// may take the whole dial timeout.
		return nil, fmt.Errorf("%w: connecting", ErrUnavailable)
	}
	l.dialing = true
	l.mu.Unlock()
	s, err := l.dial()
	l.mu.Lock()
	l.dialing = false
	if err == nil && l.closed {
		s.conn.Close()
		return nil, fmt.Errorf("%w: closed", ErrUnavailable)
	}
	if err != nil {
		l.failures.Add(1)
		l.lastErr = err
		if l.backoff == 0 {
			l.backoff = l.opt.ReconnectMin
		} else {
			l.backoff = min(2*l.backoff, l.opt.ReconnectMax)
		}
		l.nextTry = time.Now().Add(l.backoff)
		if !l.down {
			l.down = true
			l.log.Warn("rabbitmq unreachable; retrying with backoff", "link", l.role, "error", err)
		}
		return nil, fmt.Errorf("connecting to rabbitmq: %w", err)
	}
	l.connects.Add(1)
	l.cur, l.backoff, l.nextTry, l.lastErr = s, 0, time.Time{}, nil
	if l.down || l.connects.Load() == 1 {
		l.log.Info("rabbitmq connected", "link", l.role, "queue", l.opt.Queue)
	}
	l.down = false
	return s, nil
}

func (l *link) dial() (*session, error) {
	conn, err := amqp.DialConfig(l.opt.URL, amqp.Config{
		Heartbeat:  5 * time.Second,
		Dial:       amqp.DefaultDial(l.opt.DialTimeout),
		Properties: amqp.Table{"connection_name": "fleetcore " + l.role},
	})
	if err != nil {
		// The client quotes a URL it cannot parse, password included; this
		// error is logged, kept as lastErr and returned on every retry.
		return nil, config.RedactError(err, l.opt.URL)
	}
	s, err := openSession(conn, l.opt.Window+16)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := l.setup(s); err != nil {
		conn.Close()
		return nil, err
	}
	// Watch the connection so a broken one is noticed (and logged) even
	// when nothing is being written.
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		if e, ok := <-closes; ok && e != nil {
			l.mu.Lock()
			if l.cur == s {
				l.dropLocked(e)
			}
			l.mu.Unlock()
		}
	}()
	return s, nil
}

// openSession opens a confirm-mode channel on conn. returns must hold
// every return that can arrive before a waiter drains them: more than the
// publishes that can be in flight.
func openSession(conn *amqp.Connection, returns int) (*session, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("opening channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("enabling publisher confirms: %w", err)
	}
	s := &session{conn: conn, ch: ch, returned: map[string]string{}}
	s.returns = ch.NotifyReturn(make(chan amqp.Return, returns))
	return s, nil
}

// reopen replaces a session's channel after the broker closed it (a
// refused declaration closes the channel, not the connection).
func (s *session) reopen() error {
	n, err := openSession(s.conn, cap(s.returns))
	if err != nil {
		return err
	}
	s.ch, s.returns = n.ch, n.returns
	return nil
}

func (l *link) dropLocked(cause error) {
	if l.cur == nil {
		return
	}
	l.cur.conn.Close()
	l.cur = nil
	l.backoff = l.opt.ReconnectMin
	l.nextTry = time.Now().Add(l.backoff)
	l.lastErr = cause
	if !l.down {
		l.down = true
		l.log.Warn("rabbitmq connection lost; reconnecting with backoff", "link", l.role, "error", cause)
	}
}

// broken drops the session s if it is still current (after a publish or
// confirm failure that leaves its state unknown).
func (l *link) broken(s *session, cause error) {
	l.mu.Lock()
	if l.cur == s {
		l.dropLocked(cause)
	}
	l.mu.Unlock()
}

func (l *link) connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur != nil && !l.cur.conn.IsClosed()
}

func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.cur != nil {
		l.cur.conn.Close()
		l.cur = nil
	}
}

// publish sends one persistent, mandatory message on s and waits for the
// broker's confirm. It returns nil only on an ack for this message that
// was not preceded by a return.
func publish(ctx context.Context, s *session, queue string, msg amqp.Publishing, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dc, err := s.ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, msg)
	if err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	if dc == nil {
		return errors.New("publishing: channel not in confirm mode")
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the broker's confirm: %w", errConfirmTimeout, ctx.Err())
	}
	if !dc.Acked() {
		if s.ch.IsClosed() {
			return errors.New("channel closed before the broker confirmed")
		}
		return errNacked
	}
	if why, ok := s.wasReturned(msg.MessageId); ok {
		return fmt.Errorf("%w: %s", errReturned, why)
	}
	return nil
}

var (
	errConfirmTimeout = errors.New("confirm timed out")
	errNacked         = errors.New("broker nacked the message")
	errReturned       = errors.New("broker returned the message as unroutable")
)
