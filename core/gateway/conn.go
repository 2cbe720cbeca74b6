package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/core/signal"
	"github.com/fleetcore/fleetcore/plugins"
)

const initialBuffer = 2048

// pendingAck is one frame read but not yet acked.
type pendingAck struct {
	ticket *ingest.Ticket // nil: nothing to make durable
	ack    []byte
	close  bool
	recv   time.Time
}

// serveConn runs one TCP connection: read, frame, decode, submit, and ack
// each frame in order once its signals are durable.
func (g *Gateway) serveConn(l *listener, c net.Conn) {
	remote := c.RemoteAddr().String()
	log := g.log.With("listener", l.cfg.Name, "remote", remote)
	sess := l.dec.NewSession(plugins.SessionConfig{
		Transport: plugins.TCP, RemoteAddr: c.RemoteAddr(), MaxFrame: l.cfg.MaxFrame,
		AllowDevice: l.cfg.AllowDevice, Options: l.cfg.Options, Logger: log.Named(l.info.Name),
	})
	ps := g.stats.Protocol(l.info.Name)
	buf := make([]byte, initialBuffer)
	start, end := 0, 0
	var pending []pendingAck
	for {
		if g.isClosing() && end == start {
			return
		}
		// Make room: compact, then grow up to the frame cap (plus one read
		// so an oversized length is seen as such).
		if end == len(buf) {
			if start > 0 {
				copy(buf, buf[start:end])
				end -= start
				start = 0
			} else if len(buf) < l.cfg.MaxFrame+initialBuffer {
				nb := make([]byte, min(2*len(buf), l.cfg.MaxFrame+initialBuffer))
				copy(nb, buf[:end])
				buf = nb
			}
		}
		if end == len(buf) {
			g.rejectFrame(l, sess, c, remote, buf[start:end], time.Now(),
				fmt.Errorf("%w: no complete frame within %d bytes", plugins.ErrTooLarge, l.cfg.MaxFrame))
			return
		}
		c.SetReadDeadline(time.Now().Add(l.cfg.ReadTimeout)) //nolint:errcheck
		n, err := c.Read(buf[end:])
		recv := time.Now().UTC()
		end += n
		if err != nil {
			switch {
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			case errors.Is(err, os.ErrDeadlineExceeded):
				if !g.isClosing() {
					log.Debug("closing idle connection", "idle", l.cfg.ReadTimeout)
				}
			default:
				log.Debug("reading", "error", err)
			}
			if n == 0 {
				if end > start && !g.isClosing() {
					log.Debug("connection closed with a partial frame", "bytes", end-start)
				}
				return
			}
		}
		// Frame and decode everything complete in the buffer.
		var rejectErr error
		var rejectRaw []byte
		closeAfter := false
		for start < end && !closeAfter {
			fn, ferr := sess.Frame(buf[start:end])
			if ferr != nil {
				rejectErr, rejectRaw = fmt.Errorf("framing: %w", ferr), buf[start:end]
				break
			}
			if fn == 0 {
				break
			}
			if fn > end-start {
				rejectErr, rejectRaw = fmt.Errorf("framing: %w: framer claimed %d of %d bytes", plugins.ErrMalformed, fn, end-start), buf[start:end]
				break
			}
			frame := buf[start : start+fn]
			g.stats.Frames.Add(1)
			ps.Frames.Add(1)
			res, derr := sess.Decode(frame, recv)
			if derr == nil {
				derr = checkSignals(res.Signals)
			}
			if derr != nil {
				rejectErr, rejectRaw = derr, frame
				break
			}
			start += fn
			p := pendingAck{ack: res.Ack, close: res.Close, recv: recv}
			if len(res.Signals) > 0 {
				for i := range res.Signals {
					s := &res.Signals[i]
					s.Recv = recv
					if s.Protocol == "" {
						s.Protocol = l.info.Name
					}
				}
				ps.Signals.Add(uint64(len(res.Signals)))
				t, err := g.ingest.Submit(context.Background(), res.Signals)
				if err != nil {
					log.Warn("submitting to ingest", "error", err)
					g.stats.Unacked.Add(1)
					return
				}
				p.ticket = t
			}
			pending = append(pending, p)
			closeAfter = res.Close
		}
		if start == end {
			start, end = 0, 0
		}
		// Ack in order, each after its signals are durable.
		for _, p := range pending {
			if p.ticket != nil {
				<-p.ticket.Done()
				if err := p.ticket.Err(); err != nil {
					g.warnUnacked(err)
					return
				}
			}
			if len(p.ack) > 0 {
				c.SetWriteDeadline(time.Now().Add(l.cfg.WriteTimeout)) //nolint:errcheck
				if _, err := c.Write(p.ack); err != nil {
					log.Debug("writing ack", "error", err)
					return
				}
			}
			g.stats.Acked.Add(1)
			g.stats.AckLatency.Observe(float64(time.Since(p.recv).Microseconds()) / 1000)
			if p.close {
				return
			}
		}
		pending = pending[:0]
		if rejectErr != nil {
			g.rejectFrame(l, sess, c, remote, rejectRaw, recv, rejectErr)
			return
		}
	}
}

// checkSignals rejects a frame with a record that cannot be stored (see
// signal.Check): it would otherwise fail the whole batch it lands in, and
// with it other devices' frames.
func checkSignals(sigs []signal.Signal) error {
	for i := range sigs {
		if err := sigs[i].Check(); err != nil {
			return fmt.Errorf("%w: record %d: %w", plugins.ErrMalformed, i, err)
		}
	}
	return nil
}

// unackedLogEvery bounds the "not durable" warnings: during an outage
// every frame of every device would otherwise log one.
const unackedLogEvery = 10 * time.Second

// warnUnacked counts a frame left unacked and logs at most once per
// unackedLogEvery, with the number of frames since the last line.
func (g *Gateway) warnUnacked(err error) {
	n := g.stats.Unacked.Add(1)
	now := time.Now().UnixNano()
	last := g.lastUnackedLog.Load()
	if now-last < int64(unackedLogEvery) || !g.lastUnackedLog.CompareAndSwap(last, now) {
		return
	}
	since := n - g.unackedLogged.Swap(n)
	g.log.Warn("frames not durable: closed their connections without ack so the devices resend", "frames", since, "error", err)
}

// udpSessions keeps one decoder session per datagram source, so protocols
// that learn state over several datagrams (a clock base, a login) keep it.
// Sources idle longer than the listener's read timeout are forgotten, and
// the map never holds more than the listener's connection cap. Only the
// listener's read loop uses it.
type udpSessions struct {
	max   int
	idle  time.Duration
	m     map[string]*udpSession
	swept time.Time
}

type udpSession struct {
	sess plugins.Session
	seen time.Time
}

func newUDPSessions(max int, idle time.Duration) *udpSessions {
	return &udpSessions{max: max, idle: idle, m: map[string]*udpSession{}}
}

func (u *udpSessions) get(addr net.Addr, now time.Time, create func() plugins.Session) plugins.Session {
	key := addr.String()
	if e, ok := u.m[key]; ok {
		e.seen = now
		return e.sess
	}
	if now.Sub(u.swept) > u.idle/4 {
		for k, e := range u.m {
			if now.Sub(e.seen) > u.idle {
				delete(u.m, k)
			}
		}
		u.swept = now
	}
	if len(u.m) >= u.max {
		var oldest string
		var at time.Time
		for k, e := range u.m {
			if oldest == "" || e.seen.Before(at) {
				oldest, at = k, e.seen
			}
		}
		delete(u.m, oldest)
	}
	e := &udpSession{sess: create(), seen: now}
	u.m[key] = e
	return e.sess
}

// maxUDPInFlight bounds datagrams waiting for durability.
const maxUDPInFlight = 4096

func (g *Gateway) udpLoop(l *listener) {
	defer g.wg.Done()
	sem := make(chan struct{}, maxUDPInFlight)
	buf := make([]byte, 65536)
	ps := g.stats.Protocol(l.info.Name)
	sessions := newUDPSessions(l.cfg.MaxConnections, l.cfg.ReadTimeout)
	for {
		n, addr, err := l.udp.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || g.isClosing() {
				// Wait for in-flight acks before returning.
				for i := 0; i < cap(sem); i++ {
					sem <- struct{}{}
				}
				return
			}
			g.log.Debug("reading datagram", "listener", l.cfg.Name, "error", err)
			continue
		}
		recv := time.Now().UTC()
		dgram := append([]byte(nil), buf[:n]...)
		g.stats.Frames.Add(1)
		ps.Frames.Add(1)
		sess := sessions.get(addr, recv, func() plugins.Session {
			return l.dec.NewSession(plugins.SessionConfig{
				Transport: plugins.UDP, RemoteAddr: addr, MaxFrame: l.cfg.MaxFrame,
				AllowDevice: l.cfg.AllowDevice, Options: l.cfg.Options, Logger: g.log.Named(l.info.Name),
			})
		})
		if n > l.cfg.MaxFrame {
			g.rejectFrame(l, sess, nil, addr.String(), dgram, recv, fmt.Errorf("%w: datagram of %d bytes", plugins.ErrTooLarge, n))
			continue
		}
		res, err := sess.Decode(dgram, recv)
		if err == nil {
			err = checkSignals(res.Signals)
		}
		if err != nil {
			g.rejectFrame(l, sess, nil, addr.String(), dgram, recv, err)
			continue
		}
		var ticket *ingest.Ticket
		if len(res.Signals) > 0 {
			for i := range res.Signals {
				res.Signals[i].Recv = recv
				if res.Signals[i].Protocol == "" {
					res.Signals[i].Protocol = l.info.Name
				}
			}
			ps.Signals.Add(uint64(len(res.Signals)))
			ticket, err = g.ingest.Submit(context.Background(), res.Signals)
			if err != nil {
				g.log.Warn("submitting to ingest", "error", err)
				g.stats.Unacked.Add(1)
				continue
			}
		}
		sem <- struct{}{}
		go func(addr net.Addr, ack []byte, t *ingest.Ticket) {
			defer func() { <-sem }()
			if t != nil {
				<-t.Done()
				if err := t.Err(); err != nil {
					g.warnUnacked(err)
					return
				}
			}
			if len(ack) > 0 {
				l.udp.WriteTo(ack, addr) //nolint:errcheck // datagram: the device resends
			}
			g.stats.Acked.Add(1)
			g.stats.AckLatency.Observe(float64(time.Since(recv).Microseconds()) / 1000)
		}(addr, res.Ack, ticket)
	}
}
