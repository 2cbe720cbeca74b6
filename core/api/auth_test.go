package api

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/internal/testenv"
)

const (
	testReadToken  = "read-0123456789abcdef"
	testAdminToken = "admin-0123456789abcdef"
)

// do sends a request with an optional bearer token or cookie and checks
// the status; it does not follow redirects.
func do(t *testing.T, method, u string, form url.Values, token string, cookie *http.Cookie, want int) *http.Response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, u, resp.StatusCode, want, b)
	}
	return resp
}

func sessionOf(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", sessionCookie, resp.Header["Set-Cookie"])
	return nil
}

func TestIntegrationReadAndAdminTokens(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	ts, _ := newTestServerOpts(t, sd, Options{Address: "127.0.0.1:0", ReadToken: testReadToken, AdminToken: testAdminToken})
	for _, p := range []string{"/api/devices", "/metrics", "/dashboard"} {
		do(t, "GET", ts.URL+p, nil, "", nil, 401)
		do(t, "GET", ts.URL+p, nil, "wrong-0123456789abcdef", nil, 401)
		do(t, "GET", ts.URL+p, nil, testReadToken, nil, 200)
		do(t, "GET", ts.URL+p, nil, testAdminToken, nil, 200)
	}
	// pprof needs admin.
	do(t, "GET", ts.URL+"/debug/pprof/", nil, "", nil, 401)
	do(t, "GET", ts.URL+"/debug/pprof/", nil, testReadToken, nil, 403)
	do(t, "GET", ts.URL+"/debug/pprof/", nil, testAdminToken, nil, 200)
	do(t, "GET", ts.URL+"/debug/pprof/cmdline", nil, testReadToken, nil, 403)
	// No token in URLs.
	do(t, "GET", ts.URL+"/dashboard?token="+testAdminToken, nil, "", nil, 401)
	do(t, "GET", ts.URL+"/debug/pprof/?token="+testAdminToken, nil, "", nil, 401)

	// A browser without a session is sent to the login form.
	req, _ := http.NewRequest("GET", ts.URL+"/", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("browser without session: %d to %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
	do(t, "GET", ts.URL+"/login", nil, "", nil, 200)

	// Wrong token: no cookie.
	resp = do(t, "POST", ts.URL+"/login", url.Values{"token": {"wrong-0123456789abcdef"}}, "", nil, 401)
	if len(resp.Cookies()) != 0 {
		t.Fatalf("failed login set cookies: %v", resp.Cookies())
	}
	// Read login: an opaque HttpOnly, Secure, SameSite=Strict cookie.
	resp = do(t, "POST", ts.URL+"/login", url.Values{"token": {testReadToken}}, "", nil, 303)
	rc := sessionOf(t, resp)
	if !rc.HttpOnly || !rc.Secure || rc.SameSite != http.SameSiteStrictMode || rc.Path != "/" {
		t.Fatalf("session cookie attributes: %q", resp.Header.Get("Set-Cookie"))
	}
	if strings.Contains(rc.Value, testReadToken) {
		t.Fatal("the session cookie holds the token")
	}
	do(t, "GET", ts.URL+"/dashboard", nil, "", rc, 200)
	do(t, "GET", ts.URL+"/api/devices", nil, "", rc, 200)
	do(t, "GET", ts.URL+"/debug/pprof/", nil, "", rc, 403)
	// A read session edited to claim admin is refused.
	forged := &http.Cookie{Name: sessionCookie, Value: strings.Replace(rc.Value, ".read.", ".admin.", 1)}
	do(t, "GET", ts.URL+"/api/devices", nil, "", forged, 401)
	// Admin login reaches pprof.
	ac := sessionOf(t, do(t, "POST", ts.URL+"/login", url.Values{"token": {testAdminToken}}, "", nil, 303))
	do(t, "GET", ts.URL+"/debug/pprof/", nil, "", ac, 200)
	// Logout clears the cookie.
	lc := sessionOf(t, do(t, "POST", ts.URL+"/logout", nil, "", ac, 303))
	if lc.Value != "" || lc.MaxAge >= 0 {
		t.Fatalf("logout cookie %+v", lc)
	}
}

func TestSessionExpiryAndRotation(t *testing.T) {
	s, err := New(Options{Address: "127.0.0.1:0", ReadToken: testReadToken, AdminToken: testAdminToken}, Deps{DB: dummyPool(t)}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	v := s.newSession(roleRead, now.Add(time.Hour))
	if got := s.sessionRole(v, now); got != roleRead {
		t.Fatalf("fresh session: %v", got)
	}
	if got := s.sessionRole(v, now.Add(2*time.Hour)); got != roleNone {
		t.Fatalf("expired session accepted as %v", got)
	}
	// Another read token (rotation) ends the session.
	s2, err := New(Options{Address: "127.0.0.1:0", ReadToken: "read-rotated-0123456789", AdminToken: testAdminToken}, Deps{DB: dummyPool(t)}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.sessionRole(v, now); got != roleNone {
		t.Fatalf("session of a rotated token accepted as %v", got)
	}
	for _, bad := range []string{"", "v1.read", "v1.root.1.x", v + "x"} {
		if got := s.sessionRole(bad, now); got != roleNone {
			t.Errorf("%q accepted as %v", bad, got)
		}
	}
}

func TestNoTokenOnLoopback(t *testing.T) {
	s, err := New(Options{Address: "127.0.0.1:0"}, Deps{DB: dummyPool(t)}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	rec := &recorder{h: http.Header{}}
	h.ServeHTTP(rec, mustReq(t, "GET", "/debug/pprof/"))
	if rec.code != http.StatusForbidden {
		t.Fatalf("pprof without an admin token configured: %d, want 403", rec.code)
	}
	if _, err := New(Options{Address: "127.0.0.1:0", ReadToken: testReadToken, AdminToken: testReadToken}, Deps{DB: dummyPool(t)}, hclog.NewNullLogger()); err == nil {
		t.Fatal("equal read and admin tokens accepted")
	}
	if _, err := New(Options{Address: "0.0.0.0:0", ReadToken: testReadToken}, Deps{DB: dummyPool(t)}, hclog.NewNullLogger()); err != nil {
		t.Fatalf("read token alone beyond loopback: %v", err)
	}
	if _, err := New(Options{Address: "0.0.0.0:0"}, Deps{DB: dummyPool(t)}, hclog.NewNullLogger()); !errors.Is(err, ErrTokenRequired) {
		t.Fatalf("no token beyond loopback: %v", err)
	}
}

type recorder struct {
	h    http.Header
	code int
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return len(b), nil
}
func (r *recorder) WriteHeader(c int) { r.code = c }

func mustReq(t *testing.T, method, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://127.0.0.1"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.RemoteAddr = "127.0.0.1:1234"
	return req
}
