package atrack

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/plugintest"
)

var update = flag.Bool("update", false, "rewrite golden files")

var recv = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func readHex(t testing.TB, name string) [][]byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func conversation(t testing.TB) [][]byte { return readHex(t, "testdata/conversation/input.hex") }

func session(opts map[string]string) *Session {
	dec := &Decoder{}
	return dec.NewSession(plugins.SessionConfig{Options: plugins.MustDecodeOptions(dec, opts)}).(*Session)
}

// textReport builds "@P,<crc>,<len>,<seq>,<unit>,<records>\r\n".
func textReport(seq int, unit string, records ...string) []byte {
	rest := fmt.Sprintf("%d,%s,%s\r\n", seq, unit, strings.Join(records, "\r\n"))
	// The length counts from its own comma (that comma included, as the
	// captures have it); the CRC covers from the comma after the CRC field.
	n := len(rest) + 1
	tail := fmt.Sprintf(",%d,%s", n, rest)
	return []byte(fmt.Sprintf("@P,%04X%s", CRC16([]byte(tail)), tail))
}

func TestCRC16ARC(t *testing.T) {
	if got := CRC16([]byte("123456789")); got != 0xBB3D {
		t.Errorf("CRC16(123456789) = %04x, want bb3d", got)
	}
}

func TestBinaryReport(t *testing.T) {
	f := conversation(t)[1] // @P binary, one record
	s := session(nil)
	res, err := s.Decode(f, recv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signals) != 1 {
		t.Fatalf("%d signals", len(res.Signals))
	}
	g := res.Signals[0]
	if g.DeviceID != "864376101013440" && g.DeviceID == "" {
		t.Errorf("device %q", g.DeviceID)
	}
	// The ack: FE 02, the unit id and the sequence number of the report.
	want := append(append([]byte{0xFE, 0x02}, f[8:16]...), f[6:8]...)
	if string(res.Ack) != string(want) {
		t.Errorf("ack %x, want %x", res.Ack, want)
	}
	if g.TS.IsZero() || g.Lat == 0 || g.Protocol != Name || len(g.Frame) != len(f) {
		t.Errorf("signal %+v", g)
	}
}

func TestKeepAliveEchoed(t *testing.T) {
	f := conversation(t)[0]
	res, err := session(nil).Decode(f, recv)
	if err != nil || len(res.Signals) != 0 || string(res.Ack) != string(f) {
		t.Errorf("keep-alive: %v, %d signals, ack %x", err, len(res.Signals), res.Ack)
	}
}

func TestTextReport(t *testing.T) {
	f := textReport(7, "358901048091554",
		"20180412143513,20180412143514,20180413060000,16423389,48178700,108,2,6.5,9,1,42,0,3300,ABC123,235,2000,hello,%CI%MV%BV%SA%RP%FL,124,41,9,1800,55",
		"1523543713,1523543714,1523543714,16423390,48178701,109,2,6.6,9,1,43,0,3300,,2000,2000,,%CI%MV,125")
	s := session(map[string]string{"custom": "true"})
	res, err := s.Decode(f, recv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signals) != 2 || res.Ack != nil {
		t.Fatalf("%d signals, ack %x", len(res.Signals), res.Ack)
	}
	g := res.Signals[0]
	if !g.TS.Equal(time.Date(2018, 4, 12, 14, 35, 13, 0, time.UTC)) || g.Lat != 48.1787 || g.Lon != 16.423389 || g.Heading != 108 || g.Speed != 42 || g.Odometer != 0.65 || g.HDOP != 0.9 {
		t.Errorf("fix %+v", g)
	}
	if g.Voltage != 12.4 || g.Attrs["battery_v"] != 4.1 || g.Sats != 9 || g.RPM != 1800 || g.Fuel != 55 {
		t.Errorf("custom %+v", g)
	}
	if g.Attrs["driver_id"] != "ABC123" || g.Attrs["temp1"] != 23.5 || g.Attrs["temp2"] != nil || g.Attrs["message"] != "hello" || g.Attrs["sequence"] != int64(7) {
		t.Errorf("attrs %v", g.Attrs)
	}
	if g2 := res.Signals[1]; !g2.TS.Equal(time.Unix(1523543713, 0)) || g2.Voltage != 12.5 {
		t.Errorf("second record %+v", g2)
	}
	// Without the custom option the custom data is not read.
	res, err = session(nil).Decode(f, recv)
	if err != nil || res.Signals[0].Attrs["battery_v"] != nil {
		t.Errorf("custom data read without the option: %v %v", err, res.Signals[0].Attrs)
	}
	// A code fleetcore does not know keeps its value as sent.
	f = textReport(9, "358901048091554", "1523543713,1523543714,1523543714,16423390,48178701,109,2,6.6,9,1,43,0,3300,,2000,2000,,%CI%QQ%MV,abc,120")
	res, err = session(map[string]string{"custom": "true"}).Decode(f, recv)
	if err != nil || res.Signals[0].Attrs["custom_qq"] != "abc" || res.Signals[0].Voltage != 12 {
		t.Errorf("unknown code: %v %+v", err, res.Signals)
	}
	// A known numeric code that does not parse is refused.
	f = textReport(9, "358901048091554", "1523543713,1523543714,1523543714,16423390,48178701,109,2,6.6,9,1,43,0,3300,,2000,2000,,%CI%MV,abc")
	if _, err := session(map[string]string{"custom": "true"}).Decode(f, recv); !errors.Is(err, plugins.ErrMalformed) {
		t.Errorf("MV=abc: %v", err)
	}
	// With a form, the data carries values only.
	f = textReport(8, "358901048091554", "1523543713,1523543714,1523543714,16423390,48178701,109,2,6.6,9,1,43,0,3300,,2000,2000,,131,7")
	res, err = session(map[string]string{"form": "%MV%SA"}).Decode(f, recv)
	if err != nil || res.Signals[0].Voltage != 13.1 || res.Signals[0].Sats != 7 {
		t.Errorf("form: %v %+v", err, res.Signals)
	}
}

func TestCustomBinaryCaptures(t *testing.T) {
	s := session(map[string]string{"custom": "true"})
	n := 0
	for i, f := range readHex(t, "testdata/custom/input.hex") {
		res, err := s.Decode(f, recv)
		if err != nil {
			t.Fatalf("capture %d: %v", i, err)
		}
		if err := plugins.CheckSignals(res.Signals); err != nil {
			t.Fatalf("capture %d: %v", i, err)
		}
		n += len(res.Signals)
	}
	if n == 0 {
		t.Fatal("no records")
	}
}

func TestLongDate(t *testing.T) {
	// Traccar's AtrackProtocolDecoderTest seq 9 (option longDate).
	f, _ := hex.DecodeString("0203b494003c00eb00014104d8dd3a3e07de011b0b1f0307de011b0b1f0307de011b0b1f0300307f28030574d30000020000000600160100020000000007d007d000")
	res, err := session(map[string]string{"long_date": "true"}).Decode(f, recv)
	if err != nil {
		t.Fatal(err)
	}
	if g := res.Signals[0]; !g.TS.Equal(time.Date(2014, 1, 27, 11, 31, 3, 0, time.UTC)) {
		t.Errorf("ts %v", g.TS)
	}
}

func TestReplies(t *testing.T) {
	d := &Decoder{}
	s := d.NewSession(plugins.SessionConfig{})
	if _, err := s.Decode([]byte("$OK\r\n"), recv); !errors.Is(err, plugins.ErrNoDevice) {
		t.Errorf("$OK before a report: %v", err)
	}
	info := []byte("$INFO=358683066267395,AX7,Rev.0.61 Build.1624,358683066267395,466924131626767,89886920041316267670,144,0,9,1,12,1,0\r\n")
	res, err := s.Decode(info, recv)
	if err != nil {
		t.Fatal(err)
	}
	g := res.Signals[0]
	if res.DeviceID != "358683066267395" || g.Attrs["model"] != "AX7" || g.Voltage != 14.4 || g.Sats != 9 || g.Attrs["rssi"] != int64(12) || !g.TS.Equal(recv) {
		t.Errorf("$INFO: %q %+v", res.DeviceID, g)
	}
	res, err = s.Decode([]byte("$ERROR=101\r\n"), recv)
	if err != nil || res.Signals[0].Attrs["result"] != "$ERROR=101" {
		t.Errorf("$ERROR: %v %+v", err, res.Signals)
	}
	// A resend on another connection keeps its time.
	res2, err := d.NewSession(plugins.SessionConfig{}).Decode(info, recv.Add(time.Minute))
	if err != nil || !res2.Signals[0].TS.Equal(recv) {
		t.Errorf("resend: %v %v", err, res2.Signals)
	}
}

func TestRejects(t *testing.T) {
	bin := conversation(t)[1]
	badBin := append([]byte(nil), bin...)
	badBin[len(badBin)-1] ^= 1
	txt := textReport(1, "1", "1523543713,1523543714,1523543714,1,2,3,2,6.6,9,1,43,0,3300,,2000,2000,")
	badTxt := append([]byte(nil), txt...)
	badTxt[20] ^= 1
	for _, c := range []struct {
		name  string
		frame []byte
		cfg   plugins.SessionConfig
		want  error
	}{
		{"binary crc", badBin, plugins.SessionConfig{}, plugins.ErrChecksum},
		{"text crc", badTxt, plugins.SessionConfig{}, plugins.ErrChecksum},
		{"binary short", bin[:len(bin)-1], plugins.SessionConfig{}, plugins.ErrMalformed},
		{"text without CRLF at the end", append(txt[:len(txt)-2], 'x', 'y'), plugins.SessionConfig{}, plugins.ErrMalformed},
		{"garbage", []byte("hello\r\n"), plugins.SessionConfig{}, plugins.ErrMalformed},
		{"too large", bin, plugins.SessionConfig{MaxFrame: 30}, plugins.ErrTooLarge},
		{"not allowed", bin, plugins.SessionConfig{AllowDevice: func(string) bool { return false }}, plugins.ErrUnauthorized},
		{"bad number", textReport(1, "1", "1523543713,1,1,1,2,3,2,6.6,x,1,43,0,3300,,2000,2000,"), plugins.SessionConfig{}, plugins.ErrMalformed},
		{"bad time", textReport(1, "1", "2018-04-12,1,1,1,2,3,2,6.6,9,1,43,0,3300,,2000,2000,"), plugins.SessionConfig{}, plugins.ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := (&Decoder{}).NewSession(c.cfg).Decode(c.frame, recv)
			if !errors.Is(err, c.want) || len(res.Signals) != 0 || res.Ack != nil {
				t.Errorf("Decode = %d signals, ack %x, %v; want %v", len(res.Signals), res.Ack, err, c.want)
			}
		})
	}
}

func TestFrame(t *testing.T) {
	s := session(nil)
	for _, f := range conversation(t) {
		for i := 0; i < len(f); i++ {
			if n, err := s.Frame(f[:i]); n != 0 || err != nil {
				t.Fatalf("Frame(prefix %d of %d %q) = %d, %v", i, len(f), f[:min(len(f), 8)], n, err)
			}
		}
		if n, err := s.Frame(append(append([]byte(nil), f...), '@', 'P')); n != len(f) || err != nil {
			t.Fatalf("Frame = %d, %v; want %d", n, err, len(f))
		}
	}
	b := binary.BigEndian.AppendUint16([]byte{'@', 'P', 0, 0}, 0xffff)
	if _, err := s.Frame(b); !errors.Is(err, plugins.ErrTooLarge) {
		t.Errorf("huge length: %v", err)
	}
	if _, err := s.Frame([]byte("x")); !errors.Is(err, plugins.ErrMalformed) {
		t.Errorf("garbage: %v", err)
	}
}

func TestMissingCRLFAtEOF(t *testing.T) {
	f := textReport(3, "356961075931165", "1534381563,1534381564,1534381564,-88429188,44271225,70,2,200563,8,1,0,0,0,,2000,2000,")
	cut := f[:len(f)-2]
	s := session(nil)
	if n, err := s.Frame(cut); n != 0 || err != nil {
		t.Fatalf("Frame without CRLF = %d, %v; want 0 (need more)", n, err)
	}
	if n, err := s.FrameAtEOF(cut); n != len(cut) || err != nil {
		t.Fatalf("FrameAtEOF = %d, %v; want %d", n, err, len(cut))
	}
	if n, _ := s.FrameAtEOF(cut[:len(cut)-1]); n != 0 {
		t.Errorf("FrameAtEOF took a report missing more than its CRLF")
	}
	res, err := s.Decode(cut, recv)
	if err != nil || len(res.Signals) != 1 || string(res.Signals[0].Frame) != string(cut) {
		t.Fatalf("Decode without CRLF: %v, %+v", err, res.Signals)
	}
}

func TestGolden(t *testing.T) {
	plugintest.Golden(t, &Decoder{}, recv, *update,
		plugintest.GoldenCase{In: "conversation/input.hex", Golden: "conversation/expected.jsonl", Hex: true, OK: 7, Bad: 0},
	)
}

func TestConformance(t *testing.T) {
	plugintest.Run(t, &Decoder{}, plugintest.Cases{
		Frames:    conversation(t),
		Oversized: [][]byte{{'@', 'P', 0, 0, 0xff, 0xff}, []byte("@P,0000,99999999,")},
	})
}

func TestConformanceCustom(t *testing.T) {
	plugintest.Run(t, &Decoder{}, plugintest.Cases{
		Frames:  readHex(t, "testdata/custom/input.hex"),
		Options: map[string]string{"custom": "true"},
	})
}

func TestConformanceUDP(t *testing.T) {
	plugintest.Run(t, &Decoder{}, plugintest.Cases{Frames: conversation(t), Transport: plugins.UDP})
}

func TestRegistered(t *testing.T) {
	if d, ok := plugins.Decoders.Lookup(Name); !ok || d.Info().DefaultPort != DefaultPort {
		t.Fatal("atrack not registered")
	}
}

func BenchmarkDecode(b *testing.B) {
	frame := conversation(b)[1]
	s := session(nil)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Decode(frame, recv); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
