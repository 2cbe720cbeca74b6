package api

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/internal/testenv"
)

type openapiSpec struct {
	OpenAPI string                           `json:"openapi"`
	Paths   map[string]map[string]openapiOp  `json:"paths"`
	Comps   struct{ Schemas map[string]any } `json:"components"`
}

type openapiOp struct {
	Responses map[string]struct {
		Content map[string]struct {
			Schema any `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

func loadSpec(t *testing.T) *openapiSpec {
	t.Helper()
	var sp openapiSpec
	if err := json.Unmarshal(openapiDoc, &sp); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if sp.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q", sp.OpenAPI)
	}
	return &sp
}

// specPath turns a mux pattern into its OpenAPI path and method.
func specPath(pattern string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "GET", pattern // a pattern without a method serves every method; the spec documents GET
	}
	return strings.ToLower(method), strings.ReplaceAll(path, "{$}", "")
}

// TestOpenAPIRoutes: every route the server registers is in the spec, and
// every path of the spec is a registered route.
func TestOpenAPIRoutes(t *testing.T) {
	sp := loadSpec(t)
	s, err := New(Options{Address: "127.0.0.1:0"}, Deps{DB: nilQuerier{}}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, p := range s.patterns {
		if p == "/api/" {
			continue // the catch-all that answers 404 for an unknown /api/ path
		}
		method, path := specPath(p)
		registered[method+" "+path] = true
		if _, ok := sp.Paths[path][method]; !ok {
			t.Errorf("route %q is not in openapi.json (%s %s)", p, method, path)
		}
	}
	for path, ops := range sp.Paths {
		for method := range ops {
			if !registered[method+" "+path] {
				t.Errorf("openapi.json documents %s %s, which the server does not register", method, path)
			}
		}
	}
	if len(registered) < 30 {
		t.Fatalf("only %d routes registered", len(registered))
	}
}

// nilQuerier is a Deps.DB for tests that never query.
type nilQuerier struct{ Querier }

// validate checks v (decoded JSON) against the subset of JSON Schema the
// spec uses: $ref, type (one or a list), enum, properties, required,
// additionalProperties false, items, minimum, maximum, format date-time.
func validate(sp *openapiSpec, schema any, v any, at string) error {
	sc, ok := schema.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: schema %v is not an object", at, schema)
	}
	if ref, ok := sc["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		target, ok := sp.Comps.Schemas[name]
		if !ok {
			return fmt.Errorf("%s: no schema %s", at, ref)
		}
		return validate(sp, target, v, at)
	}
	for k := range sc {
		if !slices.Contains([]string{"type", "enum", "properties", "required", "additionalProperties", "items", "minimum", "maximum", "format", "description"}, k) {
			return fmt.Errorf("%s: schema keyword %q is outside the validator's subset", at, k)
		}
	}
	if ty, ok := sc["type"]; ok {
		var types []string
		switch x := ty.(type) {
		case string:
			types = []string{x}
		case []any:
			for _, e := range x {
				types = append(types, e.(string))
			}
		}
		if !slices.Contains(types, jsonType(v)) && !(jsonType(v) == "integer" && slices.Contains(types, "number")) {
			return fmt.Errorf("%s: %s %v, want %v", at, jsonType(v), clipValue(v), types)
		}
	}
	if enum, ok := sc["enum"].([]any); ok && !slices.Contains(enum, v) {
		return fmt.Errorf("%s: %v not in %v", at, v, enum)
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := sc["properties"].(map[string]any)
		for _, r := range asStrings(sc["required"]) {
			if _, ok := x[r]; !ok {
				return fmt.Errorf("%s: missing required %q", at, r)
			}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ps, ok := props[k]
			if !ok {
				if ap, ok := sc["additionalProperties"].(bool); ok && !ap {
					return fmt.Errorf("%s: property %q is not in the schema", at, k)
				}
				continue
			}
			if err := validate(sp, ps, x[k], at+"."+k); err != nil {
				return err
			}
		}
	case []any:
		if it, ok := sc["items"]; ok {
			for i, e := range x {
				if err := validate(sp, it, e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	case float64:
		if m, ok := sc["minimum"].(float64); ok && x < m {
			return fmt.Errorf("%s: %v below %v", at, x, m)
		}
		if m, ok := sc["maximum"].(float64); ok && x > m {
			return fmt.Errorf("%s: %v above %v", at, x, m)
		}
	case string:
		if sc["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				return fmt.Errorf("%s: %q is no RFC 3339 date-time", at, x)
			}
		}
	}
	return nil
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func asStrings(v any) []string {
	var out []string
	if a, ok := v.([]any); ok {
		for _, e := range a {
			out = append(out, e.(string))
		}
	}
	return out
}

func clipValue(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

func TestValidatorRefuses(t *testing.T) {
	sp := loadSpec(t)
	for _, c := range []struct {
		schema string
		body   string
	}{
		{"Position", `{"device_id":"a"}`},
		{"Position", `{"device_id":"a","protocol":"x","ts":"yesterday","lat":1,"lon":2,"speed_kmh":null,"heading":null,"valid":null,"score":null,"last_seen":null,"age_seconds":null}`},
		{"TrackPoint", `{"ts":"2026-01-01T00:00:00Z","lat":1,"lon":2,"speed_kmh":null,"valid":true,"verdict":"maybe","reasons":[]}`},
		{"Error", `{"error":"x","extra":1}`},
		{"Trip", `{"start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:00Z","start_lat":null,"start_lon":null,"end_lat":null,"end_lon":null,"distance_m":1,"trusted_distance_m":1,"duration_seconds":1.5,"max_speed_kmh":1,"idle_seconds":0,"fixes":1,"passed_share":1}`},
		{"Trip", `{"start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:00Z","start_lat":null,"start_lon":null,"end_lat":null,"end_lon":null,"distance_m":1,"trusted_distance_m":1,"duration_seconds":1,"max_speed_kmh":1,"idle_seconds":0,"fixes":1,"passed_share":2}`},
	} {
		var v any
		if err := json.Unmarshal([]byte(c.body), &v); err != nil {
			t.Fatal(err)
		}
		if err := validate(sp, map[string]any{"$ref": "#/components/schemas/" + c.schema}, v, c.schema); err == nil {
			t.Errorf("%s accepted %s", c.schema, c.body)
		}
	}
}

// TestIntegrationOpenAPIResponses requests every documented JSON response
// of the test fleet (each endpoint's 200, its 400 for an unknown
// parameter, the 404 of an unknown device or frame, the 401 without a
// token) and validates each body against the spec's schema for its path
// and status; a documented JSON response no request produced fails.
func TestIntegrationOpenAPIResponses(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	const token = "openapi-test-token-0123456789"
	ts, _ := newTestServerOpts(t, sd, Options{Address: "127.0.0.1:0", ReadToken: token, AdminToken: token + "-admin"})
	sp := loadSpec(t)
	rng := fmt.Sprintf("from=%d&to=%d", sd.base.Unix(), sd.base.Add(5*time.Hour).Unix())
	covered := map[string]bool{}
	check := func(path, url string, auth bool, want int) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+url, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET %s: %d, want %d: %s", url, resp.StatusCode, want, body)
		}
		status := fmt.Sprint(resp.StatusCode)
		rs, ok := sp.Paths[path]["get"].Responses[status]
		if !ok {
			t.Fatalf("GET %s: status %s is not documented for %s", url, status, path)
		}
		ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
		media, ok := rs.Content[ct]
		if !ok {
			t.Fatalf("GET %s: content type %q is not documented for %s %s", url, ct, path, status)
		}
		covered[path+" "+status] = true
		if ct != "application/json" {
			return
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		if err := validate(sp, media.Schema, v, path); err != nil {
			t.Errorf("GET %s: %v", url, err)
		}
	}
	// The 200s, with parameters that fill the optional members.
	oks := map[string][]string{
		"/healthz":                          {"/healthz"},
		"/readyz":                           {"/readyz"},
		"/metrics":                          {"/metrics"},
		"/api/devices":                      {"/api/devices", "/api/devices?limit=2&sort=-last_seen"},
		"/api/devices/{id}":                 {"/api/devices/" + devJunk, "/api/devices/" + devHealthy},
		"/api/devices/{id}/signals":         {"/api/devices/" + devHealthy + "/signals?limit=5&" + rng, "/api/devices/" + devJunk + "/signals"},
		"/api/devices/{id}/findings":        {"/api/devices/" + devNoFix + "/findings?limit=5"},
		"/api/devices/{id}/track":           {"/api/devices/" + devNoFix + "/track?zoom=12&" + rng, "/api/devices/" + devHealthy + "/track?limit=10&" + rng},
		"/api/devices/{id}/trips":           {"/api/devices/" + devNoFix + "/trips?" + rng, "/api/devices/" + devGappy + "/trips?" + rng},
		"/api/devices/{id}/signals.csv":     {"/api/devices/" + devHealthy + "/signals.csv?" + rng},
		"/api/devices/{id}/signals.geojson": {"/api/devices/" + devHealthy + "/signals.geojson?" + rng},
		"/api/devices/{id}/signals.gpx":     {"/api/devices/" + devHealthy + "/signals.gpx?" + rng},
		"/api/signals.csv":                  {"/api/signals.csv?" + rng},
		"/api/positions":                    {"/api/positions", "/api/positions?limit=2&bbox=-1,-1,30,60"},
		"/api/alerts":                       {"/api/alerts", "/api/alerts?state=open&kind=gps_broken"},
		"/api/rejected":                     {"/api/rejected"},
		"/api/rejected/{id}":                {"/api/rejected/1"},
		"/api/rejected/records":             {"/api/rejected/records"},
		"/api/rules":                        {"/api/rules"},
		"/api/decoders":                     {"/api/decoders"},
		"/api/health":                       {"/api/health"},
		"/api/openapi.json":                 {"/api/openapi.json"},
		"/":                                 {"/"},
		"/dashboard":                        {"/dashboard"},
	}
	for path, urls := range oks {
		for _, u := range urls {
			check(path, u, true, 200)
		}
	}
	for path, ops := range sp.Paths {
		op, ok := ops["get"]
		if !ok {
			continue
		}
		u := strings.NewReplacer("{id}", devHealthy, "{name}", "gps.zero_island").Replace(path)
		if path == "/api/rejected/{id}" {
			u = "/api/rejected/1"
		}
		if _, ok := op.Responses["400"]; ok {
			check(path, u+"?bogus=1", true, 400)
		}
		if _, ok := op.Responses["404"]; ok {
			nf := strings.Replace(u, devHealthy, "no-such-device", 1)
			if path == "/api/rejected/{id}" {
				nf = "/api/rejected/999999"
			}
			check(path, nf, true, 404)
		}
		if _, ok := op.Responses["401"]; ok {
			check(path, u, false, 401)
		}
		if _, ok := op.Responses["403"]; ok {
			check(path, u, true, 403) // the read token on an admin endpoint
		}
	}
	// The rule shadow report needs a scorer (503 without one, documented
	// as database unavailable's shape).
	check("/api/rules/{name}/shadow", "/api/rules/gps.zero_island/shadow", true, 503)
	for path, ops := range sp.Paths {
		for status, r := range ops["get"].Responses {
			if _, isJSON := r.Content["application/json"]; !isJSON || status == "500" || status == "503" {
				continue // 500 and 503 need a failing database
			}
			if path == "/readyz" && status == "503" || path == "/api/rules/{name}/shadow" && status == "200" {
				continue // readyz fails only without a storage path; shadow needs a scorer
			}
			if !covered[path+" "+status] {
				t.Errorf("documented response GET %s %s was never produced", path, status)
			}
		}
	}
}
