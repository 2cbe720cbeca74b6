package gateway

import (
	"errors"
	"fmt"
	"net"

	proxyproto "github.com/pires/go-proxyproto"
)

// errProxyTransport: a PROXY header for a transport other than TCP.
var errProxyTransport = errors.New("PROXY header is not for TCP over IPv4 or IPv6")

// startProxied runs a connection of a proxy_protocol listener in its own
// goroutine: the PROXY header is read there (a slow balancer or a port
// scanner never holds up the accept loop), then the connection takes its
// slots under the device's address and is served like any other. Header
// reads in progress are bounded by the listener's MaxConnections. It
// reports false when the gateway is shutting down.
func (g *Gateway) startProxied(l *listener, c net.Conn) bool {
	if l.pending.Add(1) > int64(l.cfg.MaxConnections) {
		l.pending.Add(-1)
		g.refuse(l, c, RefusedListenerCap)
		return true
	}
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		l.pending.Add(-1)
		c.Close()
		return false
	}
	g.conns[c] = struct{}{} // Shutdown interrupts the header read too
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		defer func() {
			c.Close()
			g.mu.Lock()
			delete(g.conns, c)
			g.mu.Unlock()
		}()
		pc, err := readProxyHeader(l, c)
		l.pending.Add(-1)
		if err != nil {
			g.refuseProxy(l, c, err)
			return
		}
		ip := sourceKey(pc.RemoteAddr())
		if reason := g.admit(l, ip); reason != "" {
			g.refuse(l, pc, reason)
			return
		}
		defer g.release(l, ip)
		if g.isClosing() {
			return
		}
		g.stats.Accepted.Add(1)
		g.serveAdmitted(l, pc)
	}()
	return true
}

// readProxyHeader reads and checks the PROXY header at the start of c
// (within the listener's FrameTimeout); the returned connection reports
// the device's address as its remote address.
func readProxyHeader(l *listener, c net.Conn) (*proxyproto.Conn, error) {
	pc := proxyproto.NewConn(c,
		proxyproto.WithPolicy(proxyproto.REQUIRE),
		proxyproto.SetReadHeaderTimeout(l.cfg.FrameTimeout),
		proxyproto.ValidateHeader(func(h *proxyproto.Header) error {
			if h.Command.IsLocal() || (h.TransportProtocol.IsStream() && (h.TransportProtocol.IsIPv4() || h.TransportProtocol.IsIPv6())) {
				return nil
			}
			return errProxyTransport
		}))
	// A zero-length read processes the header and nothing else.
	if _, err := pc.Read(nil); err != nil {
		return nil, err
	}
	return pc, nil
}

// refuseProxy counts, logs (rate-limited) and closes a connection that
// sent no valid PROXY header.
func (g *Gateway) refuseProxy(l *listener, c net.Conn, err error) {
	g.stats.ProxyRefused.Add(1)
	c.Close()
	if n, ok := g.proxyLog.allow(); ok {
		g.log.Warn("closing connection: no valid PROXY protocol header", "listener", l.cfg.Name,
			"remote", c.RemoteAddr().String(), "reason", proxyReason(err), "refused_since_last_line", n)
	}
}

// proxyReason says in a few words why a PROXY header was not accepted.
func proxyReason(err error) string {
	switch {
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		return "the connection did not start with a PROXY header within frame_timeout (does the balancer send send-proxy-v2, and is this port reachable only through it?)"
	case errors.Is(err, errProxyTransport):
		return errProxyTransport.Error()
	default:
		return fmt.Sprintf("malformed PROXY header: %v", err)
	}
}
