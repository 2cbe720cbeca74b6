package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/gt06"
	"github.com/fleetcore/fleetcore/signal"
)

// corpusFrames returns, per protocol, one device conversation from the
// shared capture corpus: the frames of one test method in seq order, cut
// after the last frame that still decodes cleanly, holding at least one
// signal.
func corpusFrames(t *testing.T) map[string][][]byte {
	return conversations(t)
}

// preludes are frames a conversation needs before the corpus's frames
// (the corpus's GT06 captures start after the device's login).
func preludes() map[string][]byte {
	imei := []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0x01, 0x23, 0x45} // BCD 0123456789012345
	return map[string][]byte{"gt06": gt06.Response(false, 0x01, imei, 1)}
}

// conversations returns, per "protocol/transport", one device conversation:
// from the shared capture corpus (one test method in seq order, cut where a
// frame no longer decodes cleanly, at most 8 frames) and, for protocols the
// corpus lacks, from the protocol's own testdata.
func conversations(t *testing.T) map[string][][]byte {
	t.Helper()
	path := os.Getenv("FLEETCORE_TESTDATA")
	if path == "" {
		path = filepath.Join("..", "..", "..", "shared", "testdata")
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "traccar-frames.jsonl")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("opening the capture corpus: %v", err)
	}
	defer f.Close()
	type row struct {
		Protocol, TestMethod, Encoding, Payload, Transport string
		Seq                                                int
		DecoderState                                       map[string]any `json:"decoder_state"`
	}
	groups := map[string][]row{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r row
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatal(err)
		}
		r.Protocol, _ = raw["protocol"].(string)
		r.TestMethod, _ = raw["test_method"].(string)
		r.Encoding, _ = raw["encoding"].(string)
		r.Payload, _ = raw["payload"].(string)
		r.Transport, _ = raw["transport"].(string)
		s, ok := raw["seq"].(float64)
		if !ok {
			continue // not part of a replayable conversation
		}
		r.Seq = int(s)
		if raw["decoder_state"] != nil || (raw["direction"] != nil && raw["direction"] != "device_to_server") {
			continue
		}
		for _, tr := range []string{"tcp", "udp"} {
			// Any capture can try TCP (the framer decides); only UDP
			// captures are datagrams.
			if tr == "tcp" || r.Transport == tr || r.Transport == "tcp|udp" {
				k := r.Protocol + "/" + tr + "/" + r.TestMethod
				groups[k] = append(groups[k], r)
			}
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string][][]byte{}
	for _, k := range keys {
		rows := groups[k]
		proto := rows[0].Protocol
		tr := plugins.TCP
		if strings.Contains(k, "/udp/") {
			tr = plugins.UDP
		}
		key := proto + "/" + string(tr)
		if _, done := out[key]; done {
			continue
		}
		dec, ok := plugins.Decoders.Lookup(proto)
		if !ok {
			continue
		}
		sort.SliceStable(rows, func(i, j int) bool { return rows[i].Seq < rows[j].Seq })
		sess := dec.NewSession(plugins.SessionConfig{Transport: tr, MaxFrame: 64 << 10, Logger: hclog.NewNullLogger()})
		var frames [][]byte
		signals := 0
		if p, ok := preludes()[proto]; ok {
			if _, err := sess.Decode(p, time.Now()); err != nil {
				t.Fatalf("%s prelude: %v", proto, err)
			}
			frames = append(frames, p)
		}
	rows:
		for _, r := range rows {
			b := []byte(r.Payload)
			if r.Encoding == "hex" {
				if b, err = hex.DecodeString(r.Payload); err != nil {
					break
				}
			}
			if tr == plugins.UDP {
				if len(frames) >= 8 {
					break
				}
				res, err := sess.Decode(b, time.Now())
				if err != nil {
					continue // leave frames the decoder rejects out
				}
				frames = append(frames, b)
				signals += len(res.Signals)
				continue
			}
			// Line-framed text protocols over TCP: a datagram capture
			// becomes a line.
			if n, err := sess.Frame(b); n == 0 && err == nil && r.Encoding == "text" {
				b = append(b, '\n')
			}
			// A capture line may hold several frames: split it.
			for len(b) > 0 && len(frames) < 8 {
				fn, err := sess.Frame(b)
				if err != nil || fn == 0 {
					continue rows
				}
				res, err := sess.Decode(b[:fn], time.Now())
				if err != nil {
					continue rows
				}
				frames = append(frames, b[:fn])
				signals += len(res.Signals)
				b = b[fn:]
			}
		}
		if signals > 0 {
			out[key] = frames
		}
	}
	// Protocols the corpus lacks ship captured conversations as
	// testdata/<case>/input.hex (one frame per line, # comments).
	for _, proto := range plugins.Decoders.Names() {
		if _, ok := out[proto+"/tcp"]; ok {
			continue
		}
		files, _ := filepath.Glob(filepath.Join("..", "..", "protocols", proto, "testdata", "*", "input.hex"))
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
			if len(frames) > 0 && decodesCleanly(proto, frames) {
				out[proto+"/tcp"] = frames
				if _, ok := out[proto+"/udp"]; !ok { // the same messages as datagrams
					out[proto+"/udp"] = frames
				}
				break
			}
		}
	}
	// jsonl is fleetcore's own protocol: its testdata is the conversation.
	if b, err := os.ReadFile("../../protocols/jsonl/testdata/valid.jsonl"); err == nil {
		for _, line := range bytes.SplitAfter(b, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 {
				out["jsonl/tcp"] = append(out["jsonl/tcp"], line)
			}
		}
	}
	return out
}

// decodesCleanly reports whether every frame frames and decodes without
// error in one TCP session.
func decodesCleanly(proto string, frames [][]byte) bool {
	dec, _ := plugins.Decoders.Lookup(proto)
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

// TestIntegrationEveryProtocolOverItsTransport runs the default config's
// listeners (on free ports) and, for every protocol with TCP captures in
// the corpus, replays one device conversation over a real socket: each
// data frame's ack must arrive only after its rows are committed, and must
// equal the ack the decoder produces for the frame.
func TestIntegrationEveryProtocolOverItsTransport(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	cfg, err := config.Load("../../configs/fleetcore.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = db
	cfg.Ingest.BatchMaxAge = "2ms"
	cfg.AMQP.URL = "" // this test is about the protocols, not failover
	// The file's folders resolve into the checkout: keep this test off
	// the spool and the rules of `make run`.
	cfg.Spool.Dir = t.TempDir()
	off := false
	cfg.Rules.Enabled = &off
	cfg.API.Address = "127.0.0.1:0"
	for _, l := range cfg.Listeners {
		l.Address = "127.0.0.1:0"
	}
	wasm := wasmDecoders(t, cfg) // listeners naming WASM decoders: served from a folder
	n, _ := runTestNode(t, cfg, hclog.Error)
	waitDecoders(t, n.Decoders().Loaded, wasm)
	convs := corpusFrames(t)
	wasmConversations(t, wasm, convs)
	var framesSent atomic.Uint64 // across listeners: one gateway
	// Every receive time a local session was given, across listeners: a
	// record without a device time is stamped with its frame's first
	// receipt within the resend window (plugins.ServerTimes), which can be
	// the same frame decoded by the previous listener of the protocol
	// (wialon then wialon_udp share the module and the device).
	localRecvs := map[int64]bool{}
	for _, l := range cfg.Listeners {
		proto, tr := l.Protocol, plugins.Transport(l.Transport)
		frames, ok := convs[proto+"/"+string(tr)]
		if !ok {
			t.Errorf("listener %s: no %s conversation for %s in the corpus or the protocol's testdata", l.Name, tr, proto)
			continue
		}
		t.Run(l.Name, func(t *testing.T) {
			addr := n.Addr(l.Name).String()
			// The expected acks and signal counts, from a local session.
			dec, _ := lookupDecoder(wasm, proto)
			local := dec.NewSession(plugins.SessionConfig{Transport: tr, MaxFrame: 64 << 10, Logger: hclog.NewNullLogger()})
			c, err := net.Dial(string(tr), addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := bufio.NewReader(c)
			checked := 0
			var unacked []signal.Key // device-timed records of data frames the protocol does not ack
			for i, f := range frames {
				if tr == plugins.TCP {
					if fn, err := local.Frame(f); err != nil || fn != len(f) {
						t.Fatalf("frame %d is not exactly one TCP frame (%d of %d bytes, %v)", i, fn, len(f), err)
					}
				}
				localRecv := time.Now().Add(-time.Hour).Truncate(time.Second)
				localRecvs[localRecv.UnixNano()] = true
				res, err := local.Decode(f, localRecv)
				if err != nil {
					t.Fatal(err)
				}
				keys := map[signal.Key]bool{}
				recvTimed := map[string]bool{} // devices of records timed by their receive time
				for i := range res.Signals {
					if localRecvs[res.Signals[i].TS.UnixNano()] {
						recvTimed[res.Signals[i].DeviceID] = true
						continue
					}
					keys[res.Signals[i].Key()] = true
				}
				// A frame whose records are all stored already (a resend in
				// the capture) may be acked at once: it is durable.
				resend := len(keys) > 0 && len(recvTimed) == 0
				for k := range keys {
					resend = resend && query(t, db, "SELECT count(*) FROM signals WHERE device_id=$1 AND ts=$2 AND record_hash=$3", k.DeviceID, k.TS, k.Hash) == 1
				}
				// Records timed by the server's clock (heartbeats) repeat a
				// record of the same device stored in the same second, which
				// is acked at once as a duplicate: only frames with device
				// times are checked for the lock.
				var lock pgx.Tx
				if len(res.Signals) > 0 && !resend && len(recvTimed) == 0 {
					lock = lockSignals(t, db)
				}
				if _, err := c.Write(f); err != nil {
					t.Fatal(err)
				}
				framesSent.Add(1)
				if lock != nil && len(res.Ack) > 0 {
					c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
					if b, err := r.Peek(1); err == nil {
						t.Fatalf("frame %d: ack byte %x arrived while signals was locked", i, b)
					}
				}
				if lock != nil {
					lock.Rollback(context.Background())
				}
				if len(res.Ack) > 0 {
					c.SetReadDeadline(time.Now().Add(20 * time.Second))
					got := make([]byte, len(res.Ack))
					if tr == plugins.UDP {
						var n int
						n, err = c.Read(got)
						got = got[:n]
					} else {
						_, err = io.ReadFull(r, got)
					}
					if err != nil {
						t.Fatalf("frame %d: reading ack: %v", i, err)
					}
					if !bytes.Equal(got, res.Ack) && !timeDependentAck(proto) {
						t.Fatalf("frame %d: ack %x, want %x", i, got, res.Ack)
					}
				}
				for dev := range recvTimed {
					// No device time: the server's receive time is the key, so
					// only presence can be checked, once an ack says it is
					// durable (a frame without ack, such as a castel query
					// response, may not be stored yet).
					if len(res.Ack) == 0 {
						break
					}
					if n := query(t, db, "SELECT count(*) FROM signals WHERE device_id=$1", dev); n == 0 {
						t.Fatalf("frame %d acked but no record of %s stored", i, dev)
					}
				}
				if len(res.Ack) == 0 {
					for k := range keys {
						unacked = append(unacked, k)
					}
				}
				if len(keys)+len(recvTimed) > 0 && len(res.Ack) > 0 {
					checked++
					for k := range keys {
						if n := query(t, db, "SELECT count(*) FROM signals WHERE device_id=$1 AND ts=$2 AND record_hash=$3", k.DeviceID, k.TS, k.Hash); n != 1 {
							t.Fatalf("frame %d acked but record %v stored %d times", i, k, n)
						}
					}
				}
				if res.Close {
					break
				}
			}
			if checked == 0 && !noDataAck(proto) {
				t.Fatalf("no acked data frame checked for %s", proto)
			}
			if noDataAck(proto) {
				// Nothing tells the device its data is durable: every record
				// must still be stored, once.
				if len(unacked) == 0 {
					t.Fatalf("no data frame checked for %s", proto)
				}
				deadline := time.Now().Add(20 * time.Second)
				for _, k := range unacked {
					for query(t, db, "SELECT count(*) FROM signals WHERE device_id=$1 AND ts=$2 AND record_hash=$3", k.DeviceID, k.TS, k.Hash) != 1 {
						if time.Now().After(deadline) {
							t.Fatalf("record %v of an unacked data frame not stored once within 20s", k)
						}
						time.Sleep(10 * time.Millisecond)
					}
				}
				checked += len(unacked)
			}
			// Frames the protocol does not ack (H02 binary, most Freematics
			// data) may still be in flight: wait until the gateway has read
			// every frame sent so far and ingest has nothing pending, so
			// that the next listener's "ack only after commit" check
			// starts clean.
			deadline := time.Now().Add(20 * time.Second)
			for n.Gateway().Stats().Frames.Load() < framesSent.Load() || n.Batcher().Stats().Pending > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("gateway read %d of %d frames, %d signals pending after 20s",
						n.Gateway().Stats().Frames.Load(), framesSent.Load(), n.Batcher().Stats().Pending)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if noDataAck(proto) {
				t.Logf("%s: %d frames, %d records of unacked data frames checked against the database", proto, len(frames), checked)
			} else {
				t.Logf("%s: %d frames, %d acked data frames checked against the database", proto, len(frames), checked)
			}
		})
	}
}

// noDataAck: protocols that acknowledge no data frame (Meiligao answers
// only login and heartbeat): their records are checked in the database
// once the gateway has read them.
func noDataAck(proto string) bool {
	return proto == "meiligao"
}

// timeDependentAck: protocols whose ack carries the server's clock.
func timeDependentAck(proto string) bool {
	return proto == "gt06" || proto == "h02" || proto == "freematics"
}

func lockSignals(t *testing.T, db string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE signals IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return tx
}
