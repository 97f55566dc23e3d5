package peer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"shoal.dev/shoal/client"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
	"shoal.dev/shoal/tasklog"
)

// TestConsoleSession: a one-time link logs a browser in with an HttpOnly,
// SameSite=Strict cookie, once; the session opens the console and its
// JSON, but not the API; a kill needs the session's CSRF token.
func TestConsoleSession(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{})
	n := c.Node(0)
	cl, err := client.New(n.HTTPURL(), c.Config(0).Secret.APIToken())
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

// TestAttemptIO: every ended attempt lists what it read and wrote, through
// the API as the console shows it. A map's input bytes add up to its
// split, its locality agrees with DATA_LOCAL_MAPS, the maps' output bytes
// are what the reduces fetched (REDUCE_SHUFFLE_BYTES), and the reduces'
// output bytes are the output's size; a generator's maps read nothing and
// write the output.
func TestAttemptIO(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	ctx := context.Background()
	input := corpus(11, 300<<10)
	put(t, c.Node(0), "/in/io.txt", input, blockstore.MinBlockSize)
	cl, err := client.New(c.Node(2).HTTPURL(), c.Config(2).Secret.APIToken())
	if err != nil {
		t.Fatal(err)
	}
	// succeeded returns the API's attempts of a job, the first succeeded
	// attempt of each task, after checking every ended attempt has IO.
	succeeded := func(id string) (map[string]peer.AttemptLog, peer.AttemptLogs) {
		t.Helper()
		ls, err := cl.TaskLogs(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		won := map[string]peer.AttemptLog{}
		for _, a := range ls.Attempts {
			if a.Result == "running" || a.Result == "lost" {
				continue
			}
			if a.IO == nil {
				t.Fatalf("%s attempt %d (%s) lists no IO", a.Task, a.Attempt, a.Result)
			}
			if _, ok := won[a.Task]; !ok && a.Result == "succeeded" {
				won[a.Task] = a
			}
		}
		return won, ls
	}
	size := func(dir string) int64 {
		t.Helper()
		es, err := c.Node(2).FS().List(dir)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, e := range es {
			n += e.Size
		}
		return n
	}

	rec, err := c.Node(1).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/in/io.txt"}, Output: "/out/io", Reducers: 2})
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, c.Node(1), rec.ID, 60*time.Second)
	if st.State != scheduler.StateSucceeded {
		t.Fatalf("job %s: %s", st.State, st.Error)
	}
	clustertest.Eventually(t, 10*time.Second, func() error {
		if es, _ := c.Node(2).FS().List("/out/io"); len(es) != 3 {
			return fmt.Errorf("%d files in /out/io", len(es))
		}
		return nil
	})
	if got, _ := readParts(t, c.Node(2), "/out/io"); !bytes.Equal(got, sequential(t, "wordcount", nil, map[string][]byte{"/in/io.txt": input}, []string{"/in/io.txt"}, 2)) {
		t.Fatal("distributed output differs from sequential")
	}
	won, ls := succeeded(rec.ID)
	var mapIn, mapOut, redIn, redOut, local int64
	for task, a := range won {
		if task[0] == 'm' {
			mapIn, mapOut = mapIn+a.IO.In, mapOut+a.IO.Out
			switch a.IO.Locality {
			case tasklog.Local:
				local++
			case tasklog.Remote:
			default:
				t.Errorf("%s: locality %q", task, a.IO.Locality)
			}
		} else {
			redIn, redOut = redIn+a.IO.In, redOut+a.IO.Out
		}
	}
	if len(won) != st.Maps+st.Reducers {
		t.Fatalf("%d tasks succeeded in the logs, want %d", len(won), st.Maps+st.Reducers)
	}
	cs := st.Counters
	if mapIn != int64(len(input)) {
		t.Errorf("maps read %d bytes, the input has %d", mapIn, len(input))
	}
	if mapOut != cs[job.REDUCE_SHUFFLE_BYTES] || redIn != mapOut || mapOut <= 0 {
		t.Errorf("maps wrote %d bytes, reduces fetched %d, REDUCE_SHUFFLE_BYTES %d", mapOut, redIn, cs[job.REDUCE_SHUFFLE_BYTES])
	}
	if want := size("/out/io"); redOut != want {
		t.Errorf("reduces wrote %d bytes, the output has %d", redOut, want)
	}
	if cs[job.NUM_SPECULATIVE_MAPS] == 0 && cs[job.NUM_KILLED_MAPS] == 0 && local != cs[job.DATA_LOCAL_MAPS] {
		t.Errorf("%d maps read locally in the logs, DATA_LOCAL_MAPS %d", local, cs[job.DATA_LOCAL_MAPS])
	}
	// The console's phases summarise the same attempts.
	var cj peer.ConsoleJob
	consoleGet(t, c, 0, "/ui/api/jobs/"+rec.ID, &cj)
	for kind, ps := range cj.Phases {
		if ps.MaxIn < ps.MedianIn || ps.MaxOut < ps.MedianOut || ps.MaxOut <= 0 || kind == "map" && (ps.ReadInput < st.Maps || ps.DataLocal > ps.ReadInput) {
			t.Errorf("%s phase: %+v", kind, ps)
		}
	}
	if len(cj.Attempts) != len(ls.Attempts) {
		t.Errorf("the console lists %d attempts, the API %d", len(cj.Attempts), len(ls.Attempts))
	}

	gen, err := c.Node(0).Submit(ctx, scheduler.SubmitRequest{Name: "teragen", Params: map[string]string{"rows": "3000", "tasks": "3"}, Output: "/out/gen"})
	if err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c.Node(0), gen.ID, 60*time.Second); st.State != scheduler.StateSucceeded {
		t.Fatalf("teragen %s: %s", st.State, st.Error)
	}
	won, _ = succeeded(gen.ID)
	var out int64
	for task, a := range won {
		if a.IO.In != 0 || a.IO.Locality != "" {
			t.Errorf("generator %s read: %+v", task, *a.IO)
		}
		out += a.IO.Out
	}
	if out != 3000*builtin.TeraRecordLen || len(won) != 3 {
		t.Errorf("%d generator tasks wrote %d bytes, want 3 and %d", len(won), out, 3000*builtin.TeraRecordLen)
	}

	// The jobs page, a page at a time: each job once, newest first.
	var seen []string
	after := ""
	for range 3 {
		page, next, total := c.Node(1).Scheduler().ListPage(after, 1)
		if total != 2 || len(page) != 1 {
			t.Fatalf("ListPage(%q, 1): %d jobs of %d", after, len(page), total)
		}
		seen = append(seen, page[0].ID)
		if after = next; after == "" {
			break
		}
	}
	if len(seen) != 2 || seen[0] < seen[1] || seen[0] == seen[1] {
		t.Errorf("pages of one job: %v", seen)
	}
	var jobs peer.ConsoleJobs
	consoleGet(t, c, 1, "/ui/api/jobs", &jobs)
	if jobs.Total != 2 || len(jobs.Jobs) != 2 || jobs.Next != "" || jobs.Jobs[0].ID != seen[0] {
		t.Errorf("the jobs page: %+v", jobs)
	}
}

// consoleLogin logs in to node i's console through a one-time link and
// returns the session cookie.
func consoleLogin(t *testing.T, c *clustertest.Cluster, i int) *http.Cookie {
	t.Helper()
	n := c.Node(i)
	cl, err := client.New(n.HTTPURL(), c.Config(i).Secret.APIToken())
	if err != nil {
		t.Fatal(err)
	}
	link, err := cl.ConsoleLink(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(n.HTTPURL() + link.Path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "shoal_session" {
			return ck
		}
	}
	t.Fatal("no session cookie")
	return nil
}

// consoleDo sends a console request with the cookie and returns the
// status and body.
func consoleDo(t *testing.T, method, url string, cookie *http.Cookie, csrf string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.AddCookie(cookie)
	if csrf != "" {
		req.Header.Set("X-Shoal-CSRF", csrf)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// consoleGet logs in to node i's console and decodes the JSON of path.
func consoleGet(t *testing.T, c *clustertest.Cluster, i int, path string, v any) {
	t.Helper()
	code, b := consoleDo(t, "GET", c.Node(i).HTTPURL()+path, consoleLogin(t, c, i), "")
	if code != 200 {
		t.Fatalf("%s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestConsoleSessionAcrossAgents: a session made by one agent opens the
// console of every agent of its cluster, with one CSRF token, and no
// agent of another cluster; a cookie changed by hand opens nothing.
func TestConsoleSessionAcrossAgents(t *testing.T) {
	c := clustertest.Start(t, 2, clustertest.Options{})
	other := clustertest.Start(t, 1, clustertest.Options{})
	ck := consoleLogin(t, c, 0)
	var csrf [2]string
	for i := range 2 {
		code, b := consoleDo(t, "GET", c.Node(i).HTTPURL()+"/ui/api/session", ck, "")
		var s struct{ CSRF, Node string }
		if code != 200 || json.Unmarshal(b, &s) != nil || s.Node != c.Node(i).Name() {
			t.Fatalf("node %d with node 0's session: %d %s", i, code, b)
		}
		csrf[i] = s.CSRF
	}
	if csrf[0] != csrf[1] || len(csrf[0]) != 64 {
		t.Fatalf("CSRF tokens %q and %q", csrf[0], csrf[1])
	}
	kill := c.Node(1).HTTPURL() + "/ui/api/jobs/job-20260101-000000-abcdef/kill"
	if code, b := consoleDo(t, "POST", kill, ck, csrf[0]); code != http.StatusNotFound {
		t.Fatalf("a kill on node 1 with node 0's session and token: %d %s (want 404: no such job)", code, b)
	}
	if code, _ := consoleDo(t, "GET", other.Node(0).HTTPURL()+"/ui/api/session", ck, ""); code != http.StatusUnauthorized {
		t.Fatalf("another cluster took the session: %d", code)
	}
	f := strings.Split(ck.Value, ".")
	if len(f) != 4 {
		t.Fatalf("cookie %q", ck.Value)
	}
	forged := &http.Cookie{Name: ck.Name, Value: f[0] + "." + "9" + f[1][1:] + "." + f[2] + "." + f[3]}
	if code, _ := consoleDo(t, "GET", c.Node(1).HTTPURL()+"/ui/api/session", forged, ""); code != http.StatusUnauthorized {
		t.Fatalf("a cookie with a later expiry written in: %d", code)
	}
}
