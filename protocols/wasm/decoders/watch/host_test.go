package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/plugintest"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
)

// The module as the gateway runs it: built for wasip1, loaded (its
// self-tests run) by plugins/wasmdecoder, checked with the conformance
// suite every built-in decoder passes.

// hostConfig gives each call a budget far above the production 50 ms:
// these tests are about what the decoder answers, not how fast a loaded
// machine runs it (the host's own tests cover the budget).
func hostConfig() wasmdecoder.Config {
	return wasmdecoder.Config{Logger: hclog.NewNullLogger(), Budget: 10 * time.Second}
}

func load(t *testing.T) *wasmdecoder.Module {
	t.Helper()
	h, err := wasmdecoder.NewHost(hostConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	m, err := h.Load(context.Background(), "protocols/wasm/decoders/watch", wasmfixture.Go(t, "protocols/wasm/decoders/watch", nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

// conversation is testdata/conversation/input.hex, one frame a line.
func conversation(t *testing.T) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "conversation", "input.hex"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

var update = flag.Bool("update", false, "rewrite golden files")

// TestGolden replays testdata/conversation/input.hex through the host
// against expected.jsonl (-update rewrites it; review the diff). The
// decoder version (it names the module's hash, which any rebuild with
// another SDK or toolchain changes) is left out: TestThroughHost checks it.
func TestGolden(t *testing.T) {
	plugintest.Golden(t, versionless{load(t)}, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), *update,
		plugintest.GoldenCase{In: "conversation/input.hex", Golden: "conversation/expected.jsonl", Hex: true, OK: 7, Bad: 0})
}

// versionless runs a decoder with the decoder version cleared on its
// signals.
type versionless struct{ plugins.Decoder }

func (v versionless) NewSession(cfg plugins.SessionConfig) plugins.Session {
	return versionlessSession{v.Decoder.NewSession(cfg)}
}

type versionlessSession struct{ plugins.Session }

func (s versionlessSession) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	res, err := s.Session.Decode(frame, recv)
	for i := range res.Signals {
		res.Signals[i].DecoderVersion = ""
	}
	return res, err
}

func TestConformance(t *testing.T) {
	plugintest.Run(t, load(t), plugintest.Cases{Transport: plugins.TCP, Frames: conversation(t)})
}

// TestThroughHost: the acks, the device, the records and the refusals as a
// listener sees them.
func TestThroughHost(t *testing.T) {
	m := load(t)
	if info := m.Info(); info.Name != "watch" || info.DefaultPort != defaultPort || len(info.Transports) != 1 || info.Transports[0] != plugins.TCP || len(info.Options) != 1 {
		t.Errorf("info %+v", info)
	}
	if v := m.Version(); !strings.HasPrefix(v, "1.0.0+sha256:") {
		t.Errorf("version %q", v)
	}
	recv := time.Date(2026, 11, 25, 12, 0, 0, 500e6, time.UTC)
	s := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 65536, Logger: hclog.NewNullLogger()})
	acks := []string{"[3G*4700186508*0002*LK]", "", "[3G*4700186508*0002*AL]", "", "", "", "", "[3G*4700186508*0002*LK]"}
	records := []int{1, 1, 1, 1, 1, 1, 1, 0}
	for i, f := range conversation(t) {
		if n, err := s.Frame(append(f, "[3G*"...)); err != nil || n != len(f) {
			t.Fatalf("frame %d: Frame = %d, %v; want %d", i, n, err, len(f))
		}
		res, err := s.Decode(f, recv)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if string(res.Ack) != acks[i] || len(res.Signals) != records[i] || res.DeviceID != "4700186508" {
			t.Errorf("frame %d: ack %q, %d signals, device %q", i, res.Ack, len(res.Signals), res.DeviceID)
		}
		for _, sg := range res.Signals {
			if sg.Protocol != "watch" || sg.DeviceID != "4700186508" || sg.DecoderVersion != m.Version() || string(sg.Frame) != string(f) {
				t.Errorf("frame %d: signal %+v", i, sg)
			}
			// Records without device time: the receive time to the second.
			if sg.Attrs["time_source"] == "server" && !sg.TS.Equal(recv.Truncate(time.Second)) {
				t.Errorf("frame %d: server time %v", i, sg.TS)
			}
		}
	}
	// A frame the decoder refuses: the sentinel and the reason.
	if _, err := s.Decode([]byte("[3G*4700186508*0008*CONFIG,1]"), recv); !errors.Is(err, plugins.ErrUnsupported) || !strings.Contains(err.Error(), `"CONFIG"`) {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := s.Decode([]byte("[3G*4700186508*0008*UD,1,2]"), recv); !errors.Is(err, plugins.ErrMalformed) {
		t.Errorf("short position: %v", err)
	}
	if _, err := s.Frame([]byte("[3G*47001865")); err != nil {
		t.Errorf("partial frame: %v", err)
	}
	if _, err := s.Frame([]byte("3G*47001865]")); !errors.Is(err, plugins.ErrMalformed) {
		t.Errorf("no '[': %v", err)
	}
	small := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 16, Logger: hclog.NewNullLogger()})
	if _, err := small.Frame([]byte("[3G*4700186508*0002*LK]")); !errors.Is(err, plugins.ErrTooLarge) {
		t.Errorf("over max_frame: %v", err)
	}
	// The listener allow-list, checked by the host on the device the frame names.
	s3 := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 65536, AllowDevice: func(id string) bool { return id != "4700186508" }, Logger: hclog.NewNullLogger()})
	if _, err := s3.Decode([]byte("[3G*4700186508*0002*LK]"), recv); !errors.Is(err, plugins.ErrUnauthorized) {
		t.Errorf("device refused by the allow-list: %v", err)
	}
	// The media option, parsed by the host like a built-in decoder's.
	opts, err := plugins.DecodeOptions(m, map[string]string{"media": "ack"})
	if err != nil {
		t.Fatal(err)
	}
	s4 := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 65536, Options: opts, Logger: hclog.NewNullLogger()})
	chunk := []byte("[ZJ*789468050042692*0034*0025*JXTK,0,watch_7_1,1,6,#!AMR}\x03]")
	if res, err := s4.Decode(chunk, recv); err != nil || string(res.Ack) != "[ZJ*789468050042692*0034*0007*JXTKR,1]" || len(res.Signals) != 0 {
		t.Errorf("voice chunk with media = ack: %q %d %v", res.Ack, len(res.Signals), err)
	}
	if _, err := s.Decode(chunk, recv); !errors.Is(err, plugins.ErrUnsupported) || !strings.Contains(err.Error(), "part 1/6") {
		t.Errorf("voice chunk refused by default: %v", err)
	}
	if _, err := plugins.DecodeOptions(m, map[string]string{"media": "keep"}); err == nil {
		t.Error("media = keep accepted")
	}
}

func BenchmarkDecode(b *testing.B) {
	h, err := wasmdecoder.NewHost(hostConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	m, err := h.Load(context.Background(), "watch", wasmfixture.Go(b, "protocols/wasm/decoders/watch", nil))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	recv := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 65536})
	frame := []byte("[3G*2104326058*00E9*UD_LTE,300621,135101,A,32.162652,N,34.888748,E,30.84,265.158,65.621,18,100,83,0,0,00000000,1,1,425,01,10223,8012811,100,3,ES4104,22:74:1d:39:64:ff,-46,metropoline-wifi,a8:3f:a1:e0:66:ba,-89,Egged.co.il,00:0c:42:51:cf:cd,-81,1.7055488]")
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := s.Decode(frame, recv); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
