package gateway

import (
	"sync"
	"time"
)

// Default bounds of a TCP connection's pipeline (ListenerConfig).
const (
	DefaultMaxFramesInFlight = 1024
	DefaultMaxBytesInFlight  = 1 << 20
)

// pipeline is what a TCP connection has read, decoded and submitted but
// not yet acked, and the writer that acks it. The connection's reader
// goroutine queues frames (push) and goes on reading; a writer goroutine,
// started when there is something to ack and gone when the queue is
// empty, waits for the oldest frame's signals to be durable, takes every
// frame after it that is ready too (durable, or nothing to make durable),
// and writes their acks with one write, in frame order. The reader blocks
// (room) while the frames or bytes in flight are at the listener's bounds.
//
// The pipeline stops (failed) when a frame's signals are not durable, an
// ack write fails, or a frame that closes the connection is acked; the
// reader's blocked read is then interrupted (the read deadline is set to
// now) so that the connection closes. Nothing after the frame that
// stopped it is acked: the device resends those records and their keys
// make the resend a no-op.
type pipeline struct {
	cn        *tcpConn
	maxFrames int
	maxBytes  int

	mu      sync.Mutex
	cond    sync.Cond // broadcast when frames leave q, the writer stops, or failed is set
	q       []pendingAck
	bytes   int  // raw bytes of the frames in q
	running bool // a writer goroutine owns the head of q
	failed  bool
	aborted bool // abort: the writer stops without writing more

	// busySince is when q last became non-empty (zero while empty);
	// busyAcc the time q was non-empty before that (busyTotal).
	busySince time.Time
	busyAcc   time.Duration

	abortCh chan struct{} // closed by abort
}

func newPipeline(cn *tcpConn, maxFrames, maxBytes int) *pipeline {
	if maxFrames <= 0 {
		maxFrames = DefaultMaxFramesInFlight
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytesInFlight
	}
	p := &pipeline{cn: cn, maxFrames: maxFrames, maxBytes: maxBytes, abortCh: make(chan struct{})}
	p.cond.L = &p.mu
	return p
}

// room waits until a frame of n bytes fits the bounds (a frame larger than
// maxBytes fits an empty pipeline) and reports false when the pipeline
// has stopped instead.
func (p *pipeline) room(n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.failed && len(p.q) > 0 && (len(p.q) >= p.maxFrames || p.bytes+n > p.maxBytes) {
		p.startLocked()
		p.cond.Wait()
	}
	return !p.failed
}

// push queues a decoded (and submitted) frame for its ack.
func (p *pipeline) push(a pendingAck) {
	p.mu.Lock()
	if len(p.q) == 0 {
		p.busySince = time.Now()
	}
	p.q = append(p.q, a)
	p.bytes += a.size
	p.mu.Unlock()
}

// flush makes sure the queued frames are being acked, without waiting for
// them; it reports false when the pipeline has stopped.
func (p *pipeline) flush() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startLocked()
	return !p.failed
}

// drain waits until every queued frame is acked or the pipeline stopped,
// and reports whether every frame was acked and none closed the
// connection.
func (p *pipeline) drain() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startLocked()
	for p.running {
		p.cond.Wait()
	}
	return !p.failed && len(p.q) == 0
}

// abort stops the pipeline without acking what is queued and waits for
// the writer to be gone.
func (p *pipeline) abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.aborted {
		p.aborted, p.failed = true, true
		close(p.abortCh)
	}
	for p.running {
		p.cond.Wait()
	}
}

// readDeadline sets the connection's read deadline unless the pipeline
// has stopped (false). It takes the lock that failLocked holds while it
// interrupts the read, so a stop either interrupts the next read or is
// seen here before it.
func (p *pipeline) readDeadline(deadline time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed {
		return false
	}
	p.cn.c.SetReadDeadline(deadline) //nolint:errcheck
	return true
}

// busyTotal is the time the pipeline has held unacked frames, up to now.
func (p *pipeline) busyTotal(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busySince.IsZero() {
		return p.busyAcc
	}
	return p.busyAcc + now.Sub(p.busySince)
}

func (p *pipeline) isFailed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

func (p *pipeline) startLocked() {
	if p.running || p.failed || len(p.q) == 0 {
		return
	}
	p.running = true
	go p.write()
}

// failLocked stops the pipeline and interrupts the reader's read.
func (p *pipeline) failLocked() {
	if !p.failed {
		p.failed = true
		p.cn.c.SetReadDeadline(time.Now()) //nolint:errcheck // interrupts the blocked read
	}
	p.cond.Broadcast()
}

// write is the writer goroutine: it acks the head of q until q is empty
// or the pipeline stops.
func (p *pipeline) write() {
	var buf []byte
	var acked []pendingAck
	for {
		p.mu.Lock()
		if p.failed || len(p.q) == 0 {
			p.running = false
			p.cond.Broadcast()
			p.mu.Unlock()
			return
		}
		head := p.q[0].ticket
		p.mu.Unlock()
		if head != nil {
			select {
			case <-head.Done():
			case <-p.abortCh:
			}
		}
		p.mu.Lock()
		if p.aborted {
			p.running = false
			p.cond.Broadcast()
			p.mu.Unlock()
			return
		}
		// The ready prefix: the head (durable or failed) and every frame
		// after it whose signals are durable or that had none.
		k, stop := 0, false
		var notDurable error
		buf = buf[:0]
		for k < len(p.q) {
			a := &p.q[k]
			if a.ticket != nil {
				if !done(a.ticket.Done()) {
					break
				}
				if err := a.ticket.Err(); err != nil {
					notDurable, stop = err, true
					break
				}
			}
			buf = append(buf, a.ack...)
			k++
			if a.close {
				stop = true
				break
			}
		}
		acked = append(acked[:0], p.q[:k]...)
		p.mu.Unlock()

		ok := true
		if len(buf) > 0 {
			p.cn.c.SetWriteDeadline(time.Now().Add(p.cn.l.cfg.WriteTimeout)) //nolint:errcheck
			p.cn.g.stats.AckWrites.Add(1)
			if _, err := p.cn.c.Write(buf); err != nil {
				p.cn.log.Debug("writing ack", "error", err)
				ok = false
			}
		}
		g := p.cn.g
		if ok {
			for _, a := range acked {
				g.stats.Acked.Add(1)
				g.stats.AckLatency.Observe(float64(time.Since(a.recv).Microseconds()) / 1000)
			}
		}
		if notDurable != nil {
			g.warnUnacked(notDurable)
		}

		p.mu.Lock()
		n := copy(p.q, p.q[k:])
		clear(p.q[n:])
		p.q = p.q[:n]
		for _, a := range acked {
			p.bytes -= a.size
		}
		if n == 0 && k > 0 {
			p.busyAcc += time.Since(p.busySince)
			p.busySince = time.Time{}
		}
		if !ok || stop {
			p.failLocked()
		}
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

func done(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
