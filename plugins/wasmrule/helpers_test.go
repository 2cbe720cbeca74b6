package wasmrule

import (
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/signal"
)

// wat2wasm assembles WebAssembly text with wabt's wat2wasm (once per text,
// see internal/wasmfixture); without wabt a test fails and says how to get it.
func wat2wasm(t testing.TB, src string) []byte {
	t.Helper()
	return wasmfixture.WAT(t, src)
}

const hostileMeta = `{"name":"test.hostile","version":"1.0.0","dimension":"validity","severity":"info",` +
	`"fields":["speed"],"attrs":[],"reasons":{"1":"negative speed"}}`

// hostileSrc fills testdata/hostile.wat.tmpl; keys of over replace the
// defaults (ABI, CHECK, META, MEM, IMPORT, META_PTR, META_LEN).
func hostileSrc(t testing.TB, over map[string]string) string {
	t.Helper()
	tmpl, err := os.ReadFile("testdata/hostile.wat.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{"ABI": "1", "CHECK": "fc_check", "META": hostileMeta, "MEM": "2", "IMPORT": "", "META_PTR": "1024"}
	for k, v := range over {
		vals[k] = v
	}
	if _, ok := vals["META_LEN"]; !ok {
		vals["META_LEN"] = strconv.Itoa(len(vals["META"]))
	}
	vals["META"] = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(vals["META"])
	s := string(tmpl)
	for k, v := range vals {
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	return s
}

var (
	speedOnce sync.Once
	speedWasm []byte
	speedErr  string
)

// speedRange builds the WAT example rule (checks-wasm/examples/wat).
func speedRange(t testing.TB) []byte {
	t.Helper()
	speedOnce.Do(func() {
		src, err := os.ReadFile("../../checks-wasm/examples/wat/speed_range.wat")
		if err != nil {
			speedErr = err.Error()
			return
		}
		speedWasm = wat2wasm(t, string(src))
	})
	if speedErr != "" {
		t.Fatal(speedErr)
	}
	return speedWasm
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// speeds returns inputs with the given speeds (NaN = absent).
func speeds(vs ...float64) []Input {
	in := make([]Input, len(vs))
	for i, v := range vs {
		s := signal.New("dev", t0.Add(time.Duration(i)*time.Second))
		s.Speed = v
		in[i] = Input{Signal: s, Now: t0}
	}
	return in
}

// wantSpeed is the speed_range / hostile verdict computed natively.
func wantSpeed(v float64, upper bool) Verdict {
	switch {
	case math.IsNaN(v) && !upper:
		return Verdict{} // the hostile guest passes an absent speed
	case math.IsNaN(v):
		return Verdict{Status: StatusNotApplicable}
	case v < 0:
		return Verdict{Status: StatusFail, Reason: 1}
	case upper && v > 300:
		return Verdict{Status: StatusFail, Reason: 2}
	}
	return Verdict{}
}
