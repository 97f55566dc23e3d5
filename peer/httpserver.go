package peer

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Default limits of the HTTP API (see Config). Streams (a long put or get)
// are not bounded in total: their deadlines move forward with every read or
// write that makes progress, so only a stalled transfer times out.
const (
	DefaultAPIReadTimeout  = 30 * time.Second
	DefaultAPIWriteTimeout = 2 * time.Minute
	DefaultAPIIdleTimeout  = time.Minute
	DefaultMaxConns        = 1024
)

// newHTTPServer returns the API server with its timeouts.
func (n *Node) newHTTPServer(lim *connLimiter) *http.Server {
	return &http.Server{
		Handler:           n.metrics.instrument(n.guard(n.apiHandler())),
		ReadHeaderTimeout: n.cfg.APIReadTimeout,
		IdleTimeout:       n.cfg.APIIdleTimeout,
		ConnState:         lim.track,
	}
}

// listenHTTP opens the API listener: TCP, TLS when configured, and the
// connection cap outermost.
func (n *Node) listenHTTP() (net.Listener, *connLimiter, error) {
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("http: %w", err)
	}
	if n.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(n.cfg.TLSCert, n.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("tls: load --tls-cert %s and --tls-key %s: %w", n.cfg.TLSCert, n.cfg.TLSKey, err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
	}
	lim := newConnLimiter(ln, n.cfg.MaxConns)
	return lim, lim, nil
}

// guard applies the per-request deadlines and, on an open cluster, the
// browser checks, before any handler.
func (n *Node) guard(h http.Handler) http.Handler {
	open := n.cfg.Secret.IsZero()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg := checkBrowser(r, open); msg != "" {
			writeError(w, http.StatusForbidden, msg)
			return
		}
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), read: n.cfg.APIReadTimeout, write: n.cfg.APIWriteTimeout}
		dw.extend(true)
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &deadlineBody{ReadCloser: r.Body, w: dw}
		}
		h.ServeHTTP(dw, r)
	})
}

// checkBrowser rejects what only a browser tricked by a web page would
// send: a request from another origin (a page's POST, even text/plain or a
// form), and, on an open cluster, a Host that is not a loopback name or an
// IP address (DNS rebinding: a page's own name resolving to 127.0.0.1).
// It returns the reason, or "".
func checkBrowser(r *http.Request, open bool) string {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return "cross-origin request refused: Origin " + quoteShort(o) + " is not this agent"
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return "cross-site request refused"
	}
	if open && !hostAllowed(r.Host) {
		return "Host " + quoteShort(r.Host) + " refused: an agent without a cluster secret answers only to a loopback name or an IP address"
	}
	return ""
}

// hostAllowed: "localhost", a name under .localhost, or an IP literal; with
// or without a port.
func hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	_, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil
}

func quoteShort(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// deadlineWriter moves the connection's write deadline forward with every
// write, and its read deadline with every body read (through deadlineBody).
// It unwraps for http.ResponseController.
type deadlineWriter struct {
	http.ResponseWriter
	rc          *http.ResponseController
	read, write time.Duration
	last        time.Time
}

// extend moves the deadlines forward (at most once per tenth of the read
// timeout, and a second, to keep it cheap); read says whether the read
// deadline moves too.
func (d *deadlineWriter) extend(read bool) {
	now := time.Now()
	if !d.last.IsZero() && now.Sub(d.last) < min(time.Second, d.read/10) {
		return
	}
	d.last = now
	if read {
		_ = d.rc.SetReadDeadline(now.Add(d.read))
	}
	_ = d.rc.SetWriteDeadline(now.Add(d.write))
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	n, err := d.ResponseWriter.Write(p)
	if n > 0 {
		d.extend(false)
	}
	return n, err
}

func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

type deadlineBody struct {
	io.ReadCloser
	w *deadlineWriter
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.extend(true)
	}
	return n, err
}

// connLimiter caps the open API connections. At the cap, a new connection
// closes the one that has waited longest without a request in progress (a
// fresh connection that sent nothing yet, or an idle keep-alive one); when
// every connection is busy, the new one is answered 503 and closed. So idle
// connections, however many, neither exhaust descriptors nor lock out
// clients that send requests.
type connLimiter struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[net.Conn]connEntry
}

type connEntry struct {
	busy  bool
	since time.Time
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, conns: map[net.Conn]connEntry{}}
}

// Accept returns the next connection, making room for it first.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		var victim net.Conn
		if len(l.conns) >= l.max {
			var oldest time.Time
			for vc, e := range l.conns {
				if !e.busy && (victim == nil || e.since.Before(oldest)) {
					victim, oldest = vc, e.since
				}
			}
			if victim != nil {
				delete(l.conns, victim)
			}
		}
		full := len(l.conns) >= l.max
		if !full {
			l.conns[c] = connEntry{since: time.Now()}
		}
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
		}
		if full {
			go refuse(c)
			continue
		}
		return c, nil
	}
}

// refuse answers a connection over the cap with 503 and closes it.
func refuse(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	body := `{"error":"too many connections to this agent; try again"}` + "\n"
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// track is the server's ConnState hook.
func (l *connLimiter) track(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateActive:
		if _, ok := l.conns[c]; ok {
			l.conns[c] = connEntry{busy: true, since: time.Now()}
		}
	case http.StateIdle:
		if _, ok := l.conns[c]; ok {
			l.conns[c] = connEntry{since: time.Now()}
		}
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	}
}

// open is the number of connections counted against the cap.
func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}
