package corpus_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
)

// wasmProtocols are corpus protocols fleetcore ships as WebAssembly
// decoders: protocols/wasm/decoders/<name>, built for wasip1 in the test
// (internal/wasmfixture.Go, as `make decoders` builds them) and loaded
// through plugins/wasmdecoder, the host the gateway runs them in. Their
// captures then go through TestCorpus like a built-in decoder's: same
// tallies, checks and divergence rules. One line per protocol.
var wasmProtocols = []string{
	"wialon",
	"watch",
}

var (
	wasmHostOnce sync.Once
	wasmHost     *wasmdecoder.Host
	wasmHostErr  error
)

// wasmDecoder builds and loads the WASM decoder of a protocol (ok false
// when the protocol is not in wasmProtocols). A build or load failure
// fails the test: a listed protocol cannot be skipped.
func wasmDecoder(t *testing.T, proto string) (plugins.Decoder, bool) {
	t.Helper()
	if !slices.Contains(wasmProtocols, proto) {
		return nil, false
	}
	wasmHostOnce.Do(func() {
		// A call budget far above the production 50 ms: the corpus checks
		// what decoders answer, not how fast a loaded machine runs them.
		wasmHost, wasmHostErr = wasmdecoder.NewHost(wasmdecoder.Config{Logger: hclog.NewNullLogger(), Budget: 10 * time.Second})
	})
	if wasmHostErr != nil {
		t.Fatalf("starting the WASM decoder host: %v", wasmHostErr)
	}
	src := "protocols/wasm/decoders/" + proto
	m, err := wasmHost.Load(context.Background(), src, wasmfixture.Go(t, src, nil))
	if err != nil {
		t.Fatalf("loading the %s WASM decoder: %v", proto, err)
	}
	if m.Name() != proto {
		t.Fatalf("%s: the WASM decoder is named %q, want %q", src, m.Name(), proto)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m, true
}

// restoreLineEnd gives a text capture of a WASM decoder back the line end
// Traccar's framer stripped, when the decoder's framer asks for more bytes
// at the end of the capture. A native line protocol frames its last line
// at the end of the input (plugins.EOFFramer); the WASM ABI has no such
// call, so the capture gets the "\n" its device sent (as the protocols
// integration test does for text captures over TCP). Frame is pure in the
// ABI (fc_frame cannot change the state), so probing it changes nothing.
func restoreLineEnd(dec plugins.Decoder, sess plugins.Session, tr plugins.Transport, r *row, data []byte) []byte {
	if _, ok := dec.(*wasmdecoder.Module); !ok || r.Encoding != "text" || tr != plugins.TCP {
		return data
	}
	if n, err := sess.Frame(data); n == 0 && err == nil {
		return append(data, '\n')
	}
	return data
}
