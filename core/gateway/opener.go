package gateway

import (
	"net"

	"github.com/fleetcore/fleetcore/plugins"
)

// SessionOpener is an optional plugins.Decoder capability of a decoder
// that may be unable to serve a new connection at the moment: a drop-in
// WASM decoder (plugins/wasmdecoder) with no version loaded, or whose
// version does not take the listener's transport or options. The gateway
// calls OpenSession in place of NewSession for every TCP connection and
// every new UDP source; an error closes the connection (drops the
// datagram) at once with a logged reason, and counts it in
// Stats.Unavailable. Nothing is quarantined: the device's bytes are not at
// fault, and it resends them once a version is in service.
type SessionOpener interface {
	OpenSession(cfg plugins.SessionConfig) (plugins.Session, error)
}

// SessionCloser is an optional plugins.Session capability: the gateway
// calls Close once it is done with the session (its TCP connection
// closed, its UDP source forgotten or the listener stopped), so that the
// session can release what it holds (a WASM decoder version it pins).
// The session is not used after Close.
type SessionCloser interface {
	Close()
}

// openSession makes a listener's session for a connection or datagram
// source: through SessionOpener when the decoder has it.
func (l *listener) openSession(cfg plugins.SessionConfig) (plugins.Session, error) {
	if o, ok := l.dec.(SessionOpener); ok {
		return o.OpenSession(cfg)
	}
	return l.dec.NewSession(cfg), nil
}

// closeSession calls the session's Close when it has one.
func closeSession(s plugins.Session) {
	if c, ok := s.(SessionCloser); ok {
		c.Close()
	}
}

// unavailable counts and logs (at most once per logEvery) a connection
// or datagram that the listener's decoder could not serve.
func (g *Gateway) unavailable(l *listener, remote net.Addr, err error) {
	g.stats.Unavailable.Add(1)
	if n, ok := g.unavailableLog.allow(); ok {
		g.log.Warn("closing connection: its decoder cannot serve it now (not quarantined)", "listener", l.cfg.Name,
			"protocol", l.info.Name, "transport", l.cfg.Transport, "remote", remote.String(), "reason", err, "closed_since_last_line", n)
	}
}
