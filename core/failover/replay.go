package failover

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fleetcore/fleetcore/core/amqplink"
	"github.com/fleetcore/fleetcore/signal"
)

// Handler stores one replayed batch. It must return nil only after the
// batch is committed, and must be idempotent (a message can be delivered
// again after a crash between COMMIT and ack). Records the store refuses
// are the handler's to keep (the organizer's replayer isolates them and
// keeps them in rejected_records): an error means "not stored yet, try
// again", never "dead-letter this".
type Handler func(ctx context.Context, batch []signal.Signal) error

// DrainResult counts one replay round.
type DrainResult struct {
	Messages     int // acked after the handler committed them
	Signals      int
	DeadLettered int
	Requeued     int
	Backlog      int // messages left in the queue at the end (-1 unknown)
}

// Drain consumes the failover queue with manual acks and a prefetch window
// and hands each message's batch to h, acking it only after h returned nil.
// A round ends when the queue stays idle for IdleWait, after about as many
// messages as the queue held at the start, or at the first handler error
// (replay stops instead of spinning through requeues while Postgres is
// down). A message whose batch cannot be decoded, or whose handler failed
// MaxRedeliver times (Postgres answering but failing every write for a
// reason of its own), is published to the dead-letter queue with an
// x-fleetcore-reason header and then acked: never dropped. A message is
// never dead-lettered for the records it holds. A message that failed for a transient reason is published
// again at the tail with its attempt count and then acked, so the broker's
// own delivery counter (and any delivery limit) never grows from outages.
func (b *Broker) Drain(ctx context.Context, h Handler) (DrainResult, error) {
	res := DrainResult{Backlog: -1}
	s, err := b.con.Get()
	if err != nil {
		return res, err
	}
	cs, err := amqplink.OpenSession(s.Conn(), 16)
	if err != nil {
		b.con.Broken(s, err)
		return res, fmt.Errorf("opening replay channel: %w", err)
	}
	defer cs.Channel().Close()
	if err := cs.Channel().Qos(b.opt.Prefetch, 0, false); err != nil {
		return res, fmt.Errorf("setting prefetch: %w", err)
	}
	depth, err := b.depth(cs)
	if err != nil {
		return res, err
	}
	res.Backlog = depth
	if depth == 0 {
		b.noteEmpty()
		return res, nil
	}
	tag := b.prefix + "-replay-" + strconv.FormatUint(b.seq.Add(1), 36)
	deliveries, err := cs.Channel().ConsumeWithContext(ctx, b.opt.Queue, tag, false, false, false, false, nil)
	if err != nil {
		return res, fmt.Errorf("consuming %s: %w", b.opt.Queue, err)
	}
	start := time.Now()
	limit := depth + b.opt.Prefetch
	idle := time.NewTimer(b.opt.IdleWait)
	defer idle.Stop()
	var runErr error
	first := true
loop:
	for n := 0; n < limit; {
		select {
		case d, ok := <-deliveries:
			if !ok {
				runErr = errors.New("replay channel closed by the broker")
				break loop
			}
			if first && !d.Timestamp.IsZero() {
				b.mu.Lock()
				b.oldest = d.Timestamp
				b.mu.Unlock()
				first = false
			}
			// Take what the prefetch window already delivered and store
			// it in one transaction.
			group := []amqp.Delivery{d}
		more:
			for len(group) < b.opt.Prefetch {
				select {
				case d2, ok := <-deliveries:
					if !ok {
						break more
					}
					group = append(group, d2)
				default:
					break more
				}
			}
			n += len(group)
			if err := b.handleGroup(ctx, cs, tag, group, h, &res); err != nil {
				runErr = err
				break loop
			}
			idle.Reset(b.opt.IdleWait)
		case <-idle.C:
			break loop
		case <-ctx.Done():
			runErr = ctx.Err()
			break loop
		}
	}
	if !cs.Channel().IsClosed() {
		cs.Channel().Cancel(tag, false) //nolint:errcheck // the channel closes next; unacked deliveries return to the queue
		if d, err := b.depth(cs); err == nil {
			res.Backlog = d
			if d == 0 {
				b.noteEmpty()
			}
		}
	}
	if secs := time.Since(start).Seconds(); secs > 0 && res.Signals > 0 {
		b.mu.Lock()
		b.rate = float64(res.Signals) / secs
		b.mu.Unlock()
	}
	return res, runErr
}

func (b *Broker) depth(cs *amqplink.Session) (int, error) {
	q, err := cs.Channel().QueueDeclarePassive(b.opt.Queue, true, false, false, false, nil)
	if err != nil {
		return -1, fmt.Errorf("inspecting queue %s: %w", b.opt.Queue, err)
	}
	b.backlog.Store(int64(q.Messages))
	// The dead-letter depth is informational; a failure here closes the
	// channel, so it is checked on its own channel.
	if dc, err := cs.Conn().Channel(); err == nil {
		if dq, err := dc.QueueDeclarePassive(b.opt.DeadLetter, true, false, false, false, nil); err == nil {
			b.backlogDead.Store(int64(dq.Messages))
		}
		dc.Close()
	}
	return q.Messages, nil
}

func (b *Broker) noteEmpty() {
	b.mu.Lock()
	b.oldest = time.Time{}
	b.mu.Unlock()
}

// Refresh updates the backlog gauges (queue depths) without consuming;
// the replay job calls it while Postgres is down.
func (b *Broker) Refresh(ctx context.Context) error {
	s, err := b.con.Get()
	if err != nil {
		return err
	}
	cs, err := amqplink.OpenSession(s.Conn(), 16)
	if err != nil {
		b.con.Broken(s, err)
		return fmt.Errorf("opening channel: %w", err)
	}
	defer cs.Channel().Close()
	d, err := b.depth(cs)
	if err == nil && d == 0 {
		b.noteEmpty()
	}
	return err
}

// handleGroup stores several deliveries with one handler call and acks
// them after it returned nil. If it failed, the deliveries are handled one
// by one, so that each is requeued (or given up on) on its own.
func (b *Broker) handleGroup(ctx context.Context, cs *amqplink.Session, tag string, group []amqp.Delivery, h Handler, res *DrainResult) error {
	if len(group) == 1 {
		return b.handle(ctx, cs, tag, group[0], h, res)
	}
	var good []amqp.Delivery
	var all []signal.Signal
	for _, d := range group {
		sigs, err := signal.DecodeBatch(d.Body)
		if err != nil {
			if err := b.deadLetter(ctx, cs, d, "undecodable: "+err.Error(), res); err != nil {
				return err
			}
			continue
		}
		good = append(good, d)
		all = append(all, sigs...)
	}
	if len(good) == 0 {
		return nil
	}
	for i := range all {
		if all[i].Path == "" {
			all[i].Path = signal.PathFailover
		}
	}
	if herr := h(ctx, all); herr != nil {
		for _, d := range good {
			if err := b.handle(ctx, cs, tag, d, h, res); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range good {
		if err := d.Ack(false); err != nil {
			// Committed but not acked: delivered again, stored idempotently.
			return fmt.Errorf("acking replayed message: %w", err)
		}
		res.Messages++
		b.replayed.Add(1)
	}
	res.Signals += len(all)
	b.replayedSignals.Add(uint64(len(all)))
	return nil
}

func (b *Broker) handle(ctx context.Context, cs *amqplink.Session, tag string, d amqp.Delivery, h Handler, res *DrainResult) error {
	sigs, err := signal.DecodeBatch(d.Body)
	if err != nil {
		return b.deadLetter(ctx, cs, d, "undecodable: "+err.Error(), res)
	}
	for i := range sigs {
		if sigs[i].Path == "" {
			sigs[i].Path = signal.PathFailover
		}
	}
	herr := h(ctx, sigs)
	if herr == nil {
		if err := d.Ack(false); err != nil {
			// Committed but not acked: it is delivered again and stored
			// idempotently.
			return fmt.Errorf("acking replayed message: %w", err)
		}
		res.Messages++
		res.Signals += len(sigs)
		b.replayed.Add(1)
		b.replayedSignals.Add(uint64(len(sigs)))
		return nil
	}
	// Replay stops here: cancel the consumer first so the copy put back
	// below is not delivered to this round again.
	cs.Channel().Cancel(tag, false) //nolint:errcheck // a closed channel returns the message anyway
	attempts := headerInt(d.Headers, HeaderAttempts) + 1
	if attempts >= int64(b.opt.MaxRedeliver) {
		if err := b.deadLetter(ctx, cs, d, fmt.Sprintf("gave up after %d replay attempts: %v", attempts, herr), res); err != nil {
			return err
		}
		return herr
	}
	hdr := copyHeaders(d.Headers)
	hdr[HeaderAttempts] = attempts
	hdr[HeaderLastError] = truncate(herr.Error(), 512)
	if err := b.forward(ctx, cs, d, b.opt.Queue, hdr); err != nil {
		d.Nack(false, true) //nolint:errcheck // the channel closes next anyway
		return fmt.Errorf("requeueing after %v: %w", herr, err)
	}
	res.Requeued++
	b.requeued.Add(1)
	return herr
}

func (b *Broker) deadLetter(ctx context.Context, cs *amqplink.Session, d amqp.Delivery, reason string, res *DrainResult) error {
	hdr := copyHeaders(d.Headers)
	hdr[HeaderReason] = truncate(reason, 1024)
	if err := b.forward(ctx, cs, d, b.opt.DeadLetter, hdr); err != nil {
		d.Nack(false, true) //nolint:errcheck // the channel closes next anyway
		return fmt.Errorf("dead-lettering message (%s): %w", reason, err)
	}
	res.DeadLettered++
	b.deadLettered.Add(1)
	b.log.Error("failover message dead-lettered", "queue", b.opt.DeadLetter, "message_id", d.MessageId, "reason", reason)
	return nil
}

// forward publishes a copy of d (same body and properties, new headers) to
// queue with a confirm, then acks d.
func (b *Broker) forward(ctx context.Context, cs *amqplink.Session, d amqp.Delivery, queue string, hdr amqp.Table) error {
	msg := amqp.Publishing{
		Headers: hdr, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: amqp.Persistent, MessageId: d.MessageId, Timestamp: d.Timestamp,
		Type: d.Type, AppId: d.AppId, Body: d.Body,
	}
	if msg.MessageId == "" {
		msg.MessageId = b.prefix + "-fwd-" + strconv.FormatUint(b.seq.Add(1), 36)
	}
	if err := amqplink.Publish(ctx, cs, "", queue, true, msg, b.opt.ConfirmTimeout); err != nil {
		return err
	}
	if err := d.Ack(false); err != nil {
		// The copy is durable; the original comes back and is stored
		// idempotently or forwarded again.
		return fmt.Errorf("acking forwarded message: %w", err)
	}
	return nil
}

func copyHeaders(h amqp.Table) amqp.Table {
	out := amqp.Table{}
	for k, v := range h {
		// Broker-maintained headers describe the old message.
		if k == "x-delivery-count" || k == "x-death" || k == "x-first-death-exchange" ||
			k == "x-first-death-queue" || k == "x-first-death-reason" {
			continue
		}
		out[k] = v
	}
	return out
}

func headerInt(h amqp.Table, key string) int64 {
	switch v := h[key].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case int16:
		return int64(v)
	case int8:
		return int64(v)
	case int:
		return int64(v)
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Stats is a snapshot of the failover tier and its replay.
type Stats struct {
	Connected  bool
	QueueType  string // quorum or classic, as declared
	Reconnects uint64 // successful connects of the publisher after the first
	// Publishing.
	Published        uint64 // batches confirmed by the broker
	PublishedSignals uint64
	Failures         uint64 // batches not confirmed (all causes below and others)
	Refused          uint64 // refused at once while reconnecting
	Nacks            uint64
	Returns          uint64
	ConfirmTimeouts  uint64
	InFlight         int64 // batches waiting for a confirm
	// Backlog.
	Backlog           int64 // messages in the failover queue (last seen; -1 unknown)
	DeadLetterBacklog int64 // messages in the dead-letter queue (last seen; -1 unknown)
	OldestAge         time.Duration
	// Replay.
	Replayed        uint64 // messages committed to Postgres and acked
	ReplayedSignals uint64
	DeadLettered    uint64
	Requeued        uint64
	ReplayRate      float64 // signals per second in the last replay round
}

// Stats returns a snapshot.
func (b *Broker) Stats() Stats {
	s := Stats{
		Connected: b.pub.Connected(), QueueType: b.queueType.Load().(string),
		Published: b.published.Load(), PublishedSignals: b.publishedSignals.Load(),
		Failures: b.failures.Load(), Refused: b.refused.Load(), Nacks: b.nacks.Load(),
		Returns: b.returns.Load(), ConfirmTimeouts: b.timeouts.Load(), InFlight: b.inFlight.Load(),
		Backlog: b.backlog.Load(), DeadLetterBacklog: b.backlogDead.Load(),
		Replayed: b.replayed.Load(), ReplayedSignals: b.replayedSignals.Load(),
		DeadLettered: b.deadLettered.Load(), Requeued: b.requeued.Load(),
	}
	if c := b.pub.Connects(); c > 1 {
		s.Reconnects = c - 1
	}
	b.mu.Lock()
	if !b.oldest.IsZero() && s.Backlog != 0 {
		s.OldestAge = time.Since(b.oldest)
	}
	s.ReplayRate = b.rate
	b.mu.Unlock()
	return s
}
