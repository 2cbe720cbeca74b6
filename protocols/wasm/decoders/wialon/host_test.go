package main

import (
	"context"
	"errors"
	"flag"
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
// these tests are about what the decoder answers, and a loaded test
// machine must not turn them into timing tests (the host's own tests
// cover the budget).
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
	m, err := h.Load(context.Background(), "protocols/wasm/decoders/wialon", wasmfixture.Go(t, "protocols/wasm/decoders/wialon", nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

var conversation11 = [][]byte{
	[]byte("#L#123456789012345;test\r\n"),
	[]byte("#SD#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4\r\n"),
	[]byte("#P#\r\n"),
	[]byte("#D#151216;135910;5321.1466;N;04441.7929;E;87;156;265.000000;12;1.000000;241;NA;NA;NA;odo:2:0.000000,total_fuel:1:430087,can_fls:1:201,can_taho:1:11623,can_mileage:1:140367515\r\n"),
	[]byte("#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;SOS:1:0,temp:3:18,bat:3:99\r\n"),
	[]byte("#B#110315;045857;5364.0167;N;06127.8262;E;0;155;965;7;2.40;4;0;;NA;Uacc:2:3.4,Iacc:2:0.000,Uext:2:13.2,Tcpu:2:14.4,Balance:2:167.65,GPS:3:Off\r\n"),
}

var update = flag.Bool("update", false, "rewrite golden files")

// TestGolden replays testdata/conversation/input.hex through the host
// against expected.jsonl (-update rewrites it; review the diff). The
// decoder version (it names the module's hash, which any rebuild with
// another SDK or toolchain changes) is left out of the comparison:
// TestThroughHost checks it.
func TestGolden(t *testing.T) {
	plugintest.Golden(t, versionless{load(t)}, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), *update,
		plugintest.GoldenCase{In: "conversation/input.hex", Golden: "conversation/expected.jsonl", Hex: true, OK: 6, Bad: 0})
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
	m := load(t)
	for _, tr := range []plugins.Transport{plugins.TCP, plugins.UDP} {
		t.Run(string(tr), func(t *testing.T) {
			plugintest.Run(t, m, plugintest.Cases{Transport: tr, Frames: conversation11})
		})
	}
}

// TestThroughHost: the acks, the device, the records and the refusals as a
// listener sees them.
func TestThroughHost(t *testing.T) {
	m := load(t)
	if info := m.Info(); info.Name != "wialon" || info.DefaultPort != 5039 || len(info.Transports) != 2 {
		t.Errorf("info %+v", info)
	}
	if v := m.Version(); !strings.HasPrefix(v, "1.0.0+sha256:") {
		t.Errorf("version %q", v)
	}
	recv := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 4096, Logger: hclog.NewNullLogger()})
	want := []string{"#AL#1\r\n", "#ASD#1\r\n", "#AP#\r\n", "#AD#1\r\n", "#AD#1\r\n", "#AB#1\r\n"}
	for i, f := range conversation11 {
		res, err := s.Decode(f, recv)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if string(res.Ack) != want[i] || res.DeviceID != "123456789012345" {
			t.Errorf("frame %d: ack %q device %q", i, res.Ack, res.DeviceID)
		}
		for _, sg := range res.Signals {
			if sg.Protocol != "wialon" || sg.DeviceID != "123456789012345" || sg.DecoderVersion != m.Version() {
				t.Errorf("frame %d: signal %+v", i, sg)
			}
		}
	}
	// A record without device time gets the server's time.
	res, _ := s.Decode(conversation11[4], recv)
	if sg := res.Signals[0]; !sg.TS.Equal(recv) || sg.Attrs["time_source"] != "server" || sg.Attrs["bat"] != 99.0 {
		t.Errorf("server-timed record %+v", sg)
	}
	// A 2.0 login with a wrong CRC: refused, answered #AL#10.
	s2 := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 4096, Logger: hclog.NewNullLogger()})
	_, err := s2.Decode([]byte("#L#2.0;42001300083;;CE45\r\n"), recv)
	if !errors.Is(err, plugins.ErrChecksum) {
		t.Fatalf("bad login: %v", err)
	}
	if r, ok := s2.(plugins.Rejecter); !ok || string(r.Reject(err)) != "#AL#10\r\n" {
		t.Errorf("reject reply of the bad login: %v", ok)
	}
	if _, err := s2.Decode([]byte("#SD#300924;154245;5554.350052;N;3644.670410;E;2.92;NA;NA;NA;7A01\r\n"), recv); !errors.Is(err, plugins.ErrNoDevice) {
		t.Errorf("data after the refused login: %v", err)
	}
	// The listener allow-list, checked by the host.
	s3 := m.NewSession(plugins.SessionConfig{Transport: plugins.UDP, MaxFrame: 4096, AllowDevice: func(id string) bool { return id != "99999999" }, Logger: hclog.NewNullLogger()})
	if _, err := s3.Decode([]byte("99999999#SD#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4\r\n"), recv); !errors.Is(err, plugins.ErrUnauthorized) {
		t.Errorf("device refused by the allow-list: %v", err)
	}
}

func BenchmarkDecode(b *testing.B) {
	h, err := wasmdecoder.NewHost(hostConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	m, err := h.Load(context.Background(), "wialon", wasmfixture.Go(b, "protocols/wasm/decoders/wialon", nil))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	recv := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 4096})
	if _, err := s.Decode(conversation11[0], recv); err != nil {
		b.Fatal(err)
	}
	frame := conversation11[3]
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := s.Decode(frame, recv); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
