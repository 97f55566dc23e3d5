package peer_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
)

// TestConsoleSession: a one-time link logs a browser in with an HttpOnly,
// SameSite=Strict cookie, once; the session opens the console and its
// JSON, but not the API; a kill needs the session's CSRF token.
func TestConsoleSession(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{})
	n := c.Node(0)
	cl, err := peer.NewClient(n.HTTPURL(), c.Config(0).Secret.APIToken())
	if err != nil {
		t.Fatal(err)
	}
	link, err := cl.ConsoleLink(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, cookie *http.Cookie, hdr map[string]string, method string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, n.HTTPURL()+path, nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, _ := get(link.Path, nil, nil, "GET")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("login: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "shoal_session" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/ui/" {
		t.Fatalf("session cookie: %+v", session)
	}
	if resp, body := get(link.Path, nil, nil, "GET"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
		t.Fatalf("second use of the link: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("/ui/", session, nil, "GET"); resp.StatusCode != 200 || !strings.Contains(body, "app.js") {
		t.Fatalf("/ui/ with the session: %d %.100q", resp.StatusCode, body)
	}
	for _, p := range []string{"/ui/app.js", "/ui/style.css"} {
		if resp, _ := get(p, session, nil, "GET"); resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
	}
	resp, body := get("/ui/api/cluster", session, nil, "GET")
	var cluster peer.ConsoleCluster
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &cluster) != nil || len(cluster.Members) != 1 || cluster.Members[0].Stats == nil || cluster.Members[0].RingShare != 1 {
		t.Fatalf("cluster: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get("/v1/members", session, nil, "GET"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the session cookie opened the API: %d", resp.StatusCode)
	}
	_, body = get("/ui/api/session", session, nil, "GET")
	var s struct{ CSRF string }
	json.Unmarshal([]byte(body), &s)
	if len(s.CSRF) != 64 {
		t.Fatalf("session: %s", body)
	}
	kill := "/ui/api/jobs/job-20260101-000000-abcdef/kill"
	for _, hdr := range []map[string]string{nil, {"X-Shoal-CSRF": strings.Repeat("0", 64)}} {
		if resp, _ := get(kill, session, hdr, "POST"); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("kill with CSRF header %v: %d, want 403", hdr, resp.StatusCode)
		}
	}
	if resp, body := get(kill, session, map[string]string{"X-Shoal-CSRF": s.CSRF}, "POST"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("kill of an unknown job with the CSRF token: %d %s", resp.StatusCode, body)
	}
	forged := &http.Cookie{Name: "shoal_session", Value: strings.Repeat("a", 64)}
	if resp, _ := get("/ui/api/jobs", forged, nil, "GET"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a made-up session: %d", resp.StatusCode)
	}
}
