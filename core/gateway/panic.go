package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
)

// decoderPanic is a recovered panic of a session method. Its text (the
// quarantine reason) carries the panic value; the stack goes to the log
// only.
type decoderPanic struct {
	in    string // Frame, Decode, session
	value any
	stack []byte
}

func (p *decoderPanic) Error() string {
	return fmt.Sprintf("%v in %s: %v", plugins.ErrPanic, p.in, p.value)
}

func (p *decoderPanic) Unwrap() error { return plugins.ErrPanic }

func isPanic(err error) bool {
	var p *decoderPanic
	return errors.As(err, &p)
}

// callFrame is sess.Frame with a panic turned into a *decoderPanic.
func callFrame(sess plugins.Session, buf []byte) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			n, err = 0, &decoderPanic{in: "Frame", value: p, stack: shortStack(debug.Stack())}
		}
	}()
	return sess.Frame(buf)
}

// callDecode is sess.Decode with a panic turned into a *decoderPanic.
func callDecode(sess plugins.Session, frame []byte, recv time.Time) (res plugins.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = plugins.Result{}, &decoderPanic{in: "Decode", value: p, stack: shortStack(debug.Stack())}
		}
	}()
	return sess.Decode(frame, recv)
}

// maxStackLines bounds the stack logged with a panic: the panicking
// function and a few callers.
const maxStackLines = 16

// shortStack cuts a debug.Stack taken in a deferred recover down to the
// frames below the panic: the recover machinery above is noise.
func shortStack(st []byte) []byte {
	if i := bytes.Index(st, []byte("\npanic(")); i >= 0 {
		st = st[i+1:]
		for range 2 { // the panic( line and its file:line
			if j := bytes.IndexByte(st, '\n'); j >= 0 {
				st = st[j+1:]
			}
		}
	}
	lines := bytes.SplitAfterN(st, []byte("\n"), maxStackLines+1)
	if len(lines) > maxStackLines {
		lines = lines[:maxStackLines]
	}
	return bytes.TrimRight(bytes.Join(lines, nil), "\n")
}

// logPanic logs a decoder panic with its stack, at most one line per
// logEvery (a device can send the same poison frame again and again).
func (g *Gateway) logPanic(l *listener, remote string, err error) {
	var p *decoderPanic
	if !errors.As(err, &p) {
		return
	}
	if n, ok := g.panicLog.allow(); ok {
		g.log.Error("decoder panicked: frame quarantined, connection closed, other connections unaffected",
			"listener", l.cfg.Name, "protocol", l.info.Name, "remote", remote, "in", p.in,
			"panic", fmt.Sprint(p.value), "panics_since_last_line", n, "stack", string(p.stack))
	}
}

// recoverConn is the backstop of a connection's goroutine: a panic outside
// Frame and Decode (NewSession, a Rejecter, DeviceID) closes only that
// connection. It must be deferred directly.
func (g *Gateway) recoverConn(l *listener, c net.Conn) {
	if p := recover(); p != nil {
		g.stats.Protocol(l.info.Name).Panics.Add(1)
		g.logPanic(l, c.RemoteAddr().String(), &decoderPanic{in: "session", value: p, stack: shortStack(debug.Stack())})
	}
}
