package config

import (
	"net/url"
	"regexp"
	"strings"
)

var tilePlaceholder = regexp.MustCompile(`\{[^{}]*\}`)

// MapTilesProblem says what is wrong with an api.map_tiles URL template,
// or "" when it is usable (or empty: no tile layer). A template is an
// http or https URL with {z}, {x} and {y} in its path or query; {s}
// (subdomains a, b, c) may stand only as the whole first label of the
// host, {r} (retina suffix) anywhere after the host. Nothing else in
// braces, no user info and no fragment: the dashboard allows images from
// exactly the template's origin.
func MapTilesProblem(tmpl string) string {
	if tmpl == "" {
		return ""
	}
	if len(tmpl) > 1024 {
		return "is longer than 1024 bytes"
	}
	for _, r := range tmpl {
		if r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '<' || r == '>' || r == '\\' {
			return "must not hold spaces, control characters, quotes, < > or \\"
		}
	}
	scheme, rest, ok := strings.Cut(tmpl, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return "must start with https:// or http://"
	}
	host, path, _ := strings.Cut(rest, "/")
	if host == "" {
		return "has no host"
	}
	if strings.Contains(host, "@") {
		return "must not hold user info"
	}
	if strings.HasPrefix(host, "{s}.") {
		host = "a." + host[len("{s}."):]
	}
	if strings.ContainsAny(host, "{}") {
		return "may hold only {s}, as the first label, in its host"
	}
	for _, p := range tilePlaceholder.FindAllString(path, -1) {
		switch p {
		case "{z}", "{x}", "{y}", "{r}", "{s}":
		default:
			return "holds " + p + ": only {s}, {z}, {x}, {y} and {r} are replaced"
		}
	}
	for _, p := range []string{"{z}", "{x}", "{y}"} {
		if !strings.Contains(path, p) {
			return "lacks " + p + " (a tile URL names zoom {z}, column {x} and row {y})"
		}
	}
	u, err := url.Parse(scheme + "://" + host + "/" + tilePlaceholder.ReplaceAllString(path, "0"))
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return "is not a URL"
	}
	if u.Fragment != "" || strings.Contains(path, "#") {
		return "must not hold a fragment (#)"
	}
	return ""
}

// MapTilesOrigin is the origin of a valid map_tiles template as a
// Content-Security-Policy source ("https://*.tile.example.net" for a
// template with {s}), or "" for an empty one.
func MapTilesOrigin(tmpl string) string {
	if tmpl == "" || MapTilesProblem(tmpl) != "" {
		return ""
	}
	scheme, rest, _ := strings.Cut(tmpl, "://")
	host, _, _ := strings.Cut(rest, "/")
	if strings.HasPrefix(host, "{s}.") {
		host = "*." + host[len("{s}."):]
	}
	return scheme + "://" + host
}
