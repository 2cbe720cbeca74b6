package node

import (
	"errors"
	"fmt"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/tlsconf"
)

// loadTLS loads the certificate source of a TLS endpoint (a listener
// or the API) and keeps it for ReloadTLS.
func (n *Node) loadTLS(name string, t *config.TLS) (*tlsconf.Source, error) {
	src, err := tlsconf.Load(name, t.Files())
	if err != nil {
		return nil, fmt.Errorf("refusing to start: %w", err)
	}
	n.mu.Lock()
	n.tlsSources = append(n.tlsSources, src)
	n.mu.Unlock()
	n.log.Info("tls certificate loaded", "endpoint", name, "subject", src.Leaf().Subject.String(), "not_after", src.Leaf().NotAfter)
	return src, nil
}

// ReloadTLS re-reads the certificate, key and client CA files of every TLS
// listener and of the API (SIGHUP). A source whose files do not load keeps
// serving its previous certificate; the joined error names each one.
// New connections get the reloaded certificates; open ones keep theirs.
func (n *Node) ReloadTLS() error {
	n.mu.Lock()
	srcs := append([]*tlsconf.Source(nil), n.tlsSources...)
	n.mu.Unlock()
	var errs []error
	for _, s := range srcs {
		if err := s.Reload(); err != nil {
			n.log.Error("tls certificate not reloaded; the previous one stays in service", "endpoint", s.Name(), "error", err)
			errs = append(errs, err)
			continue
		}
		n.log.Info("tls certificate reloaded", "endpoint", s.Name(), "subject", s.Leaf().Subject.String(), "not_after", s.Leaf().NotAfter)
	}
	return errors.Join(errs...)
}
