package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// SendOptions say how a labelled fleet goes to the server.
type SendOptions struct {
	Protocol string // device codec (default teltonika)
	Target   string // host:port
	PerFrame int    // records per frame (0: the protocol's default)
	// Pace is how fast device time passes on the wire: 0 sends every
	// record as fast as acks allow (a history upload), 1 in real time
	// (each frame when its last record is due by the fleet's clock).
	Pace float64
	// Parallel bounds the devices sending at once (0: all).
	Parallel   int
	AckTimeout time.Duration
}

// SendStats are the totals of a send.
type SendStats struct {
	Frames  uint64 `json:"frames_acked"`
	Records uint64 `json:"records_acked"`
	Resends uint64 `json:"frames_resent"`
}

// Send delivers every device's records, in send order, frame by frame,
// each device over its own connection, resending a frame whose ack did not
// come (on a new connection) until ctx ends.
func (f *Fleet) Send(ctx context.Context, o SendOptions) (SendStats, error) {
	if o.Protocol == "" {
		o.Protocol = "teltonika"
	}
	codec, err := CodecFor(o.Protocol)
	if err != nil {
		return SendStats{}, err
	}
	if o.PerFrame <= 0 {
		o.PerFrame = DefaultPerFrame(o.Protocol)
	}
	o.PerFrame = min(o.PerFrame, codec.MaxPerFrame())
	if o.AckTimeout <= 0 {
		o.AckTimeout = 30 * time.Second
	}
	par := o.Parallel
	if par <= 0 || par > len(f.Devices) {
		par = len(f.Devices)
	}
	var first time.Time
	for _, d := range f.Devices {
		if len(d.Records) > 0 && (first.IsZero() || d.Records[0].TS.Before(first)) {
			first = d.Records[0].TS
		}
	}
	var st struct{ frames, recs, resends atomic.Uint64 }
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	errs := make([]error, len(f.Devices))
	start := time.Now()
	for i := range f.Devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			d := &f.Devices[i]
			s := sender{codec: codec, target: o.Target, imei: d.IMEI, timeout: o.AckTimeout}
			defer s.close()
			for j := 0; j < len(d.Records); j += o.PerFrame {
				recs := d.Records[j:min(len(d.Records), j+o.PerFrame)]
				if o.Pace > 0 {
					due := start.Add(time.Duration(float64(d.Records[min(len(d.Records), j+o.PerFrame)-1].TS.Sub(first)) / o.Pace))
					if !sleepCtx(ctx, time.Until(due)) {
						errs[i] = ctx.Err()
						return
					}
				}
				tries, err := s.deliver(ctx, recs)
				st.resends.Add(uint64(tries))
				if err != nil {
					errs[i] = fmt.Errorf("device %s: %w", d.IMEI, err)
					return
				}
				st.frames.Add(1)
				st.recs.Add(uint64(len(recs)))
			}
		}()
	}
	wg.Wait()
	return SendStats{Frames: st.frames.Load(), Records: st.recs.Load(), Resends: st.resends.Load()}, errors.Join(errs...)
}

// sender is one device's connection.
type sender struct {
	codec   Codec
	target  string
	imei    string
	timeout time.Duration
	conn    net.Conn
	r       *bufio.Reader
	serial  uint16
	buf     []byte
}

func (s *sender) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

func (s *sender) connect(ctx context.Context) error {
	dl := net.Dialer{Timeout: 5 * time.Second}
	c, err := dl.DialContext(ctx, "tcp", s.target)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", s.target, err)
	}
	s.conn, s.r = c, bufio.NewReaderSize(c, 512)
	if hello := s.codec.Hello(s.imei, s.serial); hello != nil {
		s.serial++
		c.SetDeadline(time.Now().Add(s.timeout)) //nolint:errcheck
		if _, err := c.Write(hello); err != nil {
			s.close()
			return fmt.Errorf("writing login: %w", err)
		}
		if err := s.codec.ReadHelloAck(s.r); err != nil {
			s.close()
			return fmt.Errorf("logging in: %w", err)
		}
	}
	return nil
}

// deliver sends one frame until it is acked; it returns the resends.
func (s *sender) deliver(ctx context.Context, recs []Record) (int, error) {
	backoff := 50 * time.Millisecond
	for tries := 0; ; tries++ {
		if ctx.Err() != nil {
			return tries, ctx.Err()
		}
		err := s.try(ctx, recs)
		if err == nil {
			return tries, nil
		}
		s.close()
		if !sleepCtx(ctx, backoff) {
			return tries, fmt.Errorf("sending a frame: %w", err)
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (s *sender) try(ctx context.Context, recs []Record) error {
	if s.conn == nil {
		if err := s.connect(ctx); err != nil {
			return err
		}
	}
	s.buf = s.codec.Encode(s.buf[:0], s.imei, s.serial, recs, false)
	serial := s.serial
	s.serial++
	s.conn.SetDeadline(time.Now().Add(s.timeout)) //nolint:errcheck
	if _, err := s.conn.Write(s.buf); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	err := s.codec.ReadAck(s.r, serial, len(recs))
	if errors.Is(err, errServerClosing) {
		s.close() // acked; the server closes the connection
		return nil
	}
	return err
}
