package wasmdecoder

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/fleetcore/fleetcore/plugins"
)

const abiDoc = "../../protocols/wasm/ABI.md"

// docBlock returns the fenced block after marker in ABI.md: the bytes of a
// hex dump ("0008  00 a8 da 76   comment", offsets checked) or the text.
func docBlock(t *testing.T, doc []byte, marker string, dump bool) []byte {
	t.Helper()
	i := bytes.Index(doc, []byte(marker))
	if i < 0 {
		t.Fatalf("ABI.md has no %s block", marker)
	}
	sc := bufio.NewScanner(bytes.NewReader(doc[i:]))
	in := false
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if in {
				return data
			}
			in = true
			continue
		}
		if !in {
			continue
		}
		if !dump {
			data = append(data, line...)
			continue
		}
		off, err := strconv.ParseUint(line[:4], 16, 32)
		if err != nil || int(off) != len(data) || line[4:6] != "  " {
			t.Fatalf("%s: line %q: offset, want %04x", marker, line, len(data))
		}
		hexPart, _, _ := strings.Cut(line[6:], "   ")
		b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(hexPart), " ", ""))
		if err != nil {
			t.Fatalf("%s: line %q: %v", marker, line, err)
		}
		data = append(data, b...)
	}
	t.Fatalf("%s: block not closed", marker)
	return nil
}

// TestABIWorkedExample checks the byte dumps of protocols/wasm/ABI.md
// against the host's encoder and the WAT example's real output.
func TestABIWorkedExample(t *testing.T) {
	doc, err := os.ReadFile(abiDoc)
	if err != nil {
		t.Fatal(err)
	}
	wantIn := docBlock(t, doc, "<!-- input:acme_wat -->", true)
	wantOut := docBlock(t, doc, "<!-- output:acme_wat -->", true)
	wantSig := docBlock(t, doc, "<!-- signal:acme_wat -->", false)

	m := load(t, newHost(t, Config{Budget: testBudget}), examplePath, exampleWasm(t))
	sess := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 65536}).(*Session)
	if _, err := sess.Decode(mustHex(t, helloHex), recvT); err != nil {
		t.Fatal(err)
	}
	frame := mustHex(t, batch2Hex)
	in := sess.input(frame, recvT.UnixMilli())
	if got := AppendInput(nil, in); !bytes.Equal(got, wantIn) {
		t.Fatalf("the input block differs from what the host writes:\n got %x\nwant %x", got, wantIn)
	}

	// The guest's output for exactly those input bytes.
	inst, err := m.acquire()
	if err != nil {
		t.Fatal(err)
	}
	view, e, _ := m.input(inst, len(wantIn), time.Second)
	if e != nil {
		t.Fatal(e)
	}
	copy(view, wantIn)
	inst.stack[0], inst.stack[1] = api.EncodeU32(inst.bufPtr), api.EncodeU32(uint32(len(wantIn)))
	if _, err := inst.call(inst.decode, time.Second); err != nil {
		t.Fatal(err)
	}
	ptr, n := uint32(inst.stack[0]>>32), uint32(inst.stack[0])
	got, _ := inst.mem.Read(ptr, n)
	if ptr != 16384 || !bytes.Equal(got, wantOut) {
		t.Fatalf("the output block differs from the guest's output at %d:\n got %x\nwant %x", ptr, got, wantOut)
	}
	m.release(inst)
	parsed, err := ParseOutput(wantOut, Caps{})
	if err != nil || len(parsed.Records) != 1 || parsed.Status != 0 || len(parsed.Ack) != 10 {
		t.Fatalf("ParseOutput: %+v, %v", parsed, err)
	}

	// The signal the host makes of it.
	res, err := sess.Decode(frame, recvT)
	if err != nil || len(res.Signals) != 1 {
		t.Fatalf("Decode: %+v, %v", res, err)
	}
	var want map[string]json.RawMessage
	if err := json.Unmarshal(wantSig, &want); err != nil {
		t.Fatal(err)
	}
	var proto string
	_ = json.Unmarshal(want["protocol"], &proto)
	delete(want, "protocol")
	s := res.Signals[0]
	if err := compareSignal(&s, want); err != nil || proto != s.Protocol {
		t.Fatalf("the signal block differs: %v (protocol %q, got %q)", err, proto, s.Protocol)
	}
	if len(want) != 11 {
		t.Errorf("the signal block lists %d keys, this test expects 11: update both", len(want))
	}
	if s.DecoderVersion != m.Version() || !strings.HasPrefix(s.DecoderVersion, "1.0.0+sha256:") || !bytes.Equal(s.Frame, frame) {
		t.Errorf("decoder version %q, frame %x", s.DecoderVersion, s.Frame)
	}
	if hex.EncodeToString(res.Ack) != hex.EncodeToString(wantOut[48:58]) {
		t.Errorf("ack %x", res.Ack)
	}
}
