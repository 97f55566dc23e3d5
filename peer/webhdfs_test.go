package peer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
)

// hdfsClient drives an agent's WebHDFS by hand: no redirect is followed,
// and no header is sent but the ones asked.
type hdfsClient struct {
	t    *testing.T
	base string // http://host:port
	tok  string
	hc   *http.Client
}

type hdfsAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (a hdfsAnswer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", a.status, a.body)
	}
	return m
}

// remote returns the RemoteException's exception name, checking its shape.
func (a hdfsAnswer) remote(t *testing.T) string {
	t.Helper()
	re, ok := a.json(t)["RemoteException"].(map[string]any)
	if !ok {
		t.Fatalf("answer %d has no RemoteException: %s", a.status, a.body)
	}
	ex, _ := re["exception"].(string)
	jc, _ := re["javaClassName"].(string)
	msg, _ := re["message"].(string)
	if ex == "" || !strings.HasSuffix(jc, "."+ex) || msg == "" {
		t.Fatalf("malformed RemoteException: %s", a.body)
	}
	return ex
}

func (c *hdfsClient) raw(method, u string, body []byte, hdr map[string]string) hdfsAnswer {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading the answer: %v", method, u, err)
	}
	return hdfsAnswer{status: res.StatusCode, header: res.Header, body: b}
}

// do sends op on p with the token as delegation= and the given parameters.
func (c *hdfsClient) do(method, p, query string, body []byte) hdfsAnswer {
	c.t.Helper()
	u := c.base + "/webhdfs/v1" + p + "?" + query
	if c.tok != "" {
		u += "&delegation=" + c.tok
	}
	return c.raw(method, u, body, nil)
}

func (c *hdfsClient) want(a hdfsAnswer, status int, what string) {
	c.t.Helper()
	if a.status != status {
		c.t.Fatalf("%s: status %d, want %d: %s", what, a.status, status, a.body)
	}
}

// put writes a file by the two steps, checking the first is a 307 whose
// location needs no header.
func (c *hdfsClient) put(p, query string, data []byte) hdfsAnswer {
	c.t.Helper()
	a := c.do("PUT", p, "op=CREATE&"+query, nil)
	if a.status != http.StatusTemporaryRedirect {
		return a
	}
	return c.raw("PUT", a.header.Get("Location"), data, nil)
}

func newHDFSClient(t *testing.T, n *peer.Node, tok string) *hdfsClient {
	return &hdfsClient{t: t, base: n.HTTPURL(), tok: tok, hc: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       time.Minute,
	}}
}

func TestWebHDFSOps(t *testing.T) {
	c := clustertest.Start(t, 2, clustertest.Options{})
	tok := c.Config(0).Secret.APIToken()
	h := newHDFSClient(t, c.Node(0), tok)

	// Authentication: the token as delegation= or a bearer header.
	a := h.raw("GET", h.base+"/webhdfs/v1/?op=LISTSTATUS", nil, nil)
	h.want(a, http.StatusUnauthorized, "no token")
	if ex := a.remote(t); ex != "SecurityException" {
		t.Fatalf("no token: %s", ex)
	}
	h.want(h.raw("GET", h.base+"/webhdfs/v1/?op=LISTSTATUS&delegation=wrong", nil, nil), http.StatusUnauthorized, "wrong token")
	h.want(h.raw("GET", h.base+"/webhdfs/v1/?op=LISTSTATUS", nil, map[string]string{"Authorization": "Bearer " + tok}), http.StatusOK, "bearer token")
	h.want(h.raw("GET", h.base+"/webhdfs/v1?op=GETFILESTATUS&delegation="+tok, nil, nil), http.StatusOK, "the root without a slash")

	// Ops: case-insensitive names, unknown parameters ignored, errors named.
	for _, tc := range []struct {
		method, query string
		status        int
		ex            string
	}{
		{"GET", "", 400, "IllegalArgumentException"},
		{"GET", "op=SETPERMISSION", 400, "UnsupportedOperationException"},
		{"PUT", "op=LISTSTATUS", 400, "UnsupportedOperationException"},
		{"GET", "op=CREATE", 400, "UnsupportedOperationException"},
		{"DELETE", "op=delete&recursive=maybe", 400, "IllegalArgumentException"},
	} {
		a := h.do(tc.method, "/x", tc.query, nil)
		h.want(a, tc.status, tc.method+" "+tc.query)
		if ex := a.remote(t); ex != tc.ex {
			t.Errorf("%s %s: %s, want %s", tc.method, tc.query, ex, tc.ex)
		}
	}

	// CREATE: 307 to a location that carries the token and the options.
	a = h.do("PUT", "/d/f.txt", "Op=create&overwrite=FALSE&replication=1&blocksize=65536&permission=600&buffersize=4096&user.name=alice&whatever=1", nil)
	h.want(a, http.StatusTemporaryRedirect, "CREATE")
	loc, err := url.Parse(a.header.Get("Location"))
	if err != nil || loc.Query().Get("delegation") != tok || loc.Query().Get("replication") != "1" || loc.Query().Get("blocksize") != "65536" || !strings.HasSuffix(loc.Path, "/webhdfs/v1/d/f.txt") {
		t.Fatalf("CREATE location %q", a.header.Get("Location"))
	}
	data := []byte(strings.Repeat("line of text\n", 10000)) // 130,000 bytes: 2+ blocks of 64K
	a = h.raw("PUT", loc.String(), data, nil)
	h.want(a, http.StatusCreated, "CREATE data")
	if !strings.HasPrefix(a.header.Get("Location"), "webhdfs://") {
		t.Fatalf("CREATE answered Location %q", a.header.Get("Location"))
	}
	// noredirect=true answers the location in JSON.
	a = h.do("PUT", "/d/g.txt", "op=CREATE&noredirect=True", nil)
	h.want(a, http.StatusOK, "CREATE noredirect")
	gloc, _ := a.json(t)["Location"].(string)
	h.want(h.raw("PUT", gloc, []byte("g\n"), nil), http.StatusCreated, "CREATE data after noredirect")
	// An existing file: refused without overwrite, at either step.
	a = h.do("PUT", "/d/f.txt", "op=CREATE", nil)
	h.want(a, http.StatusForbidden, "CREATE over a file")
	if ex := a.remote(t); ex != "FileAlreadyExistsException" {
		t.Fatalf("CREATE over a file: %s", ex)
	}
	a = h.raw("PUT", gloc, []byte("again"), nil)
	h.want(a, http.StatusForbidden, "CREATE data over a file")
	if ex := a.remote(t); ex != "FileAlreadyExistsException" {
		t.Fatalf("CREATE data over a file: %s", ex)
	}
	h.want(h.put("/d/g.txt", "overwrite=true", []byte("g2\n")), http.StatusCreated, "CREATE overwrite")
	h.want(h.put("/d", "overwrite=true", []byte("x")), http.StatusForbidden, "CREATE over a directory")
	h.want(h.put("/d/f.txt/below", "", []byte("x")), http.StatusForbidden, "CREATE below a file")
	h.want(h.do("PUT", "/d/h", "op=CREATE&blocksize=1000", nil), http.StatusBadRequest, "CREATE tiny blocksize")
	h.want(h.do("PUT", "/bad%01name", "op=CREATE", nil), http.StatusBadRequest, "CREATE bad path")

	// GETFILESTATUS of a file, a directory, the root, nothing.
	a = h.do("GET", "/d/f.txt", "op=GETFILESTATUS", nil)
	h.want(a, http.StatusOK, "GETFILESTATUS")
	var fst struct{ FileStatus peer.FileStatus }
	json.Unmarshal(a.body, &fst)
	if st := fst.FileStatus; st.Type != "FILE" || st.Length != int64(len(data)) || st.Replication != 1 || st.BlockSize != 65536 || st.PathSuffix != "" || st.ModificationTime == 0 || st.Permission == "" || st.Owner == "" {
		t.Fatalf("file status %+v", st)
	}
	a = h.do("GET", "/d", "op=GETFILESTATUS", nil)
	h.want(a, http.StatusOK, "GETFILESTATUS dir")
	json.Unmarshal(a.body, &fst)
	if st := fst.FileStatus; st.Type != "DIRECTORY" || st.ChildrenNum == nil || *st.ChildrenNum != 2 || st.Length != 0 {
		t.Fatalf("dir status %s", a.body)
	}
	a = h.do("GET", "/nothing", "op=GETFILESTATUS", nil)
	h.want(a, http.StatusNotFound, "GETFILESTATUS missing")
	if ex := a.remote(t); ex != "FileNotFoundException" {
		t.Fatalf("GETFILESTATUS missing: %s", ex)
	}

	// LISTSTATUS of a directory (sorted names), of a file (itself), of nothing.
	suffixes := func(a hdfsAnswer) []string {
		var ls struct {
			FileStatuses struct{ FileStatus []peer.FileStatus }
		}
		if err := json.Unmarshal(a.body, &ls); err != nil {
			t.Fatalf("LISTSTATUS: %s", a.body)
		}
		var out []string
		for _, s := range ls.FileStatuses.FileStatus {
			out = append(out, s.PathSuffix+":"+s.Type)
		}
		return out
	}
	a = h.do("GET", "/", "op=LISTSTATUS", nil)
	h.want(a, http.StatusOK, "LISTSTATUS /")
	if got := suffixes(a); !slices.Equal(got, []string{"d:DIRECTORY"}) {
		t.Fatalf("LISTSTATUS /: %v", got)
	}
	if got := suffixes(h.do("GET", "/d/", "op=liststatus", nil)); !slices.Equal(got, []string{"f.txt:FILE", "g.txt:FILE"}) {
		t.Fatalf("LISTSTATUS /d: %v", got)
	}
	if got := suffixes(h.do("GET", "/d/f.txt", "op=LISTSTATUS", nil)); !slices.Equal(got, []string{":FILE"}) {
		t.Fatalf("LISTSTATUS of a file: %v", got)
	}
	h.want(h.do("GET", "/nothing", "op=LISTSTATUS", nil), http.StatusNotFound, "LISTSTATUS missing")

	// OPEN: whole, a range, the end, past the end, a directory.
	open := func(query string) hdfsAnswer {
		t.Helper()
		a := h.do("GET", "/d/f.txt", "op=OPEN&"+query, nil)
		if a.status == http.StatusTemporaryRedirect {
			a = h.raw("GET", a.header.Get("Location"), nil, nil)
		}
		return a
	}
	if a = open(""); a.status != 200 || !bytes.Equal(a.body, data) {
		t.Fatalf("OPEN: %d, %d bytes", a.status, len(a.body))
	}
	if a = open("offset=70000&length=100000"); a.status != 200 || !bytes.Equal(a.body, data[70000:]) {
		t.Fatalf("OPEN offset past a block edge: %d, %d bytes", a.status, len(a.body))
	}
	if a = open("offset=65000&length=1000"); a.status != 200 || !bytes.Equal(a.body, data[65000:66000]) {
		t.Fatalf("OPEN across blocks: %d, %q", a.status, a.body)
	}
	if a = open("offset=3&length=0"); a.status != 200 || len(a.body) != 0 {
		t.Fatalf("OPEN length 0: %d, %q", a.status, a.body)
	}
	if a = open("offset=130000"); a.status != 200 || len(a.body) != 0 {
		t.Fatalf("OPEN at the end: %d, %q", a.status, a.body)
	}
	h.want(open("offset=130001"), http.StatusForbidden, "OPEN past the end")
	h.want(open("offset=-1"), http.StatusBadRequest, "OPEN negative offset")
	a = h.do("GET", "/d", "op=OPEN", nil)
	h.want(a, http.StatusNotFound, "OPEN a directory")
	if ex := a.remote(t); ex != "FileNotFoundException" {
		t.Fatalf("OPEN a directory: %s", ex)
	}
	a = h.do("GET", "/d/f.txt", "op=OPEN&noredirect=true", nil)
	h.want(a, http.StatusOK, "OPEN noredirect")
	if l, _ := a.json(t)["Location"].(string); !strings.Contains(l, "op=OPEN") || !strings.Contains(l, "delegation="+tok) {
		t.Fatalf("OPEN noredirect location %q", l)
	}

	// APPEND: 307, then the location takes repeated POSTs (fsspec's writes).
	a = h.do("POST", "/d/g.txt", "op=APPEND", nil)
	h.want(a, http.StatusTemporaryRedirect, "APPEND")
	aloc := a.header.Get("Location")
	h.want(h.raw("POST", aloc, []byte("more 1\n"), nil), http.StatusOK, "APPEND data")
	h.want(h.raw("POST", aloc, []byte("more 2\n"), nil), http.StatusOK, "APPEND data again")
	if a = h.do("GET", "/d/g.txt", "op=OPEN&data=true", nil); string(a.body) != "g2\nmore 1\nmore 2\n" {
		t.Fatalf("after appends: %q", a.body)
	}
	h.want(h.do("POST", "/d/none", "op=APPEND", nil), http.StatusNotFound, "APPEND to nothing")
	h.want(h.do("POST", "/d", "op=APPEND", nil), http.StatusNotFound, "APPEND to a directory")

	// MKDIRS: an empty directory lists, and lists empty.
	a = h.do("PUT", "/e/empty", "op=MKDIRS&permission=755", nil)
	h.want(a, http.StatusOK, "MKDIRS")
	if a.json(t)["boolean"] != true {
		t.Fatalf("MKDIRS: %s", a.body)
	}
	if got := suffixes(h.do("GET", "/e", "op=LISTSTATUS", nil)); !slices.Equal(got, []string{"empty:DIRECTORY"}) {
		t.Fatalf("LISTSTATUS /e: %v", got)
	}
	if got := suffixes(h.do("GET", "/e/empty", "op=LISTSTATUS", nil)); len(got) != 0 {
		t.Fatalf("LISTSTATUS of an empty dir: %v", got)
	}
	a = h.do("PUT", "/d/f.txt/sub", "op=MKDIRS", nil)
	h.want(a, http.StatusForbidden, "MKDIRS below a file")
	if ex := a.remote(t); ex != "FileAlreadyExistsException" {
		t.Fatalf("MKDIRS below a file: %s", ex)
	}

	// GETCONTENTSUMMARY, GETFILECHECKSUM, GETHOMEDIRECTORY.
	a = h.do("GET", "/", "op=GETCONTENTSUMMARY", nil)
	h.want(a, http.StatusOK, "GETCONTENTSUMMARY")
	var cs struct{ ContentSummary peer.ContentSummary }
	json.Unmarshal(a.body, &cs)
	gLen := int64(len("g2\nmore 1\nmore 2\n"))
	if s := cs.ContentSummary; s.FileCount != 2 || s.DirectoryCount != 4 || s.Length != int64(len(data))+gLen || s.Quota != -1 || s.SpaceConsumed != int64(len(data))+2*gLen {
		t.Fatalf("content summary of /: %+v (want 2 files, 4 dirs: / /d /e /e/empty)", s)
	}
	h.want(h.do("GET", "/nothing", "op=GETCONTENTSUMMARY", nil), http.StatusNotFound, "GETCONTENTSUMMARY missing")
	a = h.do("GET", "/d/f.txt", "op=GETFILECHECKSUM", nil)
	h.want(a, http.StatusOK, "GETFILECHECKSUM")
	var ck struct{ FileChecksum peer.FileChecksum }
	json.Unmarshal(a.body, &ck)
	f, _ := c.Node(0).FS().Stat("/d/f.txt")
	if ck.FileChecksum.Bytes != f.Manifest.String() || ck.FileChecksum.Length != 32 || ck.FileChecksum.Algorithm == "" {
		t.Fatalf("checksum %s", a.body)
	}
	h.want(h.do("GET", "/d", "op=GETFILECHECKSUM", nil), http.StatusNotFound, "GETFILECHECKSUM of a directory")
	if a = h.do("GET", "/", "op=GETHOMEDIRECTORY&user.name=alice", nil); a.json(t)["Path"] != "/user/alice" {
		t.Fatalf("home: %s", a.body)
	}
	h.want(h.do("GET", "/", "op=GETHOMEDIRECTORY&user.name=a/b", nil), http.StatusBadRequest, "home of a bad user")

	// RENAME: moves the record; false when the source is missing or the
	// destination taken, as Hadoop answers.
	rename := func(p, dst string) any {
		t.Helper()
		a := h.do("PUT", p, "op=RENAME&destination="+url.QueryEscape(dst), nil)
		h.want(a, http.StatusOK, "RENAME "+p+" "+dst)
		return a.json(t)["boolean"]
	}
	if rename("/d/g.txt", "/e/g.txt") != true {
		t.Fatal("RENAME refused")
	}
	if a = h.do("GET", "/e/g.txt", "op=OPEN&data=true", nil); string(a.body) != "g2\nmore 1\nmore 2\n" {
		t.Fatalf("renamed file reads %q", a.body)
	}
	if rename("/d/g.txt", "/e/x") != false || rename("/e/g.txt", "/d/f.txt") != false {
		t.Fatal("RENAME of a missing file or onto a file accepted")
	}
	h.want(h.do("PUT", "/e/g.txt", "op=RENAME", nil), http.StatusBadRequest, "RENAME without destination")
	h.want(h.do("PUT", "/e/g.txt", "op=RENAME&destination=relative", nil), http.StatusBadRequest, "RENAME to a relative path")

	// DELETE: a file, nothing (false), a full directory without recursive
	// (refused), with recursive, the root (refused).
	del := func(p, query string, status int) hdfsAnswer {
		t.Helper()
		a := h.do("DELETE", p, "op=DELETE&"+query, nil)
		h.want(a, status, "DELETE "+p+" "+query)
		return a
	}
	if a = del("/d/f.txt", "", 200); a.json(t)["boolean"] != true {
		t.Fatalf("DELETE file: %s", a.body)
	}
	if a = del("/d/f.txt", "", 200); a.json(t)["boolean"] != false {
		t.Fatalf("DELETE nothing: %s", a.body)
	}
	if ex := del("/e", "recursive=false", 403).remote(t); ex != "PathIsNotEmptyDirectoryException" {
		t.Fatalf("DELETE full dir: %s", ex)
	}
	if a = del("/e/empty", "", 200); a.json(t)["boolean"] != true {
		t.Fatalf("DELETE empty dir: %s", a.body)
	}
	if a = del("/e", "recursive=TRUE", 200); a.json(t)["boolean"] != true {
		t.Fatalf("DELETE -r: %s", a.body)
	}
	del("/", "recursive=true", 403)
	if fs := c.Node(0).FS().Files(); len(fs) != 0 {
		t.Fatalf("files left: %v", fs)
	}
}

// TestWebHDFSOpenRedirectsToAHolder: a node that holds none of a file's
// blocks redirects an OPEN to one that does, with the token in the
// location; the holder serves it directly.
func TestWebHDFSOpenRedirectsToAHolder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := clustertest.Start(t, 3, clustertest.Options{})
	tok := c.Config(0).Secret.APIToken()
	data := []byte(strings.Repeat("0123456789abcdef\n", 1000))
	f, err := c.Node(0).FS().Create(ctx, "/one", bytes.NewReader(data), blockstore.CreateOptions{Replication: 1})
	if err != nil {
		t.Fatal(err)
	}
	locs, err := c.Node(0).FS().Locate(ctx, f)
	if err != nil || len(locs) != 2 || len(locs[1].Holders) != 1 {
		t.Fatalf("locate: %+v %v", locs, err)
	}
	holder := locs[1].Holders[0]
	var far, near *peer.Node
	for _, n := range c.Running() {
		if n.Name() == holder {
			near = n
		} else {
			far = n
		}
	}
	h := newHDFSClient(t, far, tok)
	a := h.do("GET", "/one", "op=OPEN&offset=17&length=34", nil)
	h.want(a, http.StatusTemporaryRedirect, "OPEN on a node without the block")
	loc := a.header.Get("Location")
	if !strings.HasPrefix(loc, near.HTTPURL()+"/webhdfs/v1/one?") || !strings.Contains(loc, "delegation="+tok) {
		t.Fatalf("redirected to %q, want %s with the token", loc, near.HTTPURL())
	}
	a = h.raw("GET", loc, nil, nil) // no Authorization header
	if a.status != 200 || !bytes.Equal(a.body, data[17:51]) {
		t.Fatalf("redirected OPEN: %d %q", a.status, a.body)
	}
	hn := newHDFSClient(t, near, tok)
	if a = hn.do("GET", "/one", "op=OPEN&offset=17&length=34", nil); a.status != 200 || !bytes.Equal(a.body, data[17:51]) {
		t.Fatalf("OPEN on the holder: %d %q", a.status, a.body)
	}
}

// TestWebHDFSOpenCluster: without a secret, no token is needed and
// locations carry none.
func TestWebHDFSOpenCluster(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{NoSecret: true})
	h := newHDFSClient(t, c.Node(0), "")
	a := h.do("PUT", "/f", "op=CREATE", nil)
	h.want(a, http.StatusTemporaryRedirect, "CREATE")
	if strings.Contains(a.header.Get("Location"), "delegation") {
		t.Fatalf("location carries a token: %s", a.header.Get("Location"))
	}
	h.want(h.raw("PUT", a.header.Get("Location"), []byte("x"), nil), http.StatusCreated, "CREATE data")
}
