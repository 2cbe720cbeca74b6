package main

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
)

// wasmDecoders serves the listeners of cfg that name no built-in decoder
// from WebAssembly decoders built in the test: protocols/wasm/decoders/
// <protocol> is built for wasip1 (as `make decoders` builds it) into a
// fresh decoder folder that cfg.Decoders then points at, and loaded here
// too, for the local sessions that predict acks. It returns the local
// modules by protocol. A listener naming a protocol that has neither a
// built-in decoder nor a folder under protocols/wasm/decoders fails the
// test.
func wasmDecoders(t *testing.T, cfg *config.Config) map[string]plugins.Decoder {
	t.Helper()
	folder := t.TempDir()
	// One compilation cache for the test's host and the node's: the node
	// then loads the modules this function compiled instead of compiling
	// them again before it is ready (slow under -race on a loaded machine).
	cacheDir := filepath.Join(t.TempDir(), "cache")
	out := map[string]plugins.Decoder{}
	var host *wasmdecoder.Host
	for _, l := range cfg.Listeners {
		if _, ok := plugins.Decoders.Lookup(l.Protocol); ok || out[l.Protocol] != nil {
			continue
		}
		src := "protocols/wasm/decoders/" + l.Protocol
		if _, err := os.Stat(filepath.Join("..", "..", src, "main.go")); err != nil {
			t.Fatalf("listener %s names %q: no built-in decoder and no %s/main.go", l.Name, l.Protocol, src)
		}
		wasm := wasmfixture.Go(t, src, nil)
		if err := os.WriteFile(filepath.Join(folder, l.Protocol+".wasm"), wasm, 0o644); err != nil {
			t.Fatal(err)
		}
		if host == nil {
			var err error
			if host, err = wasmdecoder.NewHost(wasmdecoder.Config{CacheDir: cacheDir, Logger: hclog.NewNullLogger(), Budget: 10 * time.Second}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = host.Close(context.Background()) })
		}
		m, err := host.Load(context.Background(), src, wasm)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close(context.Background()) })
		out[l.Protocol] = m
	}
	cfg.Decoders.Dir = folder
	cfg.Decoders.CacheDir = cacheDir
	// A budget far above the production 50 ms: this test is about acks
	// after commit on a loaded machine, not about call time.
	cfg.Decoders.Budget = "10s"
	return out
}

// lookupDecoder finds a protocol's decoder: built in, or one of wasm.
func lookupDecoder(wasm map[string]plugins.Decoder, proto string) (plugins.Decoder, bool) {
	if d, ok := plugins.Decoders.Lookup(proto); ok {
		return d, true
	}
	d, ok := wasm[proto]
	return d, ok
}

// wasmConversations adds, for every WASM decoder, the first conversation of
// protocols/wasm/decoders/<protocol>/testdata/*/input.hex (hex lines, #
// comments) that frames and decodes cleanly, over TCP and as datagrams.
func wasmConversations(t *testing.T, wasm map[string]plugins.Decoder, out map[string][][]byte) {
	t.Helper()
	for proto, dec := range wasm {
		files, _ := filepath.Glob(filepath.Join("..", "..", "protocols", "wasm", "decoders", proto, "testdata", "*", "input.hex"))
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var frames [][]byte
			for _, line := range strings.Split(string(b), "\n") {
				line = strings.TrimSpace(line)
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				fr, err := hex.DecodeString(line)
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				frames = append(frames, fr)
			}
			if len(frames) > 0 && decoderDecodesCleanly(dec, frames) {
				out[proto+"/tcp"] = frames
				out[proto+"/udp"] = frames
				break
			}
		}
	}
}

// decoderDecodesCleanly reports whether every frame frames and decodes
// without error in one TCP session of dec.
func decoderDecodesCleanly(dec plugins.Decoder, frames [][]byte) bool {
	sess := dec.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 64 << 10, Logger: hclog.NewNullLogger()})
	for _, f := range frames {
		if n, err := sess.Frame(f); err != nil || n != len(f) {
			return false
		}
		if _, err := sess.Decode(f, time.Now()); err != nil {
			return false
		}
	}
	return true
}

// waitDecoders waits until the node's decoder folder serves every WASM
// decoder (it scans the folder when it starts).
func waitDecoders(t *testing.T, loaded func(name string) bool, wasm map[string]plugins.Decoder) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for name := range wasm {
		for !loaded(name) {
			if time.Now().After(deadline) {
				t.Fatalf("the node's decoder folder did not load %s within 60s", name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
