package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Poison kinds: records no server should let cost anyone else's data.
const (
	// PoisonLongJSONL is a jsonl record whose device id is PoisonConfig.IDLen
	// random characters (beyond the btree key limit of the idempotency
	// index, so Postgres cannot store it).
	PoisonLongJSONL = "long-id-jsonl"
	// PoisonLongH02 is the same id in an H02 V1 position message.
	PoisonLongH02 = "long-id-h02"
	// PoisonRefused is a jsonl record with a short, valid device id
	// "poison-…" that passes every gateway check; the benchmark makes
	// Postgres refuse it with a CHECK constraint (PoisonConstraint), so it
	// exercises the store's isolation of refused records.
	PoisonRefused = "refused-jsonl"
)

// PoisonConstraint is the constraint that makes Postgres refuse the
// PoisonRefused records; the benchmark adds it to its own database.
const PoisonConstraint = `ALTER TABLE signals ADD CONSTRAINT bench_poison CHECK (device_id NOT LIKE 'poison-%')`

// PoisonConfig configures the attackers.
type PoisonConfig struct {
	// Targets maps "jsonl" and "h02" to the server's addresses; a kind
	// whose protocol has no target is left out.
	Targets map[string]string
	// Kinds are the poison kinds sent in turn (default: all three).
	Kinds []string
	// Rate is poison records per second, all attackers together.
	Rate float64
	// Attackers is how many connections are in flight at most (each sends
	// one record, reads the answer, closes; a refused one is closed by the
	// server); default 64.
	Attackers int
	// IDLen is the oversized device id's length (default 6000).
	IDLen int
	// Timeout bounds each attempt (default 5 s).
	Timeout time.Duration
}

// PoisonCounters are what the attackers saw. Acked must stay 0: a server
// that acks a record it cannot store has either lost it or must keep it
// as a refused record.
type PoisonCounters struct {
	Sent       uint64            `json:"sent"`
	Acked      uint64            `json:"acked"`       // the server answered as to a stored record
	Refused    uint64            `json:"refused"`     // an error reply, or closed without an ack
	NoAnswer   uint64            `json:"no_answer"`   // neither within the timeout
	DialErrors uint64            `json:"dial_errors"` // could not connect
	ByKind     map[string]uint64 `json:"by_kind"`
	AckedBy    map[string]uint64 `json:"acked_by_kind"`
}

// Poisoner sends poison records at a fixed rate until its context ends.
type Poisoner struct {
	cfg     PoisonConfig
	sent    atomic.Uint64
	acked   atomic.Uint64
	refused atomic.Uint64
	noAns   atomic.Uint64
	dialErr atomic.Uint64
	mu      sync.Mutex
	byKind  map[string]uint64
	ackedBy map[string]uint64
	seq     atomic.Uint64
	base    time.Time
}

// NewPoisoner checks cfg and fills its defaults.
func NewPoisoner(cfg PoisonConfig) (*Poisoner, error) {
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = []string{PoisonLongJSONL, PoisonLongH02, PoisonRefused}
	}
	var kinds []string
	for _, k := range cfg.Kinds {
		proto := "jsonl"
		switch k {
		case PoisonLongJSONL, PoisonRefused:
		case PoisonLongH02:
			proto = "h02"
		default:
			return nil, fmt.Errorf("loadgen: unknown poison kind %q", k)
		}
		if cfg.Targets[proto] != "" {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return nil, fmt.Errorf("loadgen: no target for any poison kind of %v", cfg.Kinds)
	}
	cfg.Kinds = kinds
	if cfg.Attackers <= 0 {
		cfg.Attackers = 64
	}
	if cfg.IDLen <= 0 {
		cfg.IDLen = 6000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Rate <= 0 {
		return nil, fmt.Errorf("loadgen: poison rate must be positive, not %v", cfg.Rate)
	}
	return &Poisoner{cfg: cfg, byKind: map[string]uint64{}, ackedBy: map[string]uint64{},
		base: time.Now().UTC().Truncate(time.Second).Add(-48 * time.Hour)}, nil
}

// Run sends until ctx ends and returns once every attempt has finished.
func (p *Poisoner) Run(ctx context.Context) {
	slots := make(chan struct{}, p.cfg.Attackers)
	var wg sync.WaitGroup
	defer wg.Wait()
	// Tokens every 10 ms (or slower below 100/s), carrying the fraction.
	tick := 10 * time.Millisecond
	if per := time.Duration(float64(time.Second) / p.cfg.Rate); per > tick {
		tick = per
	}
	perTick := p.cfg.Rate * tick.Seconds()
	tk := time.NewTicker(tick)
	defer tk.Stop()
	var owed float64
	for i := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		owed += perTick
		for ; owed >= 1; owed-- {
			select {
			case slots <- struct{}{}:
			default:
				continue // every attacker busy: the offered rate is capped
			}
			kind := p.cfg.Kinds[i%len(p.cfg.Kinds)]
			i++
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				p.attempt(ctx, kind)
			}()
		}
	}
}

// Counters returns what the attackers saw so far.
func (p *Poisoner) Counters() PoisonCounters {
	p.mu.Lock()
	by, ack := map[string]uint64{}, map[string]uint64{}
	for k, v := range p.byKind {
		by[k] = v
	}
	for k, v := range p.ackedBy {
		ack[k] = v
	}
	p.mu.Unlock()
	return PoisonCounters{Sent: p.sent.Load(), Acked: p.acked.Load(), Refused: p.refused.Load(),
		NoAnswer: p.noAns.Load(), DialErrors: p.dialErr.Load(), ByKind: by, AckedBy: ack}
}

// PoisonFrame encodes poison record n of kind, with device time ts.
func PoisonFrame(kind string, n uint64, ts time.Time, idLen int) (proto string, frame []byte) {
	switch kind {
	case PoisonLongH02:
		return "h02", fmt.Appendf(nil, "*HQ,%s,V1,%s,A,5441.9800,N,02518.0000,E,12.00,90,%s,FFFFFBFF#",
			randomID(idLen), ts.Format("150405"), ts.Format("020106"))
	case PoisonRefused:
		return "jsonl", fmt.Appendf(nil, `{"device_id":"poison-%d","ts":%q,"lat":54.7,"lon":25.3,"speed":12}`+"\n", n, ts.Format(time.RFC3339))
	default:
		return "jsonl", fmt.Appendf(nil, `{"device_id":%q,"ts":%q,"lat":54.7,"lon":25.3,"speed":12}`+"\n", randomID(idLen), ts.Format(time.RFC3339))
	}
}

func randomID(n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[rand.IntN(len(chars))]
	}
	return string(b)
}

// attempt sends one poison record on a fresh connection and classifies
// the answer.
func (p *Poisoner) attempt(ctx context.Context, kind string) {
	n := p.seq.Add(1)
	proto, frame := PoisonFrame(kind, n, p.base.Add(time.Duration(n)*time.Second), p.cfg.IDLen)
	dl := net.Dialer{Timeout: p.cfg.Timeout}
	c, err := dl.DialContext(ctx, "tcp", p.cfg.Targets[proto])
	if err != nil {
		if ctx.Err() == nil {
			p.dialErr.Add(1)
		}
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetDeadline(time.Now().Add(p.cfg.Timeout)) //nolint:errcheck
	p.sent.Add(1)
	p.mu.Lock()
	p.byKind[kind]++
	p.mu.Unlock()
	if _, err := c.Write(frame); err != nil {
		p.refused.Add(1) // closed before it took the frame
		return
	}
	delim := byte('\n')
	if proto == "h02" {
		delim = '#'
	}
	ans, err := bufio.NewReader(c).ReadString(delim)
	ans = strings.TrimSpace(ans)
	switch {
	case proto == "jsonl" && strings.HasPrefix(ans, `{"ok"`), proto == "h02" && strings.HasPrefix(ans, "*HQ,") && strings.HasSuffix(ans, "#"):
		p.acked.Add(1)
		p.mu.Lock()
		p.ackedBy[kind]++
		p.mu.Unlock()
	case ans != "" || errors.Is(err, io.EOF) || isClosed(err):
		p.refused.Add(1)
	default:
		p.noAns.Add(1)
	}
}

func isClosed(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "closed"))
}
