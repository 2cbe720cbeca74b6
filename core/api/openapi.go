package api

import (
	_ "embed"
	"net/http"
)

// openapiDoc is the OpenAPI 3.1 description of every route (routes()
// registers): TestOpenAPIRoutes keeps the two equal, and
// TestIntegrationOpenAPIResponses validates the test fleet's responses
// against its schemas.
//
//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(openapiDoc) //nolint:errcheck // the client went away
}
