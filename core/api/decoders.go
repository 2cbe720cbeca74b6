package api

import (
	"net/http"
	"time"
)

// DecoderStatus is one row of GET /api/decoders: a version of a drop-in
// WASM decoder, a refused file, or a decoder name a listener waits for.
type DecoderStatus struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	// State is live, previous (kept to be restored), draining (replaced;
	// sessions still use it), disabled (after repeated guest failures),
	// refused (the file did not load) or missing (no version in service).
	State         string    `json:"state"`
	File          string    `json:"file,omitempty"`
	Error         string    `json:"error,omitempty"`
	LoadedAt      time.Time `json:"loaded_at,omitzero"`
	Sessions      int64     `json:"sessions"`
	GuestFailures uint64    `json:"guest_failures"`
	Consecutive   int64     `json:"consecutive_failures"`
	LastFailure   string    `json:"last_failure,omitempty"`
}

// DecoderLister is the drop-in decoder folder.
type DecoderLister interface {
	Decoders() []DecoderStatus
}

// decoders serves GET /api/decoders: {"dir": …, "decoders": […]}; an
// empty list without a decoder folder.
func (s *Server) decoders(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	var list []DecoderStatus
	if s.deps.Decoders != nil {
		list = s.deps.Decoders.Decoders()
	}
	writeJSON(w, http.StatusOK, map[string]any{"decoders": nonNil(list)})
}
