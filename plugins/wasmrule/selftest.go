package wasmrule

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/signal"
)

// Input builds the host input of a test case.
func (tc *TestCase) Input() Input {
	s := signal.New("selftest", time.Time{})
	var prev *signal.Signal
	prevOf := func() *signal.Signal {
		if prev == nil {
			p := signal.New("selftest", time.Time{})
			prev = &p
		}
		return prev
	}
	for k, v := range tc.In {
		f, ok := signal.FieldByName(k)
		if !ok {
			continue
		}
		switch f {
		case signal.FieldTS:
			s.TS = time.UnixMilli(int64(v)).UTC()
		case signal.FieldRecv:
			s.Recv = time.UnixMilli(int64(v)).UTC()
		case signal.FieldPrevTS:
			prevOf().TS = time.UnixMilli(int64(v)).UTC()
		case signal.FieldPrevLat:
			prevOf().Lat = v
		case signal.FieldPrevLon:
			prevOf().Lon = v
		case signal.FieldPrevOdometer:
			prevOf().Odometer = v
		default:
			s.SetNumber(f, v)
		}
	}
	for k, v := range tc.Attrs {
		s.SetAttr(k, v)
	}
	return Input{Signal: s, Prev: prev, Now: time.UnixMilli(tc.NowMs).UTC()}
}

// ReadTests reads test cases, one JSON object per line (a <rule>.tests.jsonl
// file). Blank lines and lines starting with # are skipped.
func ReadTests(r io.Reader) ([]TestCase, error) {
	var out []TestCase
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		var tc TestCase
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&tc); err != nil {
			return nil, fmt.Errorf("reading test line %d: %w", line, err)
		}
		if tc.Name == "" {
			tc.Name = fmt.Sprintf("line %d", line)
		}
		out = append(out, tc)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading tests: %w", err)
	}
	return out, nil
}

// SelfTest runs the metadata's test cases and extra ones (for example from
// a <rule>.tests.jsonl file) through the rule. It does not count towards
// the failure counter. A mismatch or an evaluation error is an *Error of
// KindInvalid listing every failing case.
func (r *Rule) SelfTest(ctx context.Context, extra []TestCase) error {
	cases := append(append([]TestCase(nil), r.meta.Tests...), extra...)
	var fails []string
	for i := range cases {
		tc := &cases[i]
		if i >= len(r.meta.Tests) {
			if err := r.meta.validateTest(tc); err != nil {
				fails = append(fails, fmt.Sprintf("%q: %v", tc.Name, err))
				continue
			}
		}
		want, _ := ParseStatus(tc.Want)
		in := []Input{tc.Input()}
		out := make([]Verdict, 1)
		if err := r.eval(ctx, in, signal.UnixMilli(in[0].Now), out); err != nil {
			if KindOf(err) == KindCanceled {
				return err
			}
			fails = append(fails, fmt.Sprintf("%q: %v", tc.Name, err))
			continue
		}
		got := out[0]
		if got.Status != want || ((want == StatusWarn || want == StatusFail) && got.Reason != tc.Reason) {
			fails = append(fails, fmt.Sprintf("%q: want %s reason %d, got %s reason %d",
				tc.Name, want, tc.Reason, got.Status, got.Reason))
		}
	}
	if len(fails) > 0 {
		return &Error{Rule: r.meta.Name, Kind: KindInvalid,
			Err: fmt.Errorf("self-test: %d of %d cases failed: %s", len(fails), len(cases), strings.Join(fails, "; "))}
	}
	return nil
}

// TestCount returns how many self-test cases the metadata carries.
func (r *Rule) TestCount() int { return len(r.meta.Tests) }
