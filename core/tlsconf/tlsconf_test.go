package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type pair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func mk(t *testing.T, cn string, parent *pair, ca bool) *pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &pair{cert: c, key: key, der: der}
}

func (p *pair) write(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	kb, _ := x509.MarshalECPrivateKey(p.key)
	cf, kf := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.der}), 0o600) //nolint:errcheck // read back by Load
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600) //nolint:errcheck // read back by Load
	return cf, kf
}

// handshake runs a TLS handshake over a pipe between the source's config
// and client.
func handshake(t *testing.T, s *Source, client *tls.Config) (*tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		a, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer a.Close()
		a.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // bounds the test
		c := tls.Server(a, s.Config())
		err = c.Handshake()
		if err == nil {
			_, err = c.Read(make([]byte, 1)) // TLS 1.3: the client certificate is checked here
		}
		srvErr <- err
	}()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // bounds the test
	c := tls.Client(b, client)
	err = c.Handshake()
	if err == nil {
		_, err = c.Write([]byte{1})
	}
	if serr := <-srvErr; err == nil {
		err = serr
	}
	st := c.ConnectionState()
	return &st, err
}

func TestClientCARequiresClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := mk(t, "ca", nil, true)
	srv := mk(t, "server", ca, false)
	cli := mk(t, "device", ca, false)
	cf, kf := srv.write(t, dir, "srv")
	caFile, _ := ca.write(t, dir, "ca")
	s, err := Load("listener \"x\"", Files{CertFile: cf, KeyFile: kf, ClientCAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	if _, err := handshake(t, s, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err == nil {
		t.Fatal("handshake without a client certificate succeeded")
	}
	clientCert := tls.Certificate{Certificate: [][]byte{cli.der}, PrivateKey: cli.key}
	st, err := handshake(t, s, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{clientCert}})
	if err != nil {
		t.Fatalf("handshake with a client certificate: %v", err)
	}
	if st.PeerCertificates[0].Subject.CommonName != "server" {
		t.Fatalf("served %q", st.PeerCertificates[0].Subject.CommonName)
	}
}

func TestLoadErrorsNameTheEndpoint(t *testing.T) {
	dir := t.TempDir()
	ca := mk(t, "ca", nil, true)
	cf, kf := mk(t, "server", ca, false).write(t, dir, "srv")
	bad := filepath.Join(dir, "empty.pem")
	os.WriteFile(bad, []byte("no pem here"), 0o600) //nolint:errcheck // read back by Load
	for _, f := range []Files{
		{CertFile: filepath.Join(dir, "nope.crt"), KeyFile: kf},
		{CertFile: cf, KeyFile: bad},
		{CertFile: cf, KeyFile: kf, ClientCAFile: bad},
		{CertFile: cf},
	} {
		err := Check(`listener "gps"`, f)
		if err == nil || !strings.HasPrefix(err.Error(), `listener "gps": tls`) {
			t.Errorf("%+v: %v", f, err)
		}
	}
}

func TestReloadKeepsTheOldCertificateOnError(t *testing.T) {
	dir := t.TempDir()
	ca := mk(t, "ca", nil, true)
	cf, kf := mk(t, "one", ca, false).write(t, dir, "srv")
	s, err := Load("api", Files{CertFile: cf, KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	mk(t, "two", ca, false).write(t, dir, "srv")
	if err := s.Reload(); err != nil || s.Leaf().Subject.CommonName != "two" {
		t.Fatalf("reload: %v, serving %q", err, s.Leaf().Subject.CommonName)
	}
	os.Remove(kf) //nolint:errcheck // the reload below must fail
	err = s.Reload()
	if !errors.Is(err, os.ErrNotExist) || s.Leaf().Subject.CommonName != "two" {
		t.Fatalf("failed reload: %v, serving %q", err, s.Leaf().Subject.CommonName)
	}
}

func TestHandshakeErrorSaysPlainText(t *testing.T) {
	dir := t.TempDir()
	cf, kf := mk(t, "one", nil, false).write(t, dir, "srv")
	s, err := Load("x", Files{CertFile: cf, KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		b, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			b.Write([]byte("GET / HTTP/1.1\r\n\r\n")) //nolint:errcheck // the server judges
			time.Sleep(100 * time.Millisecond)
			b.Close()
		}
	}()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // bounds the test
	err = tls.Server(a, s.Config()).Handshake()
	if !errors.Is(HandshakeError(err), ErrNotTLS) {
		t.Fatalf("plain text: %v", HandshakeError(err))
	}
}
