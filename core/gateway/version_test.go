package gateway_test

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// versionedDecoder is lineDecoder with a version of its own, as a WASM
// decoder has.
type versionedDecoder struct {
	lineDecoder
	version string
}

func (d versionedDecoder) Version() string { return d.version }

// selfStampingDecoder is lineDecoder whose sessions set the decoder version
// on their signals themselves.
type selfStampingDecoder struct{ lineDecoder }

func (selfStampingDecoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	return selfStamping{&lineSession{max: cfg.MaxFrame}}
}

type selfStamping struct{ *lineSession }

func (s selfStamping) Decode(f []byte, recv time.Time) (plugins.Result, error) {
	res, err := s.lineSession.Decode(f, recv)
	for i := range res.Signals {
		res.Signals[i].DecoderVersion = "1.2.0+sha256:abcdef123456"
	}
	return res, err
}

// TestSignalsCarryTheDecoderVersion: the gateway records the decoder
// version on every signal: "builtin:<build>" for a built-in decoder, the
// decoder's own Version() when it has one, and what the session set when
// it set one.
func TestSignalsCarryTheDecoderVersion(t *testing.T) {
	long := strings.Repeat("9", 200)
	for _, tc := range []struct {
		name string
		opts []gateway.Option
		dec  plugins.Decoder
		want string
	}{
		{"builtin_default", nil, lineDecoder{}, "builtin:dev"},
		{"builtin_build", []gateway.Option{gateway.WithBuildVersion("v0.9.1")}, lineDecoder{}, "builtin:v0.9.1"},
		{"builtin_empty_build_keeps_default", []gateway.Option{gateway.WithBuildVersion("")}, lineDecoder{}, "builtin:dev"},
		{"builtin_long_build_cut_to_the_cap", []gateway.Option{gateway.WithBuildVersion(long)}, lineDecoder{},
			("builtin:" + long)[:signal.MaxDecoderVersionBytes]},
		{"decoder_version", []gateway.Option{gateway.WithBuildVersion("v0.9.1")}, versionedDecoder{version: "2.0.0+sha256:0123456789ab"}, "2.0.0+sha256:0123456789ab"},
		{"session_stamped", []gateway.Option{gateway.WithBuildVersion("v0.9.1")}, selfStampingDecoder{}, "1.2.0+sha256:abcdef123456"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &gatedIngest{}
			rj := &rejects{}
			g := gateway.New(hclog.NewNullLogger(), in, rj.add, tc.opts...)
			addr, err := g.Listen(gateway.ListenerConfig{Name: "line", Transport: plugins.TCP, Address: "127.0.0.1:0"}, tc.dec)
			if err != nil {
				t.Fatal(err)
			}
			g.Serve()
			defer g.Shutdown(context.Background())
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
			if _, err := c.Write([]byte("dev1,1\ndev1,2\n")); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(c)
			for i := 0; i < 2; i++ {
				if _, err := r.ReadString('\n'); err != nil {
					t.Fatalf("reading ack %d: %v", i+1, err)
				}
			}
			in.mu.Lock()
			defer in.mu.Unlock()
			if len(in.got) != 2 {
				t.Fatalf("%d signals stored, want 2", len(in.got))
			}
			for i, s := range in.got {
				if s.DecoderVersion != tc.want {
					t.Errorf("signal %d: decoder version %q, want %q", i, s.DecoderVersion, tc.want)
				}
				if err := s.Check(); err != nil {
					t.Errorf("signal %d: %v", i, err)
				}
			}
		})
	}
}
