package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/core/tlsconf"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Submitter is the ingest stage as the gateway sees it.
type Submitter interface {
	Submit(ctx context.Context, sigs []signal.Signal) (*ingest.Ticket, error)
}

// Rejection describes a quarantined frame.
type Rejection struct {
	Recv       time.Time
	RemoteAddr string
	Listener   string
	Protocol   string
	DeviceID   string
	Reason     string
	// Raw may alias the connection's buffer: it is valid only during the
	// reject call, which copies what it keeps.
	Raw []byte
}

// ListenerConfig is one listener.
type ListenerConfig struct {
	Name           string
	Transport      plugins.Transport
	Address        string
	MaxFrame       int
	MaxConnections int
	// MaxConnectionsPerIP caps one source's open connections (an IPv4
	// address, an IPv6 /64). Default DefaultMaxConnectionsPerIP.
	MaxConnectionsPerIP int
	ReadTimeout         time.Duration
	WriteTimeout        time.Duration
	// FrameTimeout bounds the time from a frame's first byte to its last:
	// a frame still incomplete after it is quarantined and its connection
	// closed (ReadTimeout only bounds the wait for each read). Time the
	// gateway itself spends (submitting, waiting for durability, acking)
	// does not count. Default DefaultFrameTimeout.
	FrameTimeout time.Duration
	// MaxFramesInFlight and MaxBytesInFlight bound what one TCP
	// connection has read and submitted but not yet acked: the gateway
	// goes on reading and decoding while earlier frames wait for
	// durability, and stops reading at either bound until acks are
	// written. Defaults DefaultMaxFramesInFlight, DefaultMaxBytesInFlight.
	MaxFramesInFlight int
	MaxBytesInFlight  int
	AllowDevice       func(string) bool
	// Options are the listener's decoded options (plugins.DecodeOptions).
	Options plugins.Options
	// TLS, when set, makes a TCP listener speak TLS: each connection's
	// handshake must finish within FrameTimeout, else the connection is
	// closed with the reason logged (nothing is quarantined: no frame was
	// read). Frames, acks and quarantine are then as on plain TCP.
	TLS *tls.Config
	// ProxyProtocol makes a TCP listener expect a PROXY protocol header
	// (version 1 or 2, as HAProxy's send-proxy / send-proxy-v2 write it)
	// at the start of every connection: the device's address it carries is
	// the connection's remote address for the per-IP cap, logs and
	// quarantine. A connection without a valid header within FrameTimeout
	// is closed with the reason logged (nothing is quarantined: no frame
	// was read). A LOCAL header (a balancer's health check) keeps the
	// balancer's own address. The header precedes TLS when both are set.
	ProxyProtocol bool
}

// Gateway runs listeners.
type Gateway struct {
	log    hclog.Logger
	ingest Submitter
	reject func(context.Context, Rejection)

	mu        sync.Mutex
	listeners []*listener
	conns     map[net.Conn]struct{}
	closing   bool
	wg        sync.WaitGroup

	stats  Stats
	limits Limits
	// builtinVersion is the decoder version of built-in decoders
	// (WithBuildVersion).
	builtinVersion string

	refusedLog logLimiter // connections refused over a cap
	budgetLog  logLimiter // connections closed over the buffer budget
	panicLog   logLimiter // decoder panics (with their stacks)
	tlsLog     logLimiter // failed TLS handshakes
	proxyLog   logLimiter // connections without a valid PROXY header
	// unavailableLog: connections closed because their decoder could not
	// serve them (SessionOpener).
	unavailableLog logLimiter

	lastUnackedLog atomic.Int64  // unix nanos of the last "not durable" warning
	unackedLogged  atomic.Uint64 // Unacked count at that warning
}

// Stats are the gateway's counters, shared by every listener.
type Stats struct {
	Accepted atomic.Uint64
	Refused  atomic.Uint64 // over a connection cap (any; see RefusedBy)
	Open     atomic.Int64
	// FramesTimedOut counts partial frames quarantined because they were
	// not complete within the listener's FrameTimeout.
	FramesTimedOut atomic.Uint64
	// BufferBudgetClosed counts connections closed because the partial
	// frame they held needed more than Limits.MaxBufferedBytes had left.
	BufferBudgetClosed atomic.Uint64
	// Buffered is the bytes of connection buffers beyond their initial
	// size, the part that Limits.MaxBufferedBytes bounds.
	Buffered atomic.Int64
	Frames   atomic.Uint64
	Rejected atomic.Uint64
	Acked    atomic.Uint64
	// AckWrites counts the writes that carried TCP acks: the acks of the
	// frames ready together go out in one write.
	AckWrites atomic.Uint64
	Unacked   atomic.Uint64 // frames whose signals were not durable
	// Unavailable counts TCP connections closed and UDP datagrams dropped
	// at once because the listener's decoder could not serve them (see
	// SessionOpener); nothing of theirs was quarantined.
	Unavailable atomic.Uint64
	// TLSFailed counts TLS connections closed because their handshake
	// failed or timed out (plain text on a TLS port among them).
	TLSFailed atomic.Uint64
	// ProxyRefused counts connections to proxy_protocol listeners closed
	// because they sent no valid PROXY header in time.
	ProxyRefused atomic.Uint64
	AckLatency   *ingest.Histogram
	perProtocol  sync.Map // protocol -> *ProtocolStats
	refused      refusedCounts
}

// ProtocolStats counts one protocol's frames.
type ProtocolStats struct {
	Frames   atomic.Uint64
	Rejected atomic.Uint64
	Signals  atomic.Uint64
	// Panics counts frames whose Frame or Decode panicked (quarantined,
	// their connection closed).
	Panics atomic.Uint64
}

// Protocol returns the counters of one protocol.
func (s *Stats) Protocol(name string) *ProtocolStats {
	if v, ok := s.perProtocol.Load(name); ok {
		return v.(*ProtocolStats)
	}
	v, _ := s.perProtocol.LoadOrStore(name, &ProtocolStats{})
	return v.(*ProtocolStats)
}

// Protocols calls fn for each protocol's counters.
func (s *Stats) Protocols(fn func(name string, ps *ProtocolStats)) {
	s.perProtocol.Range(func(k, v any) bool { fn(k.(string), v.(*ProtocolStats)); return true })
}

// New makes a gateway that submits to in and reports rejected frames to
// reject, which must not block: it is called from the connection's
// goroutine, or from a UDP listener's only read loop (the quarantine stage,
// core/quarantine, queues and returns at once).
func New(log hclog.Logger, in Submitter, reject func(context.Context, Rejection), opts ...Option) *Gateway {
	g := &Gateway{log: log, ingest: in, reject: reject, conns: map[net.Conn]struct{}{}}
	g.limits = Limits{MaxConnections: DefaultMaxConnections, MaxBufferedBytes: DefaultMaxBufferedBytes}
	g.builtinVersion = builtinVersion(DefaultBuildVersion)
	for _, o := range opts {
		o(g)
	}
	g.stats.AckLatency = ingest.NewHistogram(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
	return g
}

// Stats returns the live counters.
func (g *Gateway) Stats() *Stats { return &g.stats }

type listener struct {
	// cfg is the config Listen was given; lim holds its live limits (a
	// TCP listener reads them there, SetListenerLimits changes them).
	cfg  ListenerConfig
	lim  atomic.Pointer[ListenerLimits]
	dec  plugins.Decoder
	info plugins.Info
	tcp  net.Listener
	udp  net.PacketConn
	open atomic.Int64
	// pending counts proxied connections still reading their PROXY header
	// (bounded by MaxConnections, like open).
	pending atomic.Int64

	mu    sync.Mutex
	perIP map[string]int // open connections per sourceKey
}

// Listen binds a listener; Serve runs it. It fails when the decoder does
// not support the transport or the address is taken.
func (g *Gateway) Listen(cfg ListenerConfig, dec plugins.Decoder) (net.Addr, error) {
	info := dec.Info()
	ok := false
	for _, t := range info.Transports {
		ok = ok || t == cfg.Transport
	}
	if !ok {
		return nil, fmt.Errorf("listener %s: protocol %s does not support %s", cfg.Name, info.Name, cfg.Transport)
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 64 << 10
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 50000
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.FrameTimeout <= 0 {
		cfg.FrameTimeout = DefaultFrameTimeout
	}
	if cfg.MaxConnectionsPerIP <= 0 {
		cfg.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if cfg.MaxFramesInFlight <= 0 {
		cfg.MaxFramesInFlight = DefaultMaxFramesInFlight
	}
	if cfg.MaxBytesInFlight <= 0 {
		cfg.MaxBytesInFlight = DefaultMaxBytesInFlight
	}
	if cfg.TLS != nil && cfg.Transport != plugins.TCP {
		return nil, fmt.Errorf("listener %s: tls needs transport tcp", cfg.Name)
	}
	if cfg.ProxyProtocol && cfg.Transport != plugins.TCP {
		return nil, fmt.Errorf("listener %s: proxy_protocol needs transport tcp", cfg.Name)
	}
	l := &listener{cfg: cfg, dec: dec, info: info, perIP: map[string]int{}}
	l.lim.Store(&ListenerLimits{MaxFrame: cfg.MaxFrame, MaxConnections: cfg.MaxConnections,
		MaxConnectionsPerIP: cfg.MaxConnectionsPerIP, ReadTimeout: cfg.ReadTimeout, FrameTimeout: cfg.FrameTimeout})
	var addr net.Addr
	switch cfg.Transport {
	case plugins.TCP:
		ln, err := net.Listen("tcp", cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", cfg.Name, err)
		}
		l.tcp, addr = ln, ln.Addr()
	case plugins.UDP:
		pc, err := net.ListenPacket("udp", cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", cfg.Name, err)
		}
		l.udp, addr = pc, pc.LocalAddr()
	default:
		return nil, fmt.Errorf("listener %s: unknown transport %q", cfg.Name, cfg.Transport)
	}
	g.mu.Lock()
	g.listeners = append(g.listeners, l)
	g.mu.Unlock()
	g.log.Info("listening", "listener", cfg.Name, "protocol", info.Name, "transport", cfg.Transport, "address", addr.String(), "tls", cfg.TLS != nil, "proxy_protocol", cfg.ProxyProtocol)
	return addr, nil
}

// ListenerLimits are the options of a TCP listener that SetListenerLimits
// changes while it runs (the fields of ListenerConfig of the same names;
// zero keeps the current value).
type ListenerLimits struct {
	MaxFrame            int
	MaxConnections      int
	MaxConnectionsPerIP int
	ReadTimeout         time.Duration
	FrameTimeout        time.Duration
}

// limits are the listener's limits in use.
func (l *listener) limits() ListenerLimits { return *l.lim.Load() }

// ErrNotLive: SetListenerLimits on a listener whose limits are fixed at
// Listen (UDP: its session table and read buffer are sized then).
var ErrNotLive = errors.New("the listener's limits are fixed until a restart")

// SetListenerLimits changes the limits of the TCP listener named name (a
// reload): the caps apply to the next connection admitted, the read and
// frame timeouts to the next read of every open connection, max_frame to
// connections opened from then on. Zero fields keep their value.
func (g *Gateway) SetListenerLimits(name string, lim ListenerLimits) error {
	g.mu.Lock()
	var l *listener
	for _, x := range g.listeners {
		if x.cfg.Name == name {
			l = x
		}
	}
	g.mu.Unlock()
	if l == nil {
		return fmt.Errorf("listener %s: no such listener", name)
	}
	if l.cfg.Transport != plugins.TCP {
		return fmt.Errorf("listener %s: %w", name, ErrNotLive)
	}
	cur := l.limits()
	set := func(p *int, v int) {
		if v > 0 {
			*p = v
		}
	}
	setD := func(p *time.Duration, v time.Duration) {
		if v > 0 {
			*p = v
		}
	}
	set(&cur.MaxFrame, lim.MaxFrame)
	set(&cur.MaxConnections, lim.MaxConnections)
	set(&cur.MaxConnectionsPerIP, lim.MaxConnectionsPerIP)
	setD(&cur.ReadTimeout, lim.ReadTimeout)
	setD(&cur.FrameTimeout, lim.FrameTimeout)
	l.lim.Store(&cur)
	return nil
}

// Serve runs every bound listener until Shutdown.
func (g *Gateway) Serve() {
	g.mu.Lock()
	ls := append([]*listener(nil), g.listeners...)
	g.mu.Unlock()
	for _, l := range ls {
		g.wg.Add(1)
		if l.tcp != nil {
			go g.acceptLoop(l)
		} else {
			go g.udpLoop(l)
		}
	}
}

// Shutdown stops accepting, interrupts idle reads, lets connections commit
// and ack what they have read, and closes them; it gives up waiting when
// ctx ends and closes what is left.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closing = true
	for _, l := range g.listeners {
		if l.tcp != nil {
			l.tcp.Close()
		}
		if l.udp != nil {
			l.udp.SetReadDeadline(time.Now()) //nolint:errcheck // wakes the read loop
		}
	}
	for c := range g.conns {
		c.SetReadDeadline(time.Now()) //nolint:errcheck // interrupts the blocked read only
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		g.mu.Lock()
		for c := range g.conns {
			c.Close()
		}
		g.mu.Unlock()
		<-done
	}
	g.mu.Lock()
	for _, l := range g.listeners {
		if l.udp != nil {
			l.udp.Close()
		}
	}
	g.mu.Unlock()
	if ctx.Err() != nil {
		return fmt.Errorf("shutting down gateway: %w", ctx.Err())
	}
	return nil
}

func (g *Gateway) acceptLoop(l *listener) {
	defer g.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary (EMFILE and the like): back off, keep serving.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			g.log.Warn("accepting connection", "listener", l.cfg.Name, "error", err)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if l.cfg.ProxyProtocol {
			if !g.startProxied(l, c) {
				return
			}
			continue
		}
		ip := sourceKey(c.RemoteAddr())
		if reason := g.admit(l, ip); reason != "" {
			g.refuse(l, c, reason)
			continue
		}
		g.mu.Lock()
		if g.closing {
			g.mu.Unlock()
			g.release(l, ip)
			c.Close()
			return
		}
		g.conns[c] = struct{}{}
		g.wg.Add(1)
		g.mu.Unlock()
		g.stats.Accepted.Add(1)
		go func() {
			defer g.wg.Done()
			defer func() {
				c.Close()
				g.release(l, ip)
				g.mu.Lock()
				delete(g.conns, c)
				g.mu.Unlock()
			}()
			g.serveAdmitted(l, c)
		}()
	}
}

// serveAdmitted serves a connection that holds its slots: the TLS
// handshake when the listener has TLS, then its frames.
func (g *Gateway) serveAdmitted(l *listener, c net.Conn) {
	defer g.recoverConn(l, c)
	if l.cfg.TLS == nil {
		g.serveConn(l, c)
		return
	}
	if tc, ok := g.handshake(l, c); ok {
		g.serveConn(l, tc)
	}
}

func (g *Gateway) isClosing() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closing
}

// handshake runs a TLS connection's handshake within the listener's
// FrameTimeout; on failure it logs why (rate-limited) and reports false.
func (g *Gateway) handshake(l *listener, c net.Conn) (*tls.Conn, bool) {
	tc := tls.Server(c, l.cfg.TLS)
	c.SetDeadline(time.Now().Add(l.limits().FrameTimeout)) //nolint:errcheck // a failed set shows in the handshake
	err := tc.Handshake()
	if err == nil {
		err = c.SetDeadline(time.Time{})
	}
	if err != nil {
		g.stats.TLSFailed.Add(1)
		if n, ok := g.tlsLog.allow(); ok {
			g.log.Warn("closing connection: TLS handshake failed", "listener", l.cfg.Name,
				"remote", c.RemoteAddr().String(), "error", tlsconf.HandshakeError(err), "failed_since_last_line", n)
		}
		return nil, false
	}
	return tc, true
}
