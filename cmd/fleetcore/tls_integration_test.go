package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/plugins"
)

// testCA is a self-signed CA made by the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fleetcore test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a server certificate for 127.0.0.1 named cn, signed by
// the CA, to dir/cert.pem and dir/key.pem and returns the two paths.
func (ca *testCA) issue(t *testing.T, dir, cn string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kb)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects log lines (and passes them to t.Log).
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tlsConfigFile(db, certFile, keyFile string) string {
	return `
database { url = "` + db + `" }
ingest { batch_max_age = "2ms" }
listener "teltonika" {
  address = "127.0.0.1:0"
  max_frame = 4096
  tls {
    cert_file = "` + certFile + `"
    key_file  = "` + keyFile + `"
  }
}
api {
  address = "127.0.0.1:0"
  tls {
    cert_file = "` + certFile + `"
    key_file  = "` + keyFile + `"
  }
}
`
}

// TestIntegrationTLSTeltonikaAndAPI: a Teltonika device over TLS is acked
// after its rows are durable and its bad frame is quarantined, a plain-text
// client on the TLS port is closed with the reason logged, the API answers
// over https only, and ReloadTLS serves a renewed certificate.
func TestIntegrationTLSTeltonikaAndAPI(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.issue(t, dir, "fleetcore one", 2)
	cfg, err := config.Parse("tls.hcl", []byte(tlsConfigFile(db, certFile, keyFile)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = db
	cfg.Spool.Dir = t.TempDir()
	logs := &logBuffer{t: t}
	n := node.New(cfg, plugins.Decoders, hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: logs}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node run: %v", err)
		}
	})
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("node stopped: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("node not ready")
	}
	addr := n.Addr("teltonika").String()
	clientCfg := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
	dialTLS := func(imei string) (*tls.Conn, *bufio.Reader) {
		t.Helper()
		c, err := tls.Dial("tcp", addr, clientCfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		r := bufio.NewReader(c)
		if _, err := c.Write(login(imei)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, err := r.ReadByte()
		if err != nil || b != 1 {
			t.Fatalf("login reply %x (%v), want 01", b, err)
		}
		return c, r
	}

	// Acks after durable, rows stored.
	c, r := dialTLS("356307042441013")
	if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "fleetcore one" {
		t.Fatalf("served certificate %q", got)
	}
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, err := c.Write(codec8(base, base.Add(time.Second), base.Add(2*time.Second))); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(r, ack); err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint32(ack); got != 3 {
		t.Fatalf("ack %d, want 3", got)
	}
	if k := query(t, db, "SELECT count(*) FROM signals WHERE device_id = '356307042441013'"); k != 3 {
		t.Fatalf("%d rows after the ack, want 3", k)
	}

	// A bad frame over TLS: closed and quarantined, as on plain TCP.
	bc, br := dialTLS("356307042441020")
	bad := codec8(base)
	bad[len(bad)-1] ^= 0xff
	if _, err := bc.Write(bad); err != nil {
		t.Fatal(err)
	}
	bc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("bad frame over TLS: connection not closed")
	}
	k, deadline := 0, time.Now().Add(10*time.Second)
	for k == 0 && time.Now().Before(deadline) {
		k = query(t, db, "SELECT count(*) FROM rejected_frames WHERE device_id = '356307042441020' AND reason ILIKE '%checksum%'")
		time.Sleep(10 * time.Millisecond)
	}
	if k != 1 {
		t.Fatalf("rejected_frames rows for the bad TLS frame: %d, want 1", k)
	}

	// Plain text on the TLS port: closed, reason logged, nothing stored.
	plain := dial0(t, addr)
	plain.Write(login("356307042441099")) //nolint:errcheck // the read below judges
	plain.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(plain); err != nil || len(b) != 0 {
		t.Fatalf("plain-text client got %x (%v), want a close without reply", b, err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "TLS handshake failed") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if s := logs.String(); !strings.Contains(s, "TLS handshake failed") || !strings.Contains(s, "plain text on a TLS port") {
		t.Fatalf("no logged reason for the plain-text client:\n%s", s)
	}

	// The API over https; plain http is answered 400 by the https server.
	api := "https://" + n.APIAddr().String()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientCfg}, Timeout: 10 * time.Second}
	resp, err := hc.Get(api + "/api/devices/356307042441013/signals")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "356307042441013") {
		t.Fatalf("GET signals over https: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + n.APIAddr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain http to the https API: %d, want 400", resp.StatusCode)
	}

	// Renewed certificate: served to new connections after ReloadTLS.
	ca.issue(t, dir, "fleetcore two", 3)
	if err := n.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	c2, _ := dialTLS("356307042441014")
	if got := c2.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "fleetcore two" {
		t.Fatalf("after ReloadTLS the listener serves %q", got)
	}
	resp, err = (&http.Client{Transport: &http.Transport{TLSClientConfig: clientCfg}}).Get(api + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != "fleetcore two" {
		t.Fatalf("after ReloadTLS the API serves %q", got)
	}
	// A broken key on reload: refused, the previous certificate stays.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.ReloadTLS(); err == nil {
		t.Fatal("ReloadTLS accepted a bad key")
	}
	c3, _ := dialTLS("356307042441015")
	if got := c3.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "fleetcore two" {
		t.Fatalf("after a failed reload the listener serves %q", got)
	}
}

func dial0(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestTLSConfigRefusals: a missing certificate file or a bad key is a
// configuration error naming the listener (or the API); serve and validate
// refuse to start on it.
func TestTLSConfigRefusals(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.issue(t, dir, "ok", 2)
	badKey := filepath.Join(dir, "bad.pem")
	writePEM(t, badKey, "EC PRIVATE KEY", []byte("garbage"))
	other := t.TempDir()
	_, otherKey := ca.issue(t, other, "other", 3)
	cases := []struct {
		name, cert, key string
		want            []string
	}{
		{"no cert file", filepath.Join(dir, "missing.pem"), keyFile, []string{`listener "teltonika"`, "missing.pem", "no such file"}},
		{"bad key", certFile, badKey, []string{`listener "teltonika"`, "bad.pem"}},
		{"key of another certificate", certFile, otherKey, []string{`listener "teltonika"`, "private key does not match public key"}},
		{"no key file", certFile, "", []string{`listener "teltonika"`, "cert_file and key_file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := `
listener "teltonika" {
  address = "127.0.0.1:0"
  tls {
    cert_file = "` + tc.cert + `"
    key_file  = "` + tc.key + `"
  }
}
`
			_, err := config.Parse("tls.hcl", []byte(src))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "tls.hcl:2") {
				t.Errorf("error %q does not name the listener's line", err)
			}
		})
	}
	t.Run("api", func(t *testing.T) {
		_, err := config.Parse("tls.hcl", []byte(`api {
  tls {
    cert_file = "`+certFile+`"
    key_file  = "`+badKey+`"
  }
}
`))
		if err == nil || !strings.Contains(err.Error(), "api: tls") {
			t.Fatalf("bad API key: %v", err)
		}
	})
	t.Run("udp", func(t *testing.T) {
		_, err := config.Parse("tls.hcl", []byte(`listener "teltonika" {
  address = "127.0.0.1:0"
  transport = "udp"
  tls {
    cert_file = "`+certFile+`"
    key_file  = "`+keyFile+`"
  }
}
`))
		if err == nil || !strings.Contains(err.Error(), "tls needs transport tcp") {
			t.Fatalf("tls on udp: %v", err)
		}
	})
}
