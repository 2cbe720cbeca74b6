// Package tlsconf loads the certificate, key and optional client CA of a
// TLS endpoint (a device listener or the API) and serves them to
// crypto/tls through a Source whose Reload re-reads the files, so that a
// renewed certificate takes effect for new connections without a restart
// (the node calls Reload on SIGHUP).
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// Files names the PEM files of one endpoint.
type Files struct {
	CertFile string
	KeyFile  string
	// ClientCAFile, when set, makes the endpoint require a client
	// certificate signed by one of its CAs (mutual TLS).
	ClientCAFile string
}

// Source serves the current configuration of one endpoint.
type Source struct {
	name  string
	files Files
	cur   atomic.Pointer[tls.Config]
}

// Load reads and checks the files of the endpoint called name (the name
// appears in every error).
func Load(name string, f Files) (*Source, error) {
	s := &Source{name: name, files: f}
	cfg, err := s.build()
	if err != nil {
		return nil, err
	}
	s.cur.Store(cfg)
	return s, nil
}

// Check reports whether the files load, as Load would, without keeping
// them (config validation).
func Check(name string, f Files) error {
	_, err := Load(name, f)
	return err
}

// Name is the endpoint's name.
func (s *Source) Name() string { return s.name }

// Reload re-reads the files. On an error the previous certificate stays
// in service and the error says why.
func (s *Source) Reload() error {
	cfg, err := s.build()
	if err != nil {
		return err
	}
	s.cur.Store(cfg)
	return nil
}

// Config is the tls.Config to serve with: every handshake takes the
// certificate and client CAs loaded last.
func (s *Source) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load(), nil
		},
	}
}

// Leaf is the certificate currently served (tests, logs).
func (s *Source) Leaf() *x509.Certificate {
	return s.cur.Load().Certificates[0].Leaf
}

func (s *Source) build() (*tls.Config, error) {
	f := s.files
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, fmt.Errorf("%s: tls needs cert_file and key_file", s.name)
	}
	for _, p := range []string{f.CertFile, f.KeyFile} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: tls: %w", s.name, err)
		}
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: tls: loading %s and %s: %w", s.name, f.CertFile, f.KeyFile, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("%s: tls: parsing %s: %w", s.name, f.CertFile, err)
		}
		cert.Leaf = leaf
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f.ClientCAFile != "" {
		pem, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: tls: %w", s.name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: tls: client_ca_file %s holds no PEM certificate", s.name, f.ClientCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ErrNotTLS marks a connection whose first bytes were not a TLS handshake
// (a plain-text client on a TLS port).
var ErrNotTLS = errors.New("client did not start a TLS handshake (plain text on a TLS port?)")

// HandshakeError explains a failed handshake for a log line: ErrNotTLS
// when the client spoke plain text, else err.
func HandshakeError(err error) error {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return fmt.Errorf("%w: %w", ErrNotTLS, err)
	}
	return err
}
