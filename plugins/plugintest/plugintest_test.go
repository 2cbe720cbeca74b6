package plugintest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// toy is a line protocol for testing the suite: "L<id>\n" logs in,
// "P<unix ms>,<lat>,<lon>\n" is a position. Its flaws are switchable so the
// tests can check that the suite catches each one.
type toy struct {
	flaw string
	udp  bool
}

func (d toy) Info() plugins.Info {
	tr := []plugins.Transport{plugins.TCP}
	if d.udp {
		tr = []plugins.Transport{plugins.UDP}
	}
	return plugins.Info{Name: "toy", Transports: tr}
}

func (d toy) NewSession(cfg plugins.SessionConfig) plugins.Session {
	return &toySession{flaw: d.flaw, max: cfg.MaxFrame, udp: cfg.Transport == plugins.UDP}
}

type toySession struct {
	flaw string
	max  int
	udp  bool
	id   string
}

func (s *toySession) Frame(buf []byte) (int, error) {
	i := bytes.IndexByte(buf, '\n')
	if i < 0 {
		if len(buf) >= s.max && s.flaw != "waits_forever" {
			return 0, fmt.Errorf("framing toy: %w", plugins.ErrTooLarge)
		}
		return 0, nil
	}
	if s.flaw == "frames_past_input" {
		return i + 2, nil
	}
	return i + 1, nil
}

func (s *toySession) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if s.flaw == "panics_on_marker" && string(frame) == "PBOOM\n" {
		var nobody *toySession
		_ = nobody.id // nil pointer dereference
	}
	if s.flaw == "panics_on_short" && frame[len(frame)-1] != '\n' {
		_ = frame[len(frame)+1]
	}
	if len(frame) < 2 || frame[len(frame)-1] != '\n' {
		return plugins.Result{}, fmt.Errorf("decoding toy: %w: no newline", plugins.ErrMalformed)
	}
	line := frame[:len(frame)-1]
	switch line[0] {
	case 'L':
		s.id = string(line[1:])
		return plugins.Result{DeviceID: s.id}, nil
	case 'P':
		if s.id == "" {
			return plugins.Result{}, plugins.ErrNoDevice
		}
		parts := strings.Split(string(line[1:]), ",")
		if len(parts) != 3 {
			return plugins.Result{}, fmt.Errorf("decoding toy: %w: %d fields", plugins.ErrMalformed, len(parts))
		}
		ms, err1 := strconv.ParseInt(parts[0], 10, 64)
		lat, err2 := strconv.ParseFloat(parts[1], 64)
		lon, err3 := strconv.ParseFloat(parts[2], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return plugins.Result{}, fmt.Errorf("decoding toy: %w: bad number", plugins.ErrMalformed)
		}
		sig := signal.New(s.id, time.UnixMilli(ms))
		sig.Lat, sig.Lon, sig.Recv, sig.Protocol = lat, lon, recv, "toy"
		sig.Frame = append([]byte(nil), frame...)
		switch s.flaw {
		case "retains_frame":
			sig.Frame = frame
		case "recv_in_record":
			sig.SetAttr("recv", recv.UnixMilli())
		case "no_device":
			sig.DeviceID = ""
		}
		return plugins.Result{Signals: []signal.Signal{sig}, DeviceID: s.id}, nil
	}
	return plugins.Result{}, fmt.Errorf("decoding toy: %w: kind %q", plugins.ErrMalformed, line[0])
}

var toyFrames = [][]byte{
	[]byte("L864895030000001\n"),
	[]byte("P1700000000000,54.1,25.2\n"),
	[]byte("P1700000001000,54.2,25.3\n"),
}

func TestSuitePassesGoodDecoder(t *testing.T) {
	Run(t, toy{}, Cases{Frames: toyFrames, MaxFrame: 4096})
}

func TestSuitePassesGoodUDPDecoder(t *testing.T) {
	Run(t, toy{udp: true}, Cases{Frames: toyFrames, MaxFrame: 4096})
}

// TestSuiteCatchesFlaws runs the suite against each flawed decoder in a
// child test process and expects that run to fail naming the flaw.
func TestSuiteCatchesFlaws(t *testing.T) {
	if flaw := os.Getenv("PLUGINTEST_FLAW"); flaw != "" {
		t.Run("child", func(t *testing.T) {
			Run(t, toy{flaw: flaw}, Cases{Frames: toyFrames, MaxFrame: 4096})
		})
		return
	}
	tests := []struct {
		flaw, want string
	}{
		{"retains_frame", "signal retains the frame buffer"},
		{"recv_in_record", "on resend"},
		{"no_device", "empty DeviceID"},
		{"waits_forever", "framer keeps waiting"},
		{"frames_past_input", "Frame returned"},
		{"panics_on_short", "panic in Decode"},
	}
	for _, tc := range tests {
		t.Run(tc.flaw, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSuiteCatchesFlaws$", "-test.v")
			cmd.Env = append(os.Environ(), "PLUGINTEST_FLAW="+tc.flaw)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a decoder with flaw %s", tc.flaw)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("the suite failed without naming the flaw (%q):\n%s", tc.want, out)
			}
		})
	}
}

// TestGatewayIsolatesAPanickingDecoder drives the real gateway with a
// decoder, found in a test registry, that panics on a marker frame.
func TestGatewayIsolatesAPanickingDecoder(t *testing.T) {
	for _, tr := range []plugins.Transport{plugins.TCP, plugins.UDP} {
		t.Run(string(tr), func(t *testing.T) {
			reg := plugins.NewRegistry()
			reg.Register(toy{flaw: "panics_on_marker", udp: tr == plugins.UDP})
			dec, ok := reg.Lookup("toy")
			if !ok {
				t.Fatal("toy not registered")
			}
			bad := [][]byte{toyFrames[0], toyFrames[1], []byte("PBOOM\n")}
			if tr == plugins.TCP {
				// After the panic the connection is closed: what follows
				// is never decoded. (UDP drops the source's session, so a
				// datagram after it would be refused for want of a login.)
				bad = append(bad, toyFrames[2])
			}
			panicIsolation(t, dec, tr, 4096, nil, toyFrames, bad, func(string) {})
		})
	}
}
