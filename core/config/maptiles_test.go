package config_test

import (
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/core/config"
)

func TestMapTilesProblem(t *testing.T) {
	for _, tc := range []struct {
		tmpl, problem, origin string
	}{
		{"", "", ""},
		{"https://tile.openstreetmap.org/{z}/{x}/{y}.png", "", "https://tile.openstreetmap.org"},
		{"https://{s}.tile.example.net/{z}/{x}/{y}{r}.png", "", "https://*.tile.example.net"},
		{"http://10.0.0.5:8081/tiles/{z}/{x}/{y}.png?key=abc", "", "http://10.0.0.5:8081"},
		{"ftp://tiles/{z}/{x}/{y}.png", "must start with https://", ""},
		{"https://tiles/{z}/{x}.png", "lacks {y}", ""},
		{"https://tiles/{z}/{x}/{y}/{q}.png", "holds {q}", ""},
		{"https://a{s}.tiles/{z}/{x}/{y}.png", "only {s}, as the first label", ""},
		{"https://user@tiles/{z}/{x}/{y}.png", "user info", ""},
		{"https://tiles/{z}/{x}/{y}.png#top", "fragment", ""},
		{"https://tiles/{z}/{x}/{y}.png x", "spaces", ""},
		{"https://tiles/{z}/{x}/{y}.png\"", "quotes", ""},
		{"https:///{z}/{x}/{y}.png", "no host", ""},
	} {
		t.Run(tc.tmpl, func(t *testing.T) {
			p := config.MapTilesProblem(tc.tmpl)
			if (tc.problem == "") != (p == "") || !strings.Contains(p, tc.problem) {
				t.Fatalf("MapTilesProblem(%q) = %q, want one containing %q", tc.tmpl, p, tc.problem)
			}
			if o := config.MapTilesOrigin(tc.tmpl); o != tc.origin {
				t.Fatalf("MapTilesOrigin(%q) = %q, want %q", tc.tmpl, o, tc.origin)
			}
		})
	}
}

func TestMapTilesValidated(t *testing.T) {
	src := `api {
  map_tiles       = "https://tiles.example.net/{z}/{x}.png"
  map_attribution = "<b>x</b>"
}
`
	_, err := config.Parse("tiles.hcl", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "api.map_tiles") || !strings.Contains(err.Error(), "lacks {y}") ||
		!strings.Contains(err.Error(), "api.map_attribution") {
		t.Fatalf("Parse = %v, want problems with api.map_tiles and api.map_attribution", err)
	}
	c, err := config.Parse("tiles.hcl", []byte(`api { map_tiles = "https://{s}.tile.example.net/{z}/{x}/{y}.png" }`))
	if err != nil || c.API.MapTiles == "" {
		t.Fatalf("a good template: %v", err)
	}
}
