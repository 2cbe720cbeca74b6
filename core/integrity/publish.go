package integrity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fleetcore/fleetcore/core/amqplink"
)

// Event is an alert state change as delivered to the broker and webhook.
type Event struct {
	ID       int64     `json:"id"`
	AlertID  int64     `json:"alert_id"`
	DeviceID string    `json:"device_id"`
	Kind     string    `json:"kind"`
	State    string    `json:"state"` // open or cleared
	At       time.Time `json:"at"`
	Reason   string    `json:"reason"`
}

// RoutingKey is "<kind>.<device_id>", so consumers bind "gps_broken.#" or
// "*.356307042441013".
func (e Event) RoutingKey() string { return e.Kind + "." + e.DeviceID }

// Broker publishes one event durably (returns nil only when confirmed).
type Broker interface {
	Publish(ctx context.Context, e Event) error
}

// webhookGiveUp is after how many delivery rounds an event stops being
// sent to the webhook; each round makes up to webhookTries attempts.
const (
	webhookGiveUp = 5
	webhookTries  = 3
	drainBatch    = 500
)

// Publisher delivers the alert_events outbox: each event to the broker
// (when configured) and the webhook (when configured), after the score
// transaction committed. Undelivered events are retried on the next Drain;
// broker delivery is retried until it succeeds, webhook delivery for a
// bounded number of rounds.
type Publisher struct {
	pool    *pgxpool.Pool
	broker  Broker // nil: no broker
	webhook string
	client  *http.Client
	log     hclog.Logger
	mu      sync.Mutex

	published, failed atomic.Uint64
}

// NewPublisher returns a publisher; broker may be nil and webhook empty.
func NewPublisher(pool *pgxpool.Pool, broker Broker, webhook string, log hclog.Logger) *Publisher {
	return &Publisher{pool: pool, broker: broker, webhook: webhook, client: &http.Client{Timeout: 5 * time.Second}, log: log}
}

// Counts returns events delivered to the broker and delivery failures.
func (p *Publisher) Counts() (published, failed uint64) { return p.published.Load(), p.failed.Load() }

// Drain delivers pending events in order. It is the organizer job "alerts"
// and also runs after every scoring round.
func (p *Publisher) Drain(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	rows, err := p.pool.Query(ctx, `SELECT id, alert_id, device_id, kind, state, at, reason, published IS NOT NULL,
		webhooked IS NOT NULL, attempts FROM alert_events WHERE published IS NULL OR webhooked IS NULL ORDER BY id LIMIT $1`, drainBatch)
	if err != nil {
		return fmt.Errorf("reading alert outbox: %w", err)
	}
	type pending struct {
		e                    Event
		published, webhooked bool
		attempts             int
	}
	var ps []pending
	for rows.Next() {
		var x pending
		if err := rows.Scan(&x.e.ID, &x.e.AlertID, &x.e.DeviceID, &x.e.Kind, &x.e.State, &x.e.At, &x.e.Reason,
			&x.published, &x.webhooked, &x.attempts); err != nil {
			rows.Close()
			return fmt.Errorf("reading alert outbox: %w", err)
		}
		x.e.At = x.e.At.UTC()
		ps = append(ps, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading alert outbox: %w", err)
	}
	var firstErr error
	brokerDown := false
	for _, x := range ps {
		if !x.published {
			if p.broker == nil {
				x.published = true
			} else if !brokerDown {
				if err := p.broker.Publish(ctx, x.e); err != nil {
					p.failed.Add(1)
					brokerDown = true // keep order: later events wait for the next round
					firstErr = fmt.Errorf("publishing alert event %d: %w", x.e.ID, err)
				} else {
					p.published.Add(1)
					x.published = true
				}
			}
		}
		var whErr string
		if !x.webhooked {
			if p.webhook == "" {
				x.webhooked = true
			} else if err := p.postWebhook(ctx, x.e); err != nil {
				x.attempts++
				whErr = err.Error()
				if x.attempts >= webhookGiveUp {
					p.log.Error("giving up on alert webhook", "event", x.e.ID, "device", x.e.DeviceID, "kind", x.e.Kind, "error", err)
					x.webhooked = true
				}
			} else {
				x.webhooked = true
			}
		}
		if _, err := p.pool.Exec(ctx, `UPDATE alert_events SET
			published = CASE WHEN $2 AND published IS NULL THEN now() ELSE published END,
			webhooked = CASE WHEN $3 AND webhooked IS NULL THEN now() ELSE webhooked END,
			attempts = $4, last_error = coalesce(nullif($5, ''), last_error) WHERE id = $1`,
			x.e.ID, x.published, x.webhooked, x.attempts, whErr); err != nil {
			return fmt.Errorf("marking alert event %d: %w", x.e.ID, err)
		}
	}
	return firstErr
}

func (p *Publisher) postWebhook(ctx context.Context, e Event) error {
	body, _ := json.Marshal(e)
	var last error
	for i := 0; i < webhookTries; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(i) * 500 * time.Millisecond):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.webhook, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("building webhook request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Fleetcore-Event", strconv.FormatInt(e.ID, 10))
		resp, err := p.client.Do(req)
		if err != nil {
			last = fmt.Errorf("posting webhook: %w", err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return nil
		}
		last = fmt.Errorf("posting webhook: status %s", resp.Status)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			break // the receiver refuses this request; retrying will not help
		}
	}
	return last
}

// AMQPBroker publishes alert events to a durable topic exchange with
// persistent messages and publisher confirms, through an amqplink.Link
// (the failover tier's link: it connects lazily, declares the exchange on
// every connection, and reconnects with backoff after any failure).
type AMQPBroker struct {
	exchange string
	timeout  time.Duration
	link     *amqplink.Link
}

// NewAMQPBroker returns a broker publishing to exchange (declared durable
// topic on connect). timeout bounds each connection attempt and each
// confirm wait.
func NewAMQPBroker(urls []string, exchange string, timeout time.Duration, log hclog.Logger) *AMQPBroker {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	b := &AMQPBroker{exchange: exchange, timeout: timeout}
	b.link = amqplink.New(amqplink.Options{
		URLs: urls, Name: "alerts", DialTimeout: timeout, LogFields: []any{"exchange", exchange},
		Setup: func(s *amqplink.Session) error {
			if err := s.Channel().ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
				return fmt.Errorf("declaring exchange %s: %w", exchange, err)
			}
			return nil
		},
	}, log)
	return b
}

// ErrNacked: the broker refused the message.
var ErrNacked = errors.New("broker nacked the alert event")

// Publish sends one event and waits for its confirm. An event that may or
// may not have reached the broker (the channel closed, the confirm timed
// out) drops the connection; the outbox sends it again on the next Drain
// (consumers deduplicate by message id, the event's id).
func (b *AMQPBroker) Publish(ctx context.Context, e Event) error {
	s, err := b.link.Get()
	if err != nil {
		return fmt.Errorf("publishing to %s: %w", b.exchange, err)
	}
	body, _ := json.Marshal(e)
	err = amqplink.Publish(ctx, s, b.exchange, e.RoutingKey(), false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, Timestamp: e.At,
		MessageId: strconv.FormatInt(e.ID, 10), Type: "fleetcore.alert." + e.State, Body: body,
	}, b.timeout)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, amqplink.ErrNacked):
		return ErrNacked
	}
	b.link.Broken(s, err)
	return fmt.Errorf("publishing to %s: %w", b.exchange, err)
}

// Ping reports whether the broker is reachable (connecting if needed).
func (b *AMQPBroker) Ping(ctx context.Context) error {
	_, err := b.link.Get()
	return err
}

// Close closes the connection.
func (b *AMQPBroker) Close() { b.link.Close() }
