package amqplink

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
// the caller moves on (ingest to the next tier, alerts to the next round).
var ErrUnavailable = errors.New("rabbitmq unavailable")

// Session is one connection and one confirm-mode channel on it.
type Session struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return

	mu       sync.Mutex
	returned map[string]string // message id -> reply text
}

// Channel is the session's confirm-mode channel.
func (s *Session) Channel() *amqp.Channel { return s.ch }

// Conn is the session's connection (for channels of the caller's own,
// e.g. a consumer's: OpenSession).
func (s *Session) Conn() *amqp.Connection { return s.conn }

// Returned reports whether the broker returned message id (unroutable).
// It must be called after the message's confirm arrived: the broker sends
// basic.return before the basic.ack of the same message, and the client
// hands returns to the channel before it resolves the confirm, so by then
// the return (if any) is either in the channel or already in the map.
func (s *Session) Returned(id string) (string, bool) {
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

// OpenSession opens a confirm-mode channel on conn. returns must hold
// every return that can arrive before a waiter drains them: more than the
// mandatory publishes that can be in flight.
func OpenSession(conn *amqp.Connection, returns int) (*Session, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("opening channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("enabling publisher confirms: %w", err)
	}
	s := &Session{conn: conn, ch: ch, returned: map[string]string{}}
	s.returns = ch.NotifyReturn(make(chan amqp.Return, max(returns, 1)))
	return s, nil
}

// Reopen replaces a session's channel after the broker closed it (a
// refused declaration closes the channel, not the connection).
func (s *Session) Reopen() error {
	n, err := OpenSession(s.conn, cap(s.returns))
	if err != nil {
		return err
	}
	s.ch, s.returns = n.ch, n.returns
	return nil
}

// Options configure a Link. Zero durations take defaults.
type Options struct {
	URL string
	// URLs are the nodes of a RabbitMQ cluster, tried in turn (URL, when
	// set, is tried first). A link stays on the node it reached; after
	// that node fails it starts from the next one.
	URLs []string
	// Name says what the link is for ("publish", "replay", "alerts"): it
	// is the connection's name on the broker ("fleetcore <Name>") and the
	// "link" of its log lines.
	Name string
	// DialTimeout bounds one connection attempt (default 5s).
	DialTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between connection
	// attempts, doubled after each failure (defaults 100ms and 10s).
	ReconnectMin, ReconnectMax time.Duration
	// Returns is how many returned (unroutable mandatory) messages the
	// channel buffers: more than the mandatory publishes in flight.
	Returns int
	// Setup declares the topology on every fresh session.
	Setup func(s *Session) error
	// LogFields are logged with "rabbitmq connected" (e.g. "queue", name).
	LogFields []any
}

func (o *Options) defaults() {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = 100 * time.Millisecond
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = max(10*time.Second, o.ReconnectMin)
	}
	if o.Setup == nil {
		o.Setup = func(*Session) error { return nil }
	}
	if o.URL != "" {
		o.URLs = append([]string{o.URL}, o.URLs...)
	}
	o.URL = ""
}

// Link keeps one session alive: it connects on demand (Get), reconnects
// with exponential backoff after the connection or channel closes, and
// declares the topology on every new connection. Errors it returns or logs
// never carry the URL's password.
type Link struct {
	opt Options
	log hclog.Logger

	mu      sync.Mutex
	cur     *Session
	backoff time.Duration
	nextTry time.Time
	down    bool
	dialing bool
	lastErr error
	closed  bool

	// next is the index in opt.URLs the next dial starts at; at is the
	// one the current session reached.
	next, at int

	connects, failures atomic.Uint64
}

// New returns a link; it connects on the first Get.
func New(opt Options, log hclog.Logger) *Link {
	opt.defaults()
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Link{opt: opt, log: log}
}

// Get returns the live session, connecting if an attempt is due; while
// the backoff runs, or while another caller is dialing, it returns
// ErrUnavailable at once.
func (l *Link) Get() (*Session, error) {
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
			l.log.Warn("rabbitmq unreachable; retrying with backoff", "link", l.opt.Name, "error", err)
		}
		return nil, fmt.Errorf("connecting to rabbitmq: %w", err)
	}
	l.connects.Add(1)
	l.cur, l.backoff, l.nextTry, l.lastErr = s, 0, time.Time{}, nil
	if l.down || l.connects.Load() == 1 {
		fields := append([]any{"link", l.opt.Name}, l.opt.LogFields...)
		if len(l.opt.URLs) > 1 {
			fields = append(fields, "node", config.RedactURL(l.opt.URLs[l.at]))
		}
		l.log.Info("rabbitmq connected", fields...)
	}
	l.down = false
	return s, nil
}

// dial tries each URL once, from l.next on, and returns the first session
// that connects and declares its topology (or every attempt's error).
func (l *Link) dial() (*Session, error) {
	l.mu.Lock()
	start := l.next
	l.mu.Unlock()
	n := len(l.opt.URLs)
	if n == 0 {
		return nil, errors.New("no rabbitmq url")
	}
	var errs []error
	for i := range n {
		at := (start + i) % n
		s, err := l.dialOne(l.opt.URLs[at])
		if err == nil {
			l.mu.Lock()
			l.next, l.at = at, at
			l.mu.Unlock()
			return s, nil
		}
		if n > 1 {
			err = fmt.Errorf("%s: %w", config.RedactURL(l.opt.URLs[at]), err)
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (l *Link) dialOne(url string) (*Session, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{
		Heartbeat:  5 * time.Second,
		Dial:       amqp.DefaultDial(l.opt.DialTimeout),
		Properties: amqp.Table{"connection_name": "fleetcore " + l.opt.Name},
	})
	if err != nil {
		// The client quotes a URL it cannot parse, password included; this
		// error is logged, kept as lastErr and returned on every retry.
		return nil, config.RedactError(err, url)
	}
	s, err := OpenSession(conn, l.opt.Returns)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := l.opt.Setup(s); err != nil {
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

func (l *Link) dropLocked(cause error) {
	if l.cur == nil {
		return
	}
	l.cur.conn.Close()
	l.cur = nil
	// The node this session was on failed: start from the next one (on
	// one node this is the same URL again).
	l.next = (l.at + 1) % max(len(l.opt.URLs), 1)
	l.backoff = l.opt.ReconnectMin
	l.nextTry = time.Now().Add(l.backoff)
	l.lastErr = cause
	if !l.down {
		l.down = true
		l.log.Warn("rabbitmq connection lost; reconnecting with backoff", "link", l.opt.Name, "error", cause)
	}
}

// Broken drops the session s if it is still current (after a publish or
// confirm failure that leaves its state unknown); the next Get reconnects
// after the backoff.
func (l *Link) Broken(s *Session, cause error) {
	l.mu.Lock()
	if l.cur == s {
		l.dropLocked(cause)
	}
	l.mu.Unlock()
}

// Connected reports whether a session is up.
func (l *Link) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur != nil && !l.cur.conn.IsClosed()
}

// Due reports whether Get would try: a session is up or the backoff is
// over.
func (l *Link) Due() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur != nil || time.Now().After(l.nextTry)
}

// Connects is how many times the link connected; Failures how many
// connection attempts failed.
func (l *Link) Connects() uint64 { return l.connects.Load() }

// Failures is how many connection attempts failed.
func (l *Link) Failures() uint64 { return l.failures.Load() }

// Close closes the session; Get fails from then on.
func (l *Link) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.cur != nil {
		l.cur.conn.Close()
		l.cur = nil
	}
}

// Publish errors.
var (
	// ErrConfirmTimeout: the broker's confirm did not arrive in time; the
	// message may or may not be stored.
	ErrConfirmTimeout = errors.New("confirm timed out")
	// ErrNacked: the broker refused the message.
	ErrNacked = errors.New("broker nacked the message")
	// ErrReturned: a mandatory message was unroutable.
	ErrReturned = errors.New("broker returned the message as unroutable")
)

// Publish sends one message on s to exchange with key and waits up to
// timeout for the broker's confirm. It returns nil only on an ack for this
// message that (mandatory) was not preceded by a return. Returns are
// matched by msg.MessageId.
func Publish(ctx context.Context, s *Session, exchange, key string, mandatory bool, msg amqp.Publishing, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dc, err := s.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, mandatory, false, msg)
	if err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	if dc == nil {
		return errors.New("publishing: channel not in confirm mode")
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the broker's confirm: %w", ErrConfirmTimeout, ctx.Err())
	}
	if !dc.Acked() {
		if s.ch.IsClosed() {
			return errors.New("channel closed before the broker confirmed")
		}
		return ErrNacked
	}
	if mandatory {
		if why, ok := s.Returned(msg.MessageId); ok {
			return fmt.Errorf("%w: %s", ErrReturned, why)
		}
	}
	return nil
}

// Node is the index in the URLs (URL first) of the node the current
// session is on, or -1 while the link is down.
func (l *Link) Node() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil {
		return -1
	}
	return l.at
}
