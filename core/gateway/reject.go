package gateway

import (
	"context"
	"io"
	"net"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
)

// rejectFrame counts a refused frame, reports it to the quarantine, sends
// the session's rejection reply if it has one, and leaves the caller to
// close the connection. raw may alias the connection's buffer: the
// quarantine copies what it keeps (at most its own cap) before the call
// returns, and it logs the rejection under its per-source rate limit, so a
// flood of bad frames costs neither a copy of every frame nor a log line
// each. Without a quarantine the rejection is logged here.
func (g *Gateway) rejectFrame(l *listener, sess plugins.Session, w io.Writer, remote string, raw []byte, recv time.Time, err error) {
	g.stats.Rejected.Add(1)
	g.stats.Protocol(l.info.Name).Rejected.Add(1)
	dev := ""
	if di, ok := sess.(plugins.DeviceIdentifier); ok {
		dev = di.DeviceID()
	}
	if g.reject != nil {
		g.reject(context.Background(), Rejection{
			Recv: recv, RemoteAddr: remote, Listener: l.cfg.Name, Protocol: l.info.Name,
			DeviceID: dev, Reason: err.Error(), Raw: raw,
		})
	} else {
		g.log.Warn("rejected frame", "listener", l.cfg.Name, "remote", remote, "device", dev, "reason", err, "bytes", len(raw))
	}
	if r, ok := sess.(plugins.Rejecter); ok && w != nil {
		if reply := r.Reject(err); len(reply) > 0 {
			if c, ok := w.(net.Conn); ok {
				c.SetWriteDeadline(time.Now().Add(l.cfg.WriteTimeout)) //nolint:errcheck
			}
			w.Write(reply) //nolint:errcheck // best effort before close
		}
	}
}
