package peer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"shoal.dev/shoal/client"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"shoal.dev/shoal/scheduler"
	"shoal.dev/shoal/tasklog"
)

// The web console: static pages embedded in the binary (ui/), served under
// /ui/ by every agent, reading the JSON under /ui/api/. Access:
//
//   - `shoal ui` asks POST /v1/ui/link (with the API token) for a one-time
//     code and prints the URL /ui/login?code=CODE.
//   - GET /ui/login?code=CODE, once, within consoleCodeTTL, sets the
//     session cookie (HttpOnly, SameSite=Strict, Path=/ui/, Secure over TLS)
//     and redirects to /ui/.
//   - Everything else under /ui/ needs the cookie; without it the answer is
//     401 and the login page, nothing more.
//   - Actions (kill) are POSTs that also need the session's CSRF token in
//     the X-Shoal-CSRF header (the page reads it from /ui/api/session).
//
// A session is the cookie itself, signed (HMAC-SHA256) with a key derived
// from the cluster secret (secret.ConsoleKey), so every agent of the
// cluster accepts it until it expires:
//
//	v1.<expiry, Unix seconds>.<nonce, 32 hex>.<HMAC(key, "session v1|<expiry>|<nonce>"), 64 hex>
//
// and its CSRF token is HMAC(key, "csrf v1|<nonce>"). A browser sends the
// cookie to every port of a host, so the agents of one host share it
// without another login; an agent on another host needs the one-time
// link once (cookies are per host). Nothing ends a session early but a
// new cluster secret. Without a secret (an open loopback cluster) each
// agent signs with a random key of its own: a session is good on that
// agent until it restarts. One-time codes live in the agent's memory and
// are good on the agent that made them only.

//go:embed ui
var uiFiles embed.FS

const (
	consoleCookie     = "shoal_session"
	consoleCodeTTL    = 5 * time.Minute
	consoleSessionTTL = 12 * time.Hour
	// consoleMaxCodes bounds the one-time codes kept; past it the oldest
	// go.
	consoleMaxCodes = 1000
	// maxSessionCookie bounds the cookie read (ours is 111 bytes).
	maxSessionCookie = 256
	consoleEvents    = 50
)

type consoleSession struct {
	csrf    string
	expires time.Time
}

// console holds the session key, the one-time codes and the recent
// membership events.
type console struct {
	key    []byte // signs sessions
	mu     sync.Mutex
	codes  map[string]time.Time // code -> expiry
	events []ConsoleEvent       // newest last, at most consoleEvents
}

// ConsoleEvent is a membership event the cluster page lists.
type ConsoleEvent struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// newConsole signs sessions with key; nil for a random key of this
// agent's.
func newConsole(key []byte) *console {
	if key == nil {
		key = make([]byte, 32)
		rand.Read(key)
	}
	return &console{key: key, codes: map[string]time.Time{}}
}

func (c *console) mac(parts ...string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(strings.Join(parts, "|")))
	return hex.EncodeToString(m.Sum(nil))
}

// newSession returns a session cookie's value that expires at exp.
func (c *console) newSession(exp time.Time) string {
	b := make([]byte, 16)
	rand.Read(b)
	nonce, at := hex.EncodeToString(b), strconv.FormatInt(exp.Unix(), 10)
	return "v1." + at + "." + nonce + "." + c.mac("session v1", at, nonce)
}

// check returns the session a cookie's value carries, if its MAC is this
// cluster's and it has not expired.
func (c *console) check(v string, now time.Time) (consoleSession, bool) {
	f := strings.Split(v, ".")
	if len(v) > maxSessionCookie || len(f) != 4 || f[0] != "v1" || len(f[2]) != 32 {
		return consoleSession{}, false
	}
	if !hmac.Equal([]byte(f[3]), []byte(c.mac("session v1", f[1], f[2]))) {
		return consoleSession{}, false
	}
	sec, err := strconv.ParseInt(f[1], 10, 64)
	exp := time.Unix(sec, 0)
	if err != nil || !now.Before(exp) {
		return consoleSession{}, false
	}
	return consoleSession{csrf: c.mac("csrf v1", f[2]), expires: exp}, true
}

func (c *console) event(at time.Time, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, ConsoleEvent{At: at, What: what})
	if len(c.events) > consoleEvents {
		c.events = slices.Delete(c.events, 0, len(c.events)-consoleEvents)
	}
}

func (c *console) recentEvents() []ConsoleEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.events)
	slices.Reverse(out)
	return out
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// prune drops expired codes, then the oldest past the bound. Called with
// c.mu held.
func (c *console) prune(now time.Time) {
	for k, exp := range c.codes {
		if now.After(exp) {
			delete(c.codes, k)
		}
	}
	for len(c.codes) > consoleMaxCodes {
		oldest := ""
		for k, exp := range c.codes {
			if oldest == "" || exp.Before(c.codes[oldest]) {
				oldest = k
			}
		}
		delete(c.codes, oldest)
	}
}

// newCode makes a one-time login code.
func (c *console) newCode(now time.Time) string {
	code := randomToken()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.codes[code] = now.Add(consoleCodeTTL)
	c.prune(now)
	return code
}

// login consumes a code and returns a new session's token, or "".
func (c *console) login(code string, now time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.codes[code]
	if !ok || len(code) != 64 {
		return ""
	}
	delete(c.codes, code)
	if now.After(exp) {
		return ""
	}
	return c.newSession(now.Add(consoleSessionTTL))
}

// session returns the request's session.
func (c *console) session(r *http.Request, now time.Time) (consoleSession, bool) {
	ck, err := r.Cookie(consoleCookie)
	if err != nil {
		return consoleSession{}, false
	}
	return c.check(ck.Value, now)
}

// ConsoleLink is the answer of POST /v1/ui/link.
type ConsoleLink = client.ConsoleLink

func (n *Node) consoleRoutes(mux *routes) {
	mux.Handle("POST /v1/ui/link", n.auth(n.handleConsoleLink))
	mux.HandleFunc("GET /ui/login", n.handleConsoleLogin)
	mux.HandleFunc("GET /ui/", n.session(n.handleConsoleFile))
	mux.HandleFunc("GET /ui/api/session", n.session(n.handleConsoleSession))
	mux.HandleFunc("GET /ui/api/cluster", n.session(n.handleConsoleCluster))
	mux.HandleFunc("GET /ui/api/files", n.session(n.handleConsoleFiles))
	mux.HandleFunc("GET /ui/api/file", n.session(n.handleConsoleFile1))
	mux.HandleFunc("GET /ui/api/jobs", n.session(n.handleConsoleJobs))
	mux.HandleFunc("GET /ui/api/jobs/{id}", n.session(n.handleConsoleJob))
	mux.HandleFunc("GET /ui/api/jobs/{id}/logs/{task}", n.session(n.handleTaskLog))
	mux.HandleFunc("POST /ui/api/jobs/{id}/kill", n.session(n.csrf(n.handleKill)))
}

func (n *Node) handleConsoleLink(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	code := n.console.newCode(now)
	writeJSON(w, http.StatusOK, ConsoleLink{Path: "/ui/login?code=" + code, Expires: now.Add(consoleCodeTTL)})
}

func (n *Node) handleConsoleLogin(w http.ResponseWriter, r *http.Request) {
	tok := n.console.login(r.URL.Query().Get("code"), time.Now())
	if tok == "" {
		consoleLoginPage(w, "This login link is not valid: it was used already, has expired (links last 5 minutes), or belongs to another agent. Run `shoal ui` for a new one.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: consoleCookie, Value: tok, Path: "/ui/",
		MaxAge: int(consoleSessionTTL / time.Second), HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// consoleLoginPage answers 401 with the login page: the only thing the
// console shows without a session.
func consoleLoginPage(w http.ResponseWriter, msg string) {
	b, _ := uiFiles.ReadFile("ui/login.html")
	page := strings.Replace(string(b), "{{message}}", htmlEscaper.Replace(msg), 1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte(page))
}

var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;")

// session requires a console session; without one, the login page (or,
// for the JSON API, a 401 error).
func (n *Node) session(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := n.console.session(r, time.Now()); !ok {
			if strings.HasPrefix(r.URL.Path, "/ui/api/") {
				writeError(w, http.StatusUnauthorized, "no console session: run `shoal ui` and open the link it prints")
				return
			}
			consoleLoginPage(w, "Run `shoal ui` (with the cluster secret) and open the link it prints.")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		h(w, r)
	}
}

// csrf requires the session's CSRF token in X-Shoal-CSRF.
func (n *Node) csrf(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, _ := n.console.session(r, time.Now())
		got := r.Header.Get("X-Shoal-CSRF")
		if s.csrf == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
			writeError(w, http.StatusForbidden, "missing or wrong CSRF token: reload the console")
			return
		}
		h(w, r)
	}
}

// handleConsoleFile serves the embedded pages.
func (n *Node) handleConsoleFile(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/ui/")
	if name == "" {
		name = "index.html"
	}
	if name == "login.html" || strings.Contains(name, "/") {
		writeError(w, http.StatusNotFound, "no such console page: "+r.URL.Path)
		return
	}
	sub, _ := fs.Sub(uiFiles, "ui")
	b, err := fs.ReadFile(sub, name)
	if err != nil {
		writeError(w, http.StatusNotFound, "no such console page: "+r.URL.Path)
		return
	}
	switch {
	case strings.HasSuffix(name, ".html"):
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	}
	w.Write(b)
}

func (n *Node) handleConsoleSession(w http.ResponseWriter, r *http.Request) {
	s, _ := n.console.session(r, time.Now())
	writeJSON(w, http.StatusOK, map[string]string{"csrf": s.csrf, "node": n.cfg.Name, "version": Version})
}

// ConsoleMember is one member on the cluster page.
type ConsoleMember struct {
	Member
	// RingShare is the fraction of the ring this member is primary for.
	RingShare float64 `json:"ring_share"`
	// Stats are the member's own figures; nil when it did not answer.
	Stats *NodeStats `json:"stats,omitempty"`
}

// ConsoleCluster is the cluster page's data.
type ConsoleCluster struct {
	Node    string          `json:"node"`
	Members []ConsoleMember `json:"members"`
	// UnderReplicated and Missing sum the members' figures at their last
	// repair pass.
	UnderReplicated int64          `json:"under_replicated"`
	Missing         int64          `json:"missing"`
	Events          []ConsoleEvent `json:"events"`
}

func (n *Node) handleConsoleCluster(w http.ResponseWriter, r *http.Request) {
	members := n.Members()
	share := ringShares(n)
	stats := n.memberStats(r.Context())
	out := ConsoleCluster{Node: n.cfg.Name, Events: n.console.recentEvents()}
	for _, m := range members {
		cm := ConsoleMember{Member: m, RingShare: share[m.Name]}
		if st, ok := stats[m.Name]; ok {
			cm.Stats = &st
			out.UnderReplicated += st.UnderReplicated
			out.Missing = max(out.Missing, st.Missing)
		}
		out.Members = append(out.Members, cm)
	}
	writeJSON(w, http.StatusOK, out)
}

// ringShares samples the ring at 4096 evenly spaced points and returns each
// member's share of primaries.
func ringShares(n *Node) map[string]float64 {
	rg := n.Ring()
	out := map[string]float64{}
	if rg.Len() == 0 {
		return out
	}
	const points = 4096
	step := ^uint64(0) / points
	for i := uint64(0); i < points; i++ {
		if o := rg.OwnersOf(i*step, 1); len(o) > 0 {
			out[o[0]] += 1.0 / points
		}
	}
	return out
}

// ConsoleFiles is a directory on the files page.
type ConsoleFiles struct {
	Path    string         `json:"path"`
	Entries []ConsoleEntry `json:"entries"`
	// Next is the cursor of the next page (the from parameter); absent
	// on the last page.
	Next string `json:"next,omitempty"`
}

// ConsoleEntry is one directory entry. A directory's entry says nothing of
// what it holds (a page reads only its own records).
type ConsoleEntry struct {
	Name        string `json:"name"`
	Path        string `json:"path"`
	Dir         bool   `json:"dir"`
	Size        int64  `json:"size"`
	Blocks      int    `json:"blocks,omitempty"`
	Replication int    `json:"replication,omitempty"`
	ModTime     int64  `json:"mtime_unix_ns,omitempty"`
}

// consolePageEntries is how many entries a page of the files page lists.
const consolePageEntries = 500

// maxCursor bounds the from parameter of the files page.
const maxCursor = 4 << 10

func (n *Node) handleConsoleFiles(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, from := q.Get("path"), q.Get("from")
	if p == "" {
		p = "/"
	}
	if len(from) > maxCursor {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("from: a cursor of %d bytes; at most %d", len(from), maxCursor))
		return
	}
	ents, next, err := n.fs.ListPage(p, from, consolePageEntries)
	if err != nil {
		writeError(w, fsStatus(err), err.Error())
		return
	}
	out := ConsoleFiles{Path: p, Entries: make([]ConsoleEntry, 0, len(ents)), Next: next}
	for _, e := range ents {
		ce := ConsoleEntry{Name: e.Name, Path: e.Path, Dir: e.Dir, Size: e.Size}
		if e.File != nil {
			ce.Blocks, ce.Replication, ce.ModTime = e.File.Blocks, e.File.Replication, e.File.ModTime
		}
		out.Entries = append(out.Entries, ce)
	}
	writeJSON(w, http.StatusOK, out)
}

// ConsoleBlock is one block of a file on the files page.
type ConsoleBlock struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
	// Owners are the members the ring places the block on; Holders the
	// alive members that hold a copy.
	Owners  []string `json:"owners"`
	Holders []string `json:"holders"`
	// Health: "ok" (a copy on every owner), "under-replicated" (fewer
	// copies than the replication), "missing" (no copy on an alive member).
	Health string `json:"health"`
}

// ConsoleFile is a file with its blocks.
type ConsoleFile struct {
	Path        string         `json:"path"`
	Size        int64          `json:"size"`
	Replication int            `json:"replication"`
	ModTime     int64          `json:"mtime_unix_ns"`
	Blocks      []ConsoleBlock `json:"blocks"`
	Cut         bool           `json:"cut,omitempty"` // more blocks than shown
}

func (n *Node) handleConsoleFile1(w http.ResponseWriter, r *http.Request) {
	f, err := n.fs.Stat(r.URL.Query().Get("path"))
	if err != nil {
		writeError(w, fsStatus(err), err.Error())
		return
	}
	m, err := n.fs.Manifest(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	out := ConsoleFile{Path: f.Path, Size: f.Size, Replication: f.Replication, ModTime: f.ModTime, Blocks: []ConsoleBlock{}}
	blocks := m.Blocks
	if len(blocks) > 1000 {
		blocks, out.Cut = blocks[:1000], true
	}
	ids := make([]string, len(blocks))
	for i, b := range blocks {
		ids[i] = b.ID.String()
	}
	holders := n.blockHolders(r.Context(), blocks)
	rg := n.Ring()
	for i, b := range blocks {
		cb := ConsoleBlock{ID: ids[i], Size: b.Size, Owners: rg.Owners(ids[i], min(f.Replication, rg.Len())), Holders: holders[b.ID]}
		sort.Strings(cb.Holders)
		switch {
		case len(cb.Holders) == 0:
			cb.Health = "missing"
		case len(cb.Holders) < min(f.Replication, rg.Len()):
			cb.Health = "under-replicated"
		default:
			cb.Health = "ok"
		}
		out.Blocks = append(out.Blocks, cb)
	}
	writeJSON(w, http.StatusOK, out)
}

// ConsoleJob is the job page's data.
type ConsoleJob struct {
	Status   any          `json:"status"`
	Attempts []AttemptLog `json:"attempts"`
	Missing  []string     `json:"missing,omitempty"`
	// Phases: median and max duration of the ended attempts, by kind.
	Phases map[string]PhaseStats `json:"phases"`
}

// PhaseStats summarises the ended attempts of one kind of task.
type PhaseStats struct {
	Attempts  int     `json:"attempts"`
	Failed    int     `json:"failed"`
	MedianSec float64 `json:"median_s"`
	MaxSec    float64 `json:"max_s"`
	// Of the succeeded attempts: the median and max of the bytes read
	// and written; for maps, how many read their whole split from local
	// copies out of how many read blocks.
	MedianIn  int64 `json:"median_in_bytes"`
	MaxIn     int64 `json:"max_in_bytes"`
	MedianOut int64 `json:"median_out_bytes"`
	MaxOut    int64 `json:"max_out_bytes"`
	DataLocal int   `json:"data_local"`
	ReadInput int   `json:"read_input"`
}

// ConsoleJobs is a page of the jobs page: the newest jobs first.
type ConsoleJobs struct {
	Jobs []scheduler.Status `json:"jobs"`
	// Next is the after parameter of the next page of older jobs; absent
	// on the last page.
	Next  string `json:"next,omitempty"`
	Total int    `json:"total"`
}

// consolePageJobs is how many jobs a page of the jobs page lists.
const consolePageJobs = 100

func (n *Node) handleConsoleJobs(w http.ResponseWriter, r *http.Request) {
	after := r.URL.Query().Get("after")
	if len(after) > maxCursor {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("after: a cursor of %d bytes; at most %d", len(after), maxCursor))
		return
	}
	var out ConsoleJobs
	out.Jobs, out.Next, out.Total = n.sched.ListPage(after, consolePageJobs)
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleConsoleJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !n.knownJob(r.Context(), id) {
		writeError(w, http.StatusNotFound, "no such job "+id)
		return
	}
	st, err := n.sched.Status(id)
	if err != nil {
		writeError(w, jobStatus(err), err.Error())
		return
	}
	ls := n.TaskLogs(r.Context(), id, "")
	writeJSON(w, http.StatusOK, ConsoleJob{Status: st, Attempts: ls.Attempts, Missing: ls.Missing, Phases: phaseStats(ls.Attempts)})
}

// phaseStats computes the median and max durations, bytes in and bytes
// out of ended attempts by kind ("map" for m- tasks, "reduce" for r-
// tasks).
func phaseStats(as []AttemptLog) map[string]PhaseStats {
	type samples struct{ dur, in, out []float64 }
	by := map[string]*samples{}
	out := map[string]PhaseStats{}
	for _, a := range as {
		kind := "map"
		if strings.HasPrefix(a.Task, "r-") {
			kind = "reduce"
		}
		ps := out[kind]
		sm := by[kind]
		if sm == nil {
			sm = &samples{}
			by[kind] = sm
		}
		if a.Result == "failed" {
			ps.Failed++
		}
		if !a.End.IsZero() {
			ps.Attempts++
			sm.dur = append(sm.dur, a.End.Sub(a.Start).Seconds())
		}
		if a.IO != nil && a.Result == tasklog.Succeeded {
			sm.in = append(sm.in, float64(a.IO.In))
			sm.out = append(sm.out, float64(a.IO.Out))
			if a.IO.Locality != "" {
				ps.ReadInput++
			}
			if a.IO.Locality == tasklog.Local {
				ps.DataLocal++
			}
		}
		out[kind] = ps
	}
	for kind, sm := range by {
		ps := out[kind]
		ps.MedianSec, ps.MaxSec = medianMax(sm.dur)
		mi, xi := medianMax(sm.in)
		mo, xo := medianMax(sm.out)
		ps.MedianIn, ps.MaxIn, ps.MedianOut, ps.MaxOut = int64(mi), int64(xi), int64(mo), int64(xo)
		out[kind] = ps
	}
	return out
}

// medianMax returns the median and the max of d (zeros when empty); it
// sorts d.
func medianMax(d []float64) (median, maximum float64) {
	if len(d) == 0 {
		return 0, 0
	}
	sort.Float64s(d)
	maximum = d[len(d)-1]
	if len(d)%2 == 1 {
		return d[len(d)/2], maximum
	}
	return (d[len(d)/2-1] + d[len(d)/2]) / 2, maximum
}
