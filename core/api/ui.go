package api

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/fleetcore/fleetcore/core/config"
)

// staticFS holds the dashboard's scripts and styles: Leaflet (vendored
// from npm, see web/package.json and `make leaflet`) and fleetcore's own.
// Nothing is loaded from another origin.
//
//go:embed static
var staticFS embed.FS

// staticETags are the files' content hashes, computed once.
var staticETags = func() map[string]string {
	m := map[string]string{}
	fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error { //nolint:errcheck // embedded: cannot fail
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		m[p] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	return m
}()

// uiRoutes are the dashboard's pages and assets.
func (s *Server) uiRoutes() {
	m := routeRecorder{s}
	m.Handle("GET /static/", s.auth(http.HandlerFunc(s.static)))
	m.Handle("GET /devices/{id}", s.auth(http.HandlerFunc(s.devicePage)))
}

// static serves an embedded asset with a content hash as ETag; the
// browser revalidates it (no-cache), so an upgrade is seen at once.
func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	p := path.Clean(strings.TrimPrefix(r.URL.Path, "/"))
	etag, ok := staticETags[p]
	if !ok || !strings.HasPrefix(p, "static/") {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	b, err := staticFS.ReadFile(p)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct := mime.TypeByExtension(path.Ext(p))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	w.Write(b) //nolint:errcheck // the client went away
}

// pageHeaders are the headers of an HTML page: scripts and styles only
// from fleetcore itself, fetches only to it, images from it and from the
// tile server of api.map_tiles (when set).
func (s *Server) pageHeaders(w http.ResponseWriter) {
	img := "'self' data:"
	if o := config.MapTilesOrigin(s.opts.MapTiles); o != "" {
		img += " " + o
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src "+img+
		"; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
}
