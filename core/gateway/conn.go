package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

const initialBuffer = 2048

// pendingAck is one frame read but not yet acked.
type pendingAck struct {
	ticket *ingest.Ticket // nil: nothing to make durable
	ack    []byte
	close  bool
	recv   time.Time
	size   int // the frame's bytes (the pipeline's byte bound)
}

// tcpConn is one TCP connection's state between reads: its framing loop
// (which owns the buffer of bytes read and not yet framed), the frames
// waiting for their acks, and the clock of the partial frame. It is the
// reader and the frame handler of its plugins.Framer; its pipeline acks
// the frames in order from a writer goroutine while the reader goes on.
type tcpConn struct {
	g      *Gateway
	l      *listener
	c      net.Conn
	remote string
	log    hclog.Logger
	sess   plugins.Session
	ps     *ProtocolStats
	fr     *plugins.Framer // grown bytes are reserved from the gateway's budget

	pl   *pipeline
	recv time.Time // when the last read returned, UTC: the receive time of its frames

	// frameStart is when the first byte of the partial frame buffered
	// arrived, moved later by the time the gateway spent between reads
	// since (submitting, waiting for durability, acking).
	frameStart time.Time
	readAt     time.Time // when the last read returned
}

// errStop ends a connection's framing loop when the reason is already
// dealt with (logged, quarantined or acked); errAbort when submitting
// failed and the connection closes without ack.
var (
	errStop  = errors.New("connection done")
	errAbort = errors.New("submitting failed")
)

// serveConn runs one TCP connection through the framing loop: read,
// frame, decode, submit, and ack each frame in order once its signals are
// durable. Reading goes on while earlier frames wait for durability, up
// to the listener's bounds of frames and bytes in flight (pipeline). A
// frame the session refuses is quarantined (after the frames before it
// are acked) and closes the connection; so does a frame whose Frame or
// Decode panics, except that the frames before it not acked yet are then
// left unacked (the device resends them; their keys make the resend a
// no-op).
func (g *Gateway) serveConn(l *listener, c net.Conn) {
	cn, err := g.newTCPConn(l, c)
	if err != nil {
		g.unavailable(l, c.RemoteAddr(), err)
		return
	}
	defer closeSession(cn.sess)
	defer cn.fr.Close()
	err = cn.fr.Run(cn, cn)
	var fe *plugins.FrameError
	if errors.Is(err, errAbort) || errors.As(err, &fe) && isPanic(fe.Err) {
		cn.pl.abort()
	} else if !cn.pl.drain() && fe != nil {
		return
	}
	switch {
	case err == nil:
		if cn.fr.Buffered() > 0 && !g.isClosing() {
			cn.log.Debug("connection closed with a partial frame", "bytes", cn.fr.Buffered())
		}
	case errors.Is(err, plugins.ErrBufferRefused):
		g.stats.BufferBudgetClosed.Add(1)
		if n, ok := g.budgetLog.allow(); ok {
			cn.log.Warn("closing connection without ack: the gateway's buffer budget has no room for its partial frame",
				"buffered", cn.fr.Buffered(), "budget", g.limits.MaxBufferedBytes, "closed_since_last_line", n)
		}
	case errors.As(err, &fe):
		if isPanic(fe.Err) {
			cn.panicked(fe.Err)
		}
		g.rejectFrame(l, cn.sess, c, cn.remote, fe.Raw, cn.rejectTime(), fe.Err)
	}
}

func (g *Gateway) newTCPConn(l *listener, c net.Conn) (*tcpConn, error) {
	remote := c.RemoteAddr().String()
	log := g.log.With("listener", l.cfg.Name, "remote", remote)
	maxFrame := l.limits().MaxFrame
	sess, err := l.openSession(plugins.SessionConfig{
		Transport: plugins.TCP, RemoteAddr: c.RemoteAddr(), MaxFrame: maxFrame,
		AllowDevice: l.cfg.AllowDevice, Options: l.cfg.Options, Logger: log.Named(l.info.Name),
	})
	if err != nil {
		return nil, err
	}
	cn := &tcpConn{g: g, l: l, c: c, remote: remote, log: log, sess: sess, ps: g.stats.Protocol(l.info.Name)}
	cn.pl = newPipeline(cn, l.cfg.MaxFramesInFlight, l.cfg.MaxBytesInFlight)
	cn.fr = plugins.NewFramer(plugins.FramerConfig{
		Frame:    func(buf []byte) (int, error) { return callFrame(sess, buf) },
		MaxFrame: maxFrame,
		Slack:    initialBuffer,
		Grow:     g.reserveBuffer,
		Release:  g.releaseBuffer,
	})
	return cn, nil
}

// rejectTime is the receive time of a rejected frame: its read's, or now
// before the first read returned.
func (cn *tcpConn) rejectTime() time.Time {
	if cn.recv.IsZero() {
		return time.Now().UTC()
	}
	return cn.recv
}

// Read reads once from the connection for the framing loop, with a
// deadline of the read timeout or, when a partial frame is buffered, the
// end of its frame timeout if that is sooner. It ends the loop (io.EOF,
// or errStop once the partial frame is quarantined or the pipeline has
// stopped) at end of stream, when idle, on an error, on a partial frame
// past its frame timeout, when an earlier frame was not durable or its
// ack could not be written, and when the gateway is closing with nothing
// buffered. Bytes read with an
// error are handed on; the error is seen again by the next read.
func (cn *tcpConn) Read(p []byte) (int, error) {
	g, cfg := cn.g, cn.l.limits()
	buffered := cn.fr.Buffered() > 0
	if g.isClosing() && !buffered {
		return 0, io.EOF
	}
	now := time.Now()
	// The partial frame's clock stops while the gateway works: between
	// reads, and while earlier frames of the connection wait for their
	// acks (a device may hold the rest of a frame until then).
	cn.frameStart = cn.frameStart.Add(now.Sub(cn.readAt))
	busy := cn.pl.busyTotal(now)
	for {
		deadline := now.Add(cfg.ReadTimeout)
		frameDeadline := false
		if buffered {
			if fd := cn.frameStart.Add(cfg.FrameTimeout); fd.Before(deadline) {
				deadline, frameDeadline = fd, true
			}
		}
		if !cn.pl.readDeadline(deadline) {
			return 0, errStop
		}
		n, err := cn.c.Read(p)
		cn.readAt = time.Now()
		cn.recv = cn.readAt.UTC()
		if buffered {
			b := cn.pl.busyTotal(cn.readAt)
			cn.frameStart = cn.frameStart.Add(b - busy)
			busy = b
		}
		if n > 0 && !buffered {
			cn.frameStart = cn.readAt
		}
		if err == nil || n > 0 {
			return n, nil
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		case errors.Is(err, os.ErrDeadlineExceeded):
			if cn.pl.isFailed() {
				return 0, errStop
			}
			if g.isClosing() {
				break
			}
			if frameDeadline {
				now = cn.readAt
				if now.Before(cn.frameStart.Add(cfg.FrameTimeout)) {
					continue // the clock stopped while acks were pending
				}
				cn.pl.drain() // the frames before it are acked first, and the writer is gone
				g.stats.FramesTimedOut.Add(1)
				g.rejectFrame(cn.l, cn.sess, cn.c, cn.remote, cn.fr.Pending(), cn.recv,
					fmt.Errorf("%w within %s", ErrFrameTimeout, cfg.FrameTimeout))
				return 0, errStop
			}
			cn.log.Debug("closing idle connection", "idle", cfg.ReadTimeout)
		default:
			cn.log.Debug("reading", "error", err)
		}
		return 0, io.EOF
	}
}

// Frame decodes and submits one frame for the framing loop, queueing it
// for its ack; it first waits for room in the pipeline. A refused frame
// is returned as a *plugins.FrameError with its bytes; a frame that
// closes the connection stops the loop after the frames before it are
// acked.
func (cn *tcpConn) Frame(frame []byte) (bool, error) {
	g := cn.g
	if !cn.pl.room(len(frame)) {
		return false, errStop
	}
	g.stats.Frames.Add(1)
	cn.ps.Frames.Add(1)
	res, err := callDecode(cn.sess, frame, cn.recv)
	if err == nil {
		err = plugins.CheckSignals(res.Signals)
	}
	if err != nil {
		return false, &plugins.FrameError{Err: err, Raw: frame}
	}
	cn.frameStart = cn.readAt // what follows arrived with this read
	p := pendingAck{ack: res.Ack, close: res.Close, recv: cn.recv, size: len(frame)}
	if len(res.Signals) > 0 {
		g.stampSignals(cn.l, cn.ps, res.Signals, cn.recv)
		t, err := g.ingest.Submit(context.Background(), res.Signals)
		if err != nil {
			cn.log.Warn("submitting to ingest", "error", err)
			g.stats.Unacked.Add(1)
			return false, errAbort
		}
		p.ticket = t
	}
	cn.pl.push(p)
	return res.Close, nil
}

// Flush hands the frames of one read to the pipeline's writer for the
// framing loop, without waiting for their acks; errStop closes the
// connection (an earlier frame was not durable or its ack not written).
func (cn *tcpConn) Flush() error {
	if !cn.pl.flush() {
		return errStop
	}
	return nil
}

// panicked counts and logs a decoder panic on this connection.
func (cn *tcpConn) panicked(err error) {
	cn.ps.Panics.Add(1)
	cn.g.logPanic(cn.l, cn.remote, err)
}

// stampSignals sets the receive time and, where the decoder left them
// empty, the protocol and the decoder version of a frame's signals, and
// counts them.
func (g *Gateway) stampSignals(l *listener, ps *ProtocolStats, sigs []signal.Signal, recv time.Time) {
	version := ""
	for i := range sigs {
		s := &sigs[i]
		s.Recv = recv
		if s.Protocol == "" {
			s.Protocol = l.info.Name
		}
		if s.DecoderVersion == "" {
			if version == "" {
				version = g.decoderVersion(l.dec)
			}
			s.DecoderVersion = version
		}
	}
	ps.Signals.Add(uint64(len(sigs)))
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

func (u *udpSessions) get(addr net.Addr, now time.Time, create func() (plugins.Session, error)) (plugins.Session, error) {
	key := addr.String()
	if e, ok := u.m[key]; ok {
		e.seen = now
		return e.sess, nil
	}
	if now.Sub(u.swept) > u.idle/4 {
		for k, e := range u.m {
			if now.Sub(e.seen) > u.idle {
				delete(u.m, k)
				closeSession(e.sess)
			}
		}
		u.swept = now
	}
	sess, err := create()
	if err != nil {
		return nil, err
	}
	if len(u.m) >= u.max {
		var oldest string
		var at time.Time
		for k, e := range u.m {
			if oldest == "" || e.seen.Before(at) {
				oldest, at = k, e.seen
			}
		}
		closeSession(u.m[oldest].sess)
		delete(u.m, oldest)
	}
	u.m[key] = &udpSession{sess: sess, seen: now}
	return sess, nil
}

// drop forgets a source's session (after its decoder panicked: the next
// datagram starts from a fresh one).
func (u *udpSessions) drop(addr net.Addr) {
	if e, ok := u.m[addr.String()]; ok {
		delete(u.m, addr.String())
		closeSession(e.sess)
	}
}

// closeAll forgets every session (the listener stopped).
func (u *udpSessions) closeAll() {
	for k, e := range u.m {
		delete(u.m, k)
		closeSession(e.sess)
	}
}

// maxUDPInFlight bounds datagrams waiting for durability.
const maxUDPInFlight = 4096

func (g *Gateway) udpLoop(l *listener) {
	defer g.wg.Done()
	sem := make(chan struct{}, maxUDPInFlight)
	buf := make([]byte, 65536)
	sessions := newUDPSessions(l.cfg.MaxConnections, l.cfg.ReadTimeout)
	for {
		n, addr, err := l.udp.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || g.isClosing() {
				// Wait for in-flight acks before returning.
				for i := 0; i < cap(sem); i++ {
					sem <- struct{}{}
				}
				sessions.closeAll()
				return
			}
			g.log.Debug("reading datagram", "listener", l.cfg.Name, "error", err)
			continue
		}
		g.serveDatagram(l, sessions, sem, addr, append([]byte(nil), buf[:n]...))
	}
}

// serveDatagram decodes one datagram in its source's session, submits its
// signals and acks it from a goroutine once they are durable. A panic of
// the session quarantines the datagram and drops the session; the loop
// carries on.
func (g *Gateway) serveDatagram(l *listener, sessions *udpSessions, sem chan struct{}, addr net.Addr, dgram []byte) {
	recv := time.Now().UTC()
	ps := g.stats.Protocol(l.info.Name)
	g.stats.Frames.Add(1)
	ps.Frames.Add(1)
	defer func() {
		// Backstop for panics outside Decode (NewSession, DeviceID).
		if p := recover(); p != nil {
			sessions.drop(addr)
			ps.Panics.Add(1)
			g.logPanic(l, addr.String(), &decoderPanic{in: "session", value: p, stack: shortStack(debug.Stack())})
		}
	}()
	sess, err := sessions.get(addr, recv, func() (plugins.Session, error) {
		return l.openSession(plugins.SessionConfig{
			Transport: plugins.UDP, RemoteAddr: addr, MaxFrame: l.cfg.MaxFrame,
			AllowDevice: l.cfg.AllowDevice, Options: l.cfg.Options, Logger: g.log.Named(l.info.Name),
		})
	})
	if err != nil {
		g.unavailable(l, addr, err)
		return
	}
	if len(dgram) > l.cfg.MaxFrame {
		g.rejectFrame(l, sess, nil, addr.String(), dgram, recv, fmt.Errorf("%w: datagram of %d bytes", plugins.ErrTooLarge, len(dgram)))
		return
	}
	res, err := callDecode(sess, dgram, recv)
	if err == nil {
		err = plugins.CheckSignals(res.Signals)
	}
	if err != nil {
		if isPanic(err) {
			sessions.drop(addr)
			ps.Panics.Add(1)
			g.logPanic(l, addr.String(), err)
		}
		g.rejectFrame(l, sess, nil, addr.String(), dgram, recv, err)
		return
	}
	var ticket *ingest.Ticket
	if len(res.Signals) > 0 {
		g.stampSignals(l, ps, res.Signals, recv)
		ticket, err = g.ingest.Submit(context.Background(), res.Signals)
		if err != nil {
			g.log.Warn("submitting to ingest", "error", err)
			g.stats.Unacked.Add(1)
			return
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
