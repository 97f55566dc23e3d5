package peer_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"shoal.dev/shoal/clustertest"
)

// accessTable says, for every route of the HTTP API, the status a request
// gets without credentials, with a wrong token, and with the right token
// but a forged Origin (a web page's request). Only health and metrics are
// open; the catch-all answers 404 whoever asks. TestRouteAccess fails when
// a route is missing here, so a new route must take its place.
var accessTable = map[string][3]int{
	"GET /v1/health":                    {200, 200, 403},
	"GET /metrics":                      {200, 200, 403},
	"GET /v1/members":                   {401, 401, 403},
	"GET /v1/ring/owners":               {401, 401, 403},
	"POST /v1/p2p/ping":                 {401, 401, 403},
	"POST /v1/drain":                    {401, 401, 403},
	"GET /v1/drain":                     {401, 401, 403},
	"PUT /v1/fs/file":                   {401, 401, 403},
	"GET /v1/fs/file":                   {401, 401, 403},
	"DELETE /v1/fs/file":                {401, 401, 403},
	"GET /v1/fs/stat":                   {401, 401, 403},
	"GET /v1/fs/block":                  {401, 401, 403},
	"GET /v1/fs/list":                   {401, 401, 403},
	"GET /v1/fs/glob":                   {401, 401, 403},
	"PUT /v1/fs/block":                  {401, 401, 403},
	"GET /v1/fs/local":                  {401, 401, 403},
	"POST /v1/fs/commit":                {401, 401, 403},
	"POST /v1/fs/rename":                {401, 401, 403},
	"GET /v1/fs/conflicts":              {401, 401, 403},
	"GET /v1/fs/df":                     {401, 401, 403},
	"/webhdfs/v1/":                      {401, 401, 403},
	"/webhdfs/v1":                       {401, 401, 403},
	"POST /v1/jobs":                     {401, 401, 403},
	"GET /v1/jobs":                      {401, 401, 403},
	"GET /v1/jobs/{id}":                 {401, 401, 403},
	"POST /v1/jobs/{id}/kill":           {401, 401, 403},
	"GET /v1/jobs/{id}/logs":            {401, 401, 403},
	"GET /v1/jobs/{id}/logs/{task}":     {401, 401, 403},
	"POST /v1/ui/link":                  {401, 401, 403},
	"GET /ui/login":                     {401, 401, 403},
	"GET /ui/":                          {401, 401, 403},
	"GET /ui/api/session":               {401, 401, 403},
	"GET /ui/api/cluster":               {401, 401, 403},
	"GET /ui/api/files":                 {401, 401, 403},
	"GET /ui/api/file":                  {401, 401, 403},
	"GET /ui/api/jobs":                  {401, 401, 403},
	"GET /ui/api/jobs/{id}":             {401, 401, 403},
	"GET /ui/api/jobs/{id}/logs/{task}": {401, 401, 403},
	"POST /ui/api/jobs/{id}/kill":       {401, 401, 403},
	"GET /debug/pprof/":                 {401, 401, 403},
	"/":                                 {404, 404, 403},
}

// sampleRequest turns a route pattern into a method and a path that the
// route matches.
func sampleRequest(pattern string) (string, string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "GET", pattern
	}
	path = strings.NewReplacer("{id}", "job-20260101-000000-abcdef", "{task}", "m-000000", "{path...}", "x").Replace(path)
	switch {
	case path == "/":
		path = "/no/such/route"
	case path == "/webhdfs/v1":
		path += "?op=LISTSTATUS"
	case strings.HasPrefix(path, "/webhdfs/"):
		path += "x?op=GETFILESTATUS"
	}
	return method, path
}

// TestRouteAccess sends every route a request without credentials, one
// with a wrong token and one with the right token from a forged Origin,
// and checks the table; on a cluster without a secret (loopback only), a
// forged Origin or a Host that is not loopback or an IP is refused on
// every route.
func TestRouteAccess(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{})
	n := c.Node(0)
	token := c.Config(0).Secret.APIToken()
	routes := n.Routes()
	for _, r := range routes {
		if _, ok := accessTable[r]; !ok {
			t.Errorf("route %q is not in the access table", r)
		}
	}
	for r := range accessTable {
		if !slices.Contains(routes, r) {
			t.Errorf("the access table lists %q, which is no route", r)
		}
	}
	do := func(method, path string, set func(*http.Request)) int {
		req, err := http.NewRequest(method, n.HTTPURL()+path, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		name string
		set  func(*http.Request)
	}{
		{"no credentials", func(*http.Request) {}},
		{"wrong token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+strings.Repeat("0", len(token))) }},
		{"forged Origin", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+token)
			r.Header.Set("Origin", "http://evil.example")
		}},
	}
	for pattern, want := range accessTable {
		method, path := sampleRequest(pattern)
		for i, cs := range cases {
			if got := do(method, path, cs.set); got != want[i] {
				t.Errorf("%s %s (%s): %d, want %d", method, path, cs.name, got, want[i])
			}
		}
	}

	open := clustertest.Start(t, 1, clustertest.Options{NoSecret: true})
	on := open.Node(0)
	for pattern := range accessTable {
		method, path := sampleRequest(pattern)
		for _, forge := range []func(*http.Request){
			func(r *http.Request) { r.Header.Set("Origin", "http://evil.example") },
			func(r *http.Request) { r.Host = "evil.example" },
		} {
			req, _ := http.NewRequest(method, on.HTTPURL()+path, strings.NewReader(""))
			forge(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("open cluster: %s %s with Origin %q Host %q: %d, want 403", method, path, req.Header.Get("Origin"), req.Host, resp.StatusCode)
			}
		}
	}
}

// TestPprofWithToken: the runtime profiles answer the cluster token (the
// access table checks they refuse everyone else).
func TestPprofWithToken(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{})
	n := c.Node(0)
	token := c.Config(0).Secret.APIToken()
	for path, want := range map[string]string{
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/goroutine?debug=1": "goroutine profile:",
		"/debug/pprof/profile?seconds=1": "",
		"/debug/pprof/allocs":            "",
		"/debug/pprof/cmdline":           "peer",
	} {
		req, _ := http.NewRequest("GET", n.HTTPURL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s with the token: %d, %d bytes, want 200 with %q", path, resp.StatusCode, len(body), want)
		}
	}
}
