package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// role is what a request may do.
type role int

const (
	roleNone  role = iota
	roleRead       // read_token: the API, /metrics, the dashboard
	roleAdmin      // admin_token (or the legacy token): also state changes and /debug/pprof
)

func (r role) String() string {
	switch r {
	case roleRead:
		return "read"
	case roleAdmin:
		return "admin"
	}
	return "none"
}

// sessionCookie carries a dashboard session: "v1.<role>.<expiry unix>.<mac>"
// where mac is an HMAC-SHA256 keyed by a hash of the role's token. It holds
// no token; rotating a token ends every session made with it.
const sessionCookie = "fleetcore_session"

// sessionTTL is how long a dashboard login lasts.
const sessionTTL = 12 * time.Hour

func (s *Server) tokensConfigured() bool { t := s.tok(); return t.read != "" || t.admin != "" }

// tokenRole is the role a bearer token grants.
func (s *Server) tokenRole(tok string) role {
	t := s.tok()
	if t.admin != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(t.admin)) == 1 {
		return roleAdmin
	}
	if t.read != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(t.read)) == 1 {
		return roleRead
	}
	return roleNone
}

func (s *Server) roleToken(r role) string {
	switch r {
	case roleAdmin:
		return s.tok().admin
	case roleRead:
		return s.tok().read
	}
	return ""
}

func sessionMAC(token, payload string) string {
	key := sha256.Sum256([]byte("fleetcore session\x00" + token))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newSession is the cookie value of a session of role r until exp.
func (s *Server) newSession(r role, exp time.Time) string {
	payload := "v1." + r.String() + "." + strconv.FormatInt(exp.Unix(), 10)
	return payload + "." + sessionMAC(s.roleToken(r), payload)
}

// sessionRole checks a session cookie value.
func (s *Server) sessionRole(v string, now time.Time) role {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return roleNone
	}
	payload, mac := v[:i], v[i+1:]
	parts := strings.Split(payload, ".")
	if len(parts) != 3 || parts[0] != "v1" {
		return roleNone
	}
	var r role
	switch parts[1] {
	case "read":
		r = roleRead
	case "admin":
		r = roleAdmin
	default:
		return roleNone
	}
	tok := s.roleToken(r)
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if tok == "" || err != nil || now.Unix() >= exp {
		return roleNone
	}
	if !hmac.Equal([]byte(mac), []byte(sessionMAC(tok, payload))) {
		return roleNone
	}
	return r
}

// requestRole is the role a request proves with its Authorization header
// or its session cookie. Tokens in URLs are not accepted.
func (s *Server) requestRole(r *http.Request) role {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return s.tokenRole(strings.TrimPrefix(h, "Bearer "))
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		return s.sessionRole(c.Value, time.Now())
	}
	return roleNone
}

// auth requires the read role (or admin) when a token is configured;
// without one (the API then listens on loopback only) it lets every
// request read.
func (s *Server) auth(next http.Handler) http.Handler { return s.require(roleRead, next) }

// admin requires the admin role: an admin token must be configured (api.admin_token or api.token).
func (s *Server) admin(next http.Handler) http.Handler { return s.require(roleAdmin, next) }

func (s *Server) require(want role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if want == roleRead && !s.tokensConfigured() {
			next.ServeHTTP(w, r)
			return
		}
		if want == roleAdmin && s.tok().admin == "" {
			writeError(w, http.StatusForbidden, "this endpoint needs api.admin_token, which is not configured")
			return
		}
		got := s.requestRole(r)
		if got == roleNone {
			if r.URL.Query().Has("token") {
				writeError(w, http.StatusUnauthorized, "tokens in URLs are not accepted: send Authorization: Bearer <token>, or log in at /login")
				return
			}
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") && strings.Contains(r.Header.Get("Accept"), "text/html") {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="fleetcore"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		if got < want {
			writeError(w, http.StatusForbidden, "this endpoint needs the admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// maySeeDetails reports whether a probe (/healthz, /readyz, open to load
// balancers) may show details: error texts, node name, users and hosts.
// With a token configured only a request that proves a role may; without
// one (the API then listens on loopback only) a request from a loopback
// peer may, so a proxy in front of it that is not on this host sees status
// only.
func (s *Server) maySeeDetails(r *http.Request) bool {
	if !s.tokensConfigured() {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		return err == nil && ip != nil && ip.IsLoopback()
	}
	return s.requestRole(r) != roleNone
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fleetcore: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}
input,button{font:inherit;width:100%;box-sizing:border-box;margin:.3rem 0;padding:.4rem}.err{color:#b00020}</style>
</head><body><h1>fleetcore</h1>
{{if .Error}}<p class="err">{{.Error}}</p>{{end}}
{{if .Open}}<p>No token is configured: the dashboard is open on this loopback address. <a href="/">Open it</a>.</p>{{else}}
<form method="post" action="/login">
<label for="token">API token (read or admin)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
<p>The session lasts 12 hours in a cookie that holds no token.</p>{{end}}
</body></html>
`))

type loginData struct {
	Error string
	Open  bool
}

func (s *Server) renderLogin(w http.ResponseWriter, status int, d loginData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := loginPage.Execute(w, d); err != nil {
		s.log.Debug("writing the login page", "error", err)
	}
}

func (s *Server) loginForm(w http.ResponseWriter, _ *http.Request) {
	s.renderLogin(w, http.StatusOK, loginData{Open: !s.tokensConfigured()})
}

// login checks the posted token and sets the session cookie
// (HttpOnly; Secure; SameSite=Strict).
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.tokensConfigured() {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		s.renderLogin(w, http.StatusBadRequest, loginData{Error: "unreadable form"})
		return
	}
	rl := s.tokenRole(r.PostForm.Get("token"))
	if rl == roleNone {
		s.log.Warn("dashboard login refused: wrong token", "remote", r.RemoteAddr)
		s.renderLogin(w, http.StatusUnauthorized, loginData{Error: "Wrong token."})
		return
	}
	exp := time.Now().Add(sessionTTL)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.newSession(rl, exp), Path: "/", Expires: exp,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	s.log.Info("dashboard login", "remote", r.RemoteAddr, "role", rl.String())
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout clears the session cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
