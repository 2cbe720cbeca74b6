package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/jackc/pgx/v5/pgconn"
	amqp "github.com/rabbitmq/amqp091-go"
)

// redactMask replaces a password wherever it is redacted.
const redactMask = "xxxxx"

// minMaskLen is the shortest password that RedactError also masks where it
// stands alone in an error text (outside its URL): a shorter one matches
// too much ordinary text to be replaced everywhere.
const minMaskLen = 4

// kvPassword matches password=… and sslpassword=… in a key=value DSN or a
// URL's query, quoted ('…' with \' escapes) or up to the next space, & or #.
var kvPassword = regexp.MustCompile(`(?i)((?:^|[\s?&])(?:ssl)?password=)('(?:[^'\\]|\\.)*'|[^\s&#]*)`)

// RedactURL returns a database or AMQP URL with its password replaced by
// xxxxx (postgres://fleet:xxxxx@db/fleet), and a key=value DSN with
// password=xxxxx. It also masks password and sslpassword query values. A
// URL that does not parse is redacted by its shape: everything between the
// user name's colon and the last @ is masked, which may mask more than the
// password but never less.
func RedactURL(s string) string {
	s = kvPassword.ReplaceAllString(s, "${1}"+redactMask)
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	if u, err := url.Parse(s); err == nil {
		if u.User == nil {
			return s
		}
		if _, has := u.User.Password(); !has {
			return s
		}
		// Rebuild by hand: url.URL.String would re-escape the masked query.
		rest := s[i+3:]
		at := strings.LastIndex(rest[:authorityEnd(rest)], "@")
		if at < 0 {
			return s
		}
		return s[:i+3] + url.PathEscape(u.User.Username()) + ":" + redactMask + rest[at:]
	}
	rest := s[i+3:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	colon := strings.Index(rest[:at], ":")
	if colon < 0 {
		return s
	}
	return s[:i+3] + rest[:colon+1] + redactMask + rest[at:]
}

// authorityEnd is the index in rest (a URL after "scheme://") where the
// authority ends: the first /, ? or # after the last @ of the userinfo.
func authorityEnd(rest string) int {
	at := strings.LastIndex(rest, "@")
	if j := strings.IndexAny(rest[at+1:], "/?#"); j >= 0 {
		return at + 1 + j
	}
	return len(rest)
}

// passwords returns every form in which s (a URL or DSN) carries a
// password: as written, percent-decoded, and as Go's %q would quote it.
func passwords(s string) []string {
	var raw []string
	for _, m := range kvPassword.FindAllStringSubmatch(s, -1) {
		v := m[2]
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(v[1 : len(v)-1])
		}
		raw = append(raw, v)
	}
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				raw = append(raw, rest[colon+1:at])
			}
		}
		if u, err := url.Parse(s); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				raw = append(raw, p)
			}
		}
	}
	var out []string
	for _, p := range raw {
		if p == "" {
			continue
		}
		out = append(out, p)
		if d, err := url.PathUnescape(p); err == nil && d != p {
			out = append(out, d)
		}
		if q := strconv.Quote(p); q[1:len(q)-1] != p {
			out = append(out, q[1:len(q)-1])
		}
	}
	return out
}

// redactedError carries a text with the passwords masked; Unwrap keeps the
// original chain so errors.Is and errors.As still answer (a *pgconn.PgError
// says whether Postgres refused or could not be reached).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// RedactError returns err with every password of the given URLs or DSNs
// masked in its text: the URLs wherever they are quoted (as is, or as
// net/url's parse errors quote them, in which case the fragment the parser
// complains about is left out too, as it may be part of the password), and
// each password where it stands alone if it is at least 4 bytes long.
// It returns nil for nil.
func RedactError(err error, urls ...string) error {
	if err == nil {
		return nil
	}
	msg := RedactText(err.Error(), urls...)
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = strings.ReplaceAll(msg, RedactText(ue.Error(), urls...), safeURLError(ue))
	}
	if msg == err.Error() {
		if _, ok := err.(*redactedError); ok { //nolint:errorlint // err itself, not one it wraps: already redacted
			return err
		}
	}
	return &redactedError{msg: msg, err: err}
}

// RedactText masks the passwords of the given URLs or DSNs in text (see
// RedactError), and any password=… value.
func RedactText(text string, urls ...string) string {
	for _, u := range urls {
		if u == "" {
			continue
		}
		red := RedactURL(u)
		text = strings.ReplaceAll(text, u, red)
		if q, rq := strconv.Quote(u), strconv.Quote(red); q != u {
			text = strings.ReplaceAll(text, q[1:len(q)-1], rq[1:len(rq)-1])
		}
		for _, p := range passwords(u) {
			if len(p) >= minMaskLen {
				text = strings.ReplaceAll(text, p, redactMask)
			}
		}
	}
	return kvPassword.ReplaceAllString(text, "${1}"+redactMask)
}

// quoted matches a Go-quoted fragment ("…" with escapes).
var quoted = regexp.MustCompile(`\s*"(?:[^"\\]|\\.)*"`)

// safeURLError renders a net/url parse error with the URL redacted and
// without the quoted fragment its cause names (`invalid port ":s3" after
// host` for a password holding an unescaped /).
func safeURLError(ue *url.Error) string {
	cause := "invalid URL"
	if ue.Err != nil {
		cause = quoted.ReplaceAllString(ue.Err.Error(), "")
	}
	return fmt.Sprintf("%s %q: %s", ue.Op, RedactURL(ue.URL), cause)
}

// clientParse is how the Postgres or AMQP client reads a URL.
type clientParse func(string) error

func parsePostgres(s string) error { _, err := pgconn.ParseConfig(s); return err }
func parseAMQP(s string) error     { _, err := amqp.ParseURI(s); return err }

// urlProblem checks a database or AMQP URL as net/url and then the client
// (parse) will read it, and describes a problem without quoting the
// password.
func urlProblem(raw string, parse clientParse, schemes ...string) string {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok || !containsFold(schemes, scheme) {
		return fmt.Sprintf("must be a %s:// URL", strings.Join(schemes, ":// or "))
	}
	if !utf8.ValidString(raw) || strings.ContainsAny(raw, " \t\r\n") {
		return fmt.Sprintf("%s contains spaces or invalid characters (percent-encode them: a space is %%20)", RedactURL(raw))
	}
	// The client decides (pgx reads several hosts, or a socket directory
	// with no host); net/url's complaint, when it has one, says better why.
	cerr := parse(raw)
	if cerr == nil {
		return ""
	}
	if _, err := url.Parse(raw); err != nil {
		var ue *url.Error
		cause := "invalid URL"
		if errors.As(err, &ue) && ue.Err != nil {
			cause = quoted.ReplaceAllString(ue.Err.Error(), "")
		}
		return fmt.Sprintf("%s does not parse (%s); percent-encode reserved characters in the user name and password (/ %%2F, @ %%40, : %%3A, # %%23, ? %%3F, %% %%25)",
			RedactURL(raw), cause)
	}
	return RedactError(cerr, raw).Error()
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// MinTokenBytes is the shortest api.token Validate accepts.
const MinTokenBytes = 16

// TokenProblem says why token cannot be the API's bearer token ("" when it
// can): it must be at least MinTokenBytes long and made of printable ASCII
// without spaces, quotes, semicolons or backslashes, so that it travels
// unchanged in an Authorization header and in the dashboard's cookie. The
// text never quotes the token.
func TokenProblem(token string) string {
	var bad []string
	if strings.TrimSpace(token) == "" {
		return "must not be empty or only whitespace"
	}
	var space, ctl, other bool
	for _, r := range token {
		switch {
		case unicode.IsSpace(r):
			space = true
		case unicode.IsControl(r):
			ctl = true
		case r > 0x7e || r == '"' || r == ';' || r == '\\':
			other = true
		}
	}
	if space {
		bad = append(bad, "whitespace")
	}
	if ctl {
		bad = append(bad, "control characters")
	}
	if other {
		bad = append(bad, `non-ASCII characters, quotes, ";" or "\"`)
	}
	if len(bad) > 0 {
		return "contains " + strings.Join(bad, ", ") + "; use printable ASCII (e.g. openssl rand -hex 32)"
	}
	if len(token) < MinTokenBytes {
		return fmt.Sprintf("is %d bytes, shorter than the minimum of %d (e.g. openssl rand -hex 32)", len(token), MinTokenBytes)
	}
	return ""
}

// secretKeys are the keys whose problems Validate reports at their own
// line (or environment variable) without quoting their values.
var secretKeys = []string{"database.url", "amqp.url", "amqp.urls", "api.token", "api.read_token", "api.admin_token"}

// attrSources finds the file:line of each block.attribute key in body.
func attrSources(body hcl.Body, file string, keys []string) map[string]string {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	out := map[string]string{}
	for _, k := range keys {
		block, attr, _ := strings.Cut(k, ".")
		for _, b := range sb.Blocks {
			if b.Type != block {
				continue
			}
			if a, ok := b.Body.Attributes[attr]; ok {
				out[k] = fmt.Sprintf("%s:%d", file, a.SrcRange.Start.Line)
			}
		}
	}
	return out
}

func (c *Config) setSource(key, src string) {
	if c.sources == nil {
		c.sources = map[string]string{}
	}
	c.sources[key] = src
}

// addAt records a problem with key, naming where it was set.
func (c *Config) addAt(e *Error, key, problem string) {
	where := c.File
	if src, ok := c.sources[key]; ok {
		where = src
	}
	if where == "" {
		where = "defaults"
	}
	e.Problems = append(e.Problems, fmt.Sprintf("%s: %s: %s", where, key, problem))
}
