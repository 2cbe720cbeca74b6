package signal

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestJSONDecoderVersion: decoder_version is in the canonical JSON shape
// when known, absent when unknown, and survives a round trip.
func TestJSONDecoderVersion(t *testing.T) {
	s := New("dev-1", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "decoder_version") {
		t.Fatalf("unknown decoder version printed: %s", b)
	}
	s.DecoderVersion = "1.2.0+sha256:abcdef123456"
	b, err = json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), `,"decoder_version":"1.2.0+sha256:abcdef123456"}`) {
		t.Fatalf("marshalled %s, want decoder_version last", b)
	}
	var back Signal
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.DecoderVersion != s.DecoderVersion {
		t.Fatalf("round trip: decoder version %q, want %q", back.DecoderVersion, s.DecoderVersion)
	}
}
