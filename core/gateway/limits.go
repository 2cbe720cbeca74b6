package gateway

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what all listeners of a gateway hold together.
type Limits struct {
	// MaxConnections caps open TCP connections across every listener;
	// further connections are refused. Default 100000.
	MaxConnections int
	// MaxBufferedBytes caps the bytes of frame buffers beyond each
	// connection's initial 2 KiB, across every connection: a connection
	// whose partial frame needs a larger buffer than the budget has left
	// is closed without ack (and without quarantine: the frame is not at
	// fault). Buffers shrink back once the large frame is consumed.
	// Default 32 MiB.
	MaxBufferedBytes int64
}

// Default limits, also used for a zero field of Limits.
const (
	DefaultMaxConnections      = 100000
	DefaultMaxBufferedBytes    = 32 << 20
	DefaultFrameTimeout        = 30 * time.Second
	DefaultMaxConnectionsPerIP = 1000
)

// Option configures a Gateway at New.
type Option func(*Gateway)

// WithLimits sets the gateway-wide limits; a zero field keeps its default.
func WithLimits(lim Limits) Option {
	return func(g *Gateway) {
		if lim.MaxConnections > 0 {
			g.limits.MaxConnections = lim.MaxConnections
		}
		if lim.MaxBufferedBytes > 0 {
			g.limits.MaxBufferedBytes = lim.MaxBufferedBytes
		}
	}
}

// ErrFrameTimeout: a frame's first byte arrived more than the listener's
// FrameTimeout ago and the frame is still not complete (a slow sender).
// The partial frame is quarantined and the connection closed.
var ErrFrameTimeout = errors.New("frame not complete")

// Reasons a connection is refused at accept, the values of
// Stats.RefusedBy.
const (
	RefusedListenerCap = "listener_cap" // the listener's max_connections
	RefusedIPCap       = "ip_cap"       // the listener's max_connections_per_ip
	RefusedGatewayCap  = "gateway_cap"  // gateway.max_connections
)

// refusedCounts counts refused connections per reason.
type refusedCounts struct {
	listener, ip, gateway atomic.Uint64
}

func (r *refusedCounts) counter(reason string) *atomic.Uint64 {
	switch reason {
	case RefusedIPCap:
		return &r.ip
	case RefusedGatewayCap:
		return &r.gateway
	default:
		return &r.listener
	}
}

// RefusedBy returns the connections refused for one of the Refused…
// reasons.
func (s *Stats) RefusedBy(reason string) uint64 { return s.refused.counter(reason).Load() }

// admit takes a connection slot on l, its source's slot and a gateway
// slot, or returns the reason it may not have one (and takes nothing).
// release gives the slots back.
func (g *Gateway) admit(l *listener, ip string) string {
	lim := l.limits()
	if l.open.Add(1) > int64(lim.MaxConnections) {
		l.open.Add(-1)
		return RefusedListenerCap
	}
	l.mu.Lock()
	if l.perIP[ip] >= lim.MaxConnectionsPerIP {
		l.mu.Unlock()
		l.open.Add(-1)
		return RefusedIPCap
	}
	l.perIP[ip]++
	l.mu.Unlock()
	if g.stats.Open.Add(1) > int64(g.limits.MaxConnections) {
		g.stats.Open.Add(-1)
		g.releaseIP(l, ip)
		l.open.Add(-1)
		return RefusedGatewayCap
	}
	return ""
}

func (g *Gateway) release(l *listener, ip string) {
	g.stats.Open.Add(-1)
	g.releaseIP(l, ip)
	l.open.Add(-1)
}

func (g *Gateway) releaseIP(l *listener, ip string) {
	l.mu.Lock()
	if l.perIP[ip] <= 1 {
		delete(l.perIP, ip)
	} else {
		l.perIP[ip]--
	}
	l.mu.Unlock()
}

// refuse counts and closes a connection refused at accept, logging at
// most one line per logEvery for all refusals together.
func (g *Gateway) refuse(l *listener, c net.Conn, reason string) {
	g.stats.Refused.Add(1)
	g.stats.refused.counter(reason).Add(1)
	remote := c.RemoteAddr().String()
	c.Close()
	if n, ok := g.refusedLog.allow(); ok {
		g.log.Warn("refusing connections over a connection cap", "listener", l.cfg.Name,
			"remote", remote, "reason", reason, "refused_since_last_line", n,
			"listener_cap", l.limits().MaxConnections, "ip_cap", l.limits().MaxConnectionsPerIP, "gateway_cap", g.limits.MaxConnections)
	}
}

// sourceKey is what the per-IP cap counts: the IPv4 address, or the /64
// of an IPv6 address (one host is routinely given a whole /64).
func sourceKey(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String()
		}
		return host
	}
	if v4 := ta.IP.To4(); v4 != nil {
		return v4.String()
	}
	return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// reserveBuffer takes n bytes of the gateway's buffer budget, or reports
// that the budget has not that much left.
func (g *Gateway) reserveBuffer(n int) bool {
	if g.stats.Buffered.Add(int64(n)) > g.limits.MaxBufferedBytes {
		g.stats.Buffered.Add(-int64(n))
		return false
	}
	return true
}

func (g *Gateway) releaseBuffer(n int) { g.stats.Buffered.Add(-int64(n)) }

// logEvery bounds the rate of log lines that an attacker or an outage
// could otherwise produce per connection or per frame.
const logEvery = 10 * time.Second

// logLimiter lets one log line through per logEvery and counts the ones
// it held back.
type logLimiter struct {
	mu      sync.Mutex
	last    time.Time
	skipped uint64
}

// allow reports whether to log now and how many events were held back
// since the last line (this one included).
func (r *logLimiter) allow() (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.skipped++
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < logEvery {
		return 0, false
	}
	n := r.skipped
	r.last, r.skipped = now, 0
	return n, true
}
