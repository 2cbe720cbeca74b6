package failover

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fleetcore/fleetcore/core/amqplink"
	"github.com/fleetcore/fleetcore/signal"
)

// ErrUnavailable: the broker is not connected and the next reconnect
// attempt is not due yet (backoff), so the write is refused at once and
// ingest moves on to the next tier. It is amqplink.ErrUnavailable.
var ErrUnavailable = amqplink.ErrUnavailable

// Message headers.
const (
	ContentType     = "application/x-fleetcore-batch"
	HeaderCodec     = "x-fleetcore-codec"      // signal.CodecVersion of the body
	HeaderSignals   = "x-fleetcore-signals"    // signals in the batch
	HeaderAttempts  = "x-fleetcore-attempts"   // failed replay attempts so far
	HeaderReason    = "x-fleetcore-reason"     // why a message was dead-lettered
	HeaderLastError = "x-fleetcore-last-error" // last replay error of a republished message
)

// Options configure a Broker.
type Options struct {
	URL string
	// URLs are the nodes of a RabbitMQ cluster (after URL, when set): the
	// broker's links fail over between them (amqplink.Options.URLs).
	URLs       []string
	Queue      string
	DeadLetter string
	QueueType  string // quorum (classic used if the broker refuses) or classic
	// ConfirmTimeout bounds the wait for a publisher confirm; an expired
	// wait counts as not durable.
	ConfirmTimeout time.Duration
	// Window is how many batches may wait for confirms at once (from all
	// writers together).
	Window int
	// Prefetch is the replay consumer's unacked window.
	Prefetch int
	// MaxRedeliver bounds replay attempts of one message while Postgres
	// answers (a message Postgres keeps refusing); after that it goes to
	// the dead-letter queue with the reason.
	MaxRedeliver int
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	DialTimeout  time.Duration
	// IdleWait ends a replay round when no message arrived for this long.
	IdleWait time.Duration
	NodeID   string
}

func (o *Options) defaults() {
	if o.QueueType == "" {
		o.QueueType = "quorum"
	}
	if o.ConfirmTimeout <= 0 {
		o.ConfirmTimeout = 5 * time.Second
	}
	if o.Window <= 0 {
		o.Window = 256
	}
	if o.Prefetch <= 0 {
		o.Prefetch = 16
	}
	if o.MaxRedeliver <= 0 {
		o.MaxRedeliver = 20
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = 100 * time.Millisecond
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = max(10*time.Second, o.ReconnectMin)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = min(o.ConfirmTimeout, 5*time.Second)
	}
	if o.IdleWait <= 0 {
		o.IdleWait = 200 * time.Millisecond
	}
}

// Broker is the RabbitMQ failover tier (Write) and the source of its replay
// (Drain). Publishing and consuming use separate connections so that a
// slow replay never holds up ingest.
type Broker struct {
	opt    Options
	log    hclog.Logger
	pub    *amqplink.Link
	con    *amqplink.Link
	window chan struct{}
	seq    atomic.Uint64
	prefix string

	queueType atomic.Value // string: the type actually declared

	published, publishedSignals, failures atomic.Uint64
	nacks, returns, timeouts, refused     atomic.Uint64
	inFlight                              atomic.Int64

	replayed, replayedSignals, deadLettered, requeued atomic.Uint64
	backlog                                           atomic.Int64 // last known queue depth, -1 unknown
	backlogDead                                       atomic.Int64
	mu                                                sync.Mutex
	oldest                                            time.Time // publish time of the oldest message known to wait
	rate                                              float64   // signals/s of the last replay round
}

// New makes a broker client. It connects lazily (first Write or Drain) and
// never fails for an unreachable broker: the tier is simply down.
func New(opt Options, log hclog.Logger) (*Broker, error) {
	if opt.URL == "" && len(opt.URLs) == 0 {
		return nil, errors.New("failover: no amqp url")
	}
	if opt.Queue == "" || opt.DeadLetter == "" || opt.Queue == opt.DeadLetter {
		return nil, errors.New("failover: need distinct queue and dead-letter queue names")
	}
	opt.defaults()
	if log == nil {
		log = hclog.NewNullLogger()
	}
	b := &Broker{opt: opt, log: log, window: make(chan struct{}, opt.Window)}
	b.prefix = strconv.FormatInt(time.Now().UnixNano(), 36)
	if opt.NodeID != "" {
		b.prefix = opt.NodeID + "-" + b.prefix
	}
	b.queueType.Store("")
	b.backlog.Store(-1)
	b.backlogDead.Store(-1)
	b.pub = amqplink.New(b.linkOptions("publish"), log)
	b.con = amqplink.New(b.linkOptions("replay"), log)
	return b, nil
}

// declare makes the dead-letter queue and the failover queue (durable,
// quorum where the broker supports it). Undecodable messages and messages
// past their delivery limit are dead-lettered rather than discarded.
// linkOptions are the options of the broker's link named name; each link
// declares the queues on every new connection.
func (b *Broker) linkOptions(name string) amqplink.Options {
	return amqplink.Options{
		URL: b.opt.URL, URLs: b.opt.URLs, Name: name, DialTimeout: b.opt.DialTimeout,
		ReconnectMin: b.opt.ReconnectMin, ReconnectMax: b.opt.ReconnectMax,
		// Returns of mandatory publishes: more than the confirm window.
		Returns: b.opt.Window + 16, Setup: b.declare, LogFields: []any{"queue", b.opt.Queue},
	}
}

func (b *Broker) declare(s *amqplink.Session) error {
	if err := b.declareOne(s, b.opt.DeadLetter, nil); err != nil {
		return err
	}
	return b.declareOne(s, b.opt.Queue, amqp.Table{
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": b.opt.DeadLetter,
	})
}

func (b *Broker) declareOne(s *amqplink.Session, name string, extra amqp.Table) error {
	args := amqp.Table{}
	for k, v := range extra {
		args[k] = v
	}
	want := b.opt.QueueType
	args["x-queue-type"] = want
	_, err := s.Channel().QueueDeclare(name, true, false, false, false, args)
	if err == nil {
		b.queueType.Store(want)
		return nil
	}
	first := err
	if rerr := s.Reopen(); rerr != nil {
		return fmt.Errorf("declaring queue %s: %w", name, first)
	}
	if want == "quorum" {
		args["x-queue-type"] = "classic"
		if _, err = s.Channel().QueueDeclare(name, true, false, false, false, args); err == nil {
			b.log.Warn("broker refused a quorum queue; using a classic durable queue", "queue", name, "error", first)
			b.queueType.Store("classic")
			return nil
		}
		if rerr := s.Reopen(); rerr != nil {
			return fmt.Errorf("declaring queue %s: %w", name, err)
		}
	}
	// The queue may exist with other arguments (declared by an older
	// version or by an operator): use it as it is.
	if _, perr := s.Channel().QueueDeclarePassive(name, true, false, false, false, nil); perr == nil {
		b.log.Warn("queue exists with different arguments; using it as declared", "queue", name, "error", first)
		return nil
	}
	if rerr := s.Reopen(); rerr != nil {
		return fmt.Errorf("declaring queue %s: %w", name, first)
	}
	return fmt.Errorf("declaring queue %s: %w", name, first)
}

// Connect connects the publisher now rather than on the first write (a
// write that finds another writer connecting falls through to the next
// tier instead of waiting). An unreachable broker is not fatal: the tier
// stays down and reconnects with backoff.
func (b *Broker) Connect() error {
	_, err := b.pub.Get()
	return err
}

// Name is the path label "failover".
func (b *Broker) Name() string { return signal.PathFailover }

// Available reports false while the publisher is disconnected and waiting
// out its reconnect backoff, so ingest skips straight to the spool.
func (b *Broker) Available() bool {
	return b.pub.Due()
}

// Write publishes the batch as one persistent message and returns nil only
// when the broker confirmed it. Several writers publish concurrently on one
// channel, up to the confirm window.
func (b *Broker) Write(ctx context.Context, batch []signal.Signal) error {
	select {
	case b.window <- struct{}{}:
	case <-ctx.Done():
		b.failures.Add(1)
		return fmt.Errorf("waiting for the confirm window: %w", ctx.Err())
	}
	defer func() { <-b.window }()
	b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	err := b.write(ctx, batch)
	if err != nil {
		b.failures.Add(1)
		switch {
		case errors.Is(err, ErrUnavailable):
			b.refused.Add(1)
		case errors.Is(err, amqplink.ErrNacked):
			b.nacks.Add(1)
		case errors.Is(err, amqplink.ErrReturned):
			b.returns.Add(1)
		case errors.Is(err, amqplink.ErrConfirmTimeout):
			b.timeouts.Add(1)
		}
		return err
	}
	b.published.Add(1)
	b.publishedSignals.Add(uint64(len(batch)))
	b.mu.Lock()
	if b.oldest.IsZero() {
		b.oldest = time.Now()
	}
	b.mu.Unlock()
	return nil
}

func (b *Broker) write(ctx context.Context, batch []signal.Signal) error {
	s, err := b.pub.Get()
	if err != nil {
		return err
	}
	msg := amqp.Publishing{
		ContentType:  ContentType,
		DeliveryMode: amqp.Persistent,
		MessageId:    b.prefix + "-" + strconv.FormatUint(b.seq.Add(1), 36),
		Timestamp:    time.Now(),
		Headers:      amqp.Table{HeaderCodec: int32(signal.CodecVersion), HeaderSignals: int64(len(batch))},
		Body:         signal.AppendBatch(make([]byte, 0, 128*len(batch)), batch),
	}
	err = amqplink.Publish(ctx, s, "", b.opt.Queue, true, msg, b.opt.ConfirmTimeout)
	// A nack drops the session too: on RabbitMQ 3.10 a channel that
	// published to a quorum queue around the loss of its leader's node
	// kept being nacked after a new leader was elected (1151 nacks in 30 s
	// in TestIntegrationClusterFailover); a new channel publishes again
	// after a few refused writes.
	if err != nil && (s.Channel().IsClosed() || errors.Is(err, amqplink.ErrConfirmTimeout) || errors.Is(err, amqplink.ErrNacked)) {
		b.pub.Broken(s, err)
	}
	if err != nil {
		return fmt.Errorf("failover publish: %w", err)
	}
	return nil
}

// Close closes both connections.
func (b *Broker) Close() {
	b.pub.Close()
	b.con.Close()
}
