package peer

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrUnreachable is returned by Client calls when no agent answers at the
// client's address.
var ErrUnreachable = errors.New("cannot reach the agent")

// Client calls a node's HTTP API.
type Client struct {
	base  *url.URL
	token string
	roots *x509.CertPool
	hc    *http.Client
	name  string // the member's name, when known
}

// NewClient returns a client for the agent at addr ("http://HOST:PORT",
// "https://HOST:PORT", or "HOST:PORT" for http), authenticating with token
// (may be empty). An https agent's certificate is checked against the
// system's roots.
func NewClient(addr, token string) (*Client, error) {
	return NewClientTLS(addr, token, nil)
}

// NewClientTLS is NewClient checking an https agent's certificate against
// roots (nil: the system's roots).
func NewClientTLS(addr, token string, roots *x509.CertPool) (*Client, error) {
	raw := addr
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("bad agent address %q: want http://HOST:PORT or https://HOST:PORT", addr)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return nil, fmt.Errorf("bad agent address %q: want http://HOST:PORT", addr)
	} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return nil, fmt.Errorf("bad agent address %q: bad port", addr)
	}
	u.Path = ""
	hc := &http.Client{}
	if roots != nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		hc.Transport = t
	}
	return &Client{base: u, token: token, roots: roots, hc: hc}, nil
}

// At returns a client for the agent at hostport (a member's HTTP address)
// with this client's scheme, token and TLS roots.
func (c *Client) At(hostport string) (*Client, error) {
	return NewClientTLS(c.base.Scheme+"://"+hostport, c.token, c.roots)
}

// Addr is the agent's base URL.
func (c *Client) Addr() string { return c.base.String() }

// Named returns a copy of the client that knows its agent's member name.
func (c *Client) Named(name string) *Client {
	cc := *c
	cc.name = name
	return &cc
}

// String names the agent for messages: "node2 (http://127.0.0.1:7471)", or
// its address when its name is not known.
func (c *Client) String() string {
	if c.name == "" {
		return c.Addr()
	}
	return c.name + " (" + c.Addr() + ")"
}

// Health calls GET /v1/health.
func (c *Client) Health(ctx context.Context) (HealthInfo, error) {
	var h HealthInfo
	return h, c.do(ctx, "GET", "/v1/health", nil, &h)
}

// Members calls GET /v1/members.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var m []Member
	return m, c.do(ctx, "GET", "/v1/members", nil, &m)
}

// Owners calls GET /v1/ring/owners.
func (c *Client) Owners(ctx context.Context, key string, n int) (OwnersInfo, error) {
	var o OwnersInfo
	q := url.Values{"key": {key}, "n": {strconv.Itoa(n)}}
	return o, c.do(ctx, "GET", "/v1/ring/owners?"+q.Encode(), nil, &o)
}

// Ping calls POST /v1/p2p/ping: the agent pings node over the data plane.
func (c *Client) Ping(ctx context.Context, node string) (PingInfo, error) {
	var p PingInfo
	return p, c.do(ctx, "POST", "/v1/p2p/ping", PingRequest{Node: node}, &p)
}

// APIError is an error the agent answered with.
type APIError struct {
	Status  int
	Message string
	// Missing lists, for a refused commit, the blocks to send again.
	Missing []int
	// LowDisk: the agent had no room to take a block of a put (507).
	LowDisk bool
}

func (e *APIError) Error() string { return e.Message }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
	}
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if out == nil {
		resp, err := c.roundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	return c.send(req, out)
}

// roundTrip sends req and turns transport failures and non-2xx answers into
// errors; on success the caller owns resp.Body.
func (c *Client) roundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		if cerr := req.Context().Err(); cerr != nil {
			return nil, c.contextError(cerr)
		}
		return nil, fmt.Errorf("%w at %s: %s (is `shoal agent` running there? set --addr or SHOAL_ADDR)", ErrUnreachable, c.base, describeTransport(err))
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e apiError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("agent at %s answered %s", c.base, resp.Status)
		}
		return nil, &APIError{Status: resp.StatusCode, Message: e.Error, Missing: e.Missing, LowDisk: e.LowDisk}
	}
	return resp, nil
}

// ctxError is a context's end in Shoal's words; errors.Is still finds
// context.DeadlineExceeded or context.Canceled.
type ctxError struct {
	msg string
	err error
}

func (e *ctxError) Error() string { return e.msg }
func (e *ctxError) Unwrap() error { return e.err }

func (c *Client) contextError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &ctxError{msg: fmt.Sprintf("the agent at %s did not answer in time", c.base), err: err}
	}
	return &ctxError{msg: "interrupted", err: err}
}

// describeTransport says what went wrong with a connection in words a
// user reads, not Go's ("EOF", "connection reset by peer", "i/o timeout").
func describeTransport(err error) string {
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var nerr net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection closed before a whole answer came (is it a Shoal agent? one with TLS needs https://)"
	case errors.Is(err, syscall.ECONNRESET):
		return "the connection was cut (the agent or the network reset it)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing listens there (connection refused)"
	case errors.Is(err, syscall.EPIPE):
		return "the connection was closed while sending"
	case errors.As(err, &uerr):
		return "its TLS certificate is signed by an authority this client does not trust (pass --ca-cert)"
	case errors.As(err, &herr):
		return "its TLS certificate is not for this address: " + herr.Error()
	case errors.As(err, &nerr) && nerr.Timeout():
		return "no answer in time"
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "it speaks plain HTTP: use http://"
	case strings.Contains(err.Error(), "malformed HTTP response"):
		return "it does not speak HTTP (an agent with TLS needs https://)"
	}
	return rootCause(err).Error()
}

// rootCause strips url.Error and net.OpError wrapping down to the syscall
// message, so a user reads "connection refused" not three layers of Go.
func rootCause(err error) error {
	for {
		switch e := err.(type) {
		case *url.Error:
			err = e.Err
		case *net.OpError:
			err = e.Err
		default:
			return err
		}
	}
}

// Drain calls POST /v1/drain: the agent starts handing its blocks to the
// other members, and leaves when they hold them. force drains even when a
// file asks for more copies than the members that would remain.
func (c *Client) Drain(ctx context.Context, force bool) (DrainInfo, error) {
	var d DrainInfo
	path := "/v1/drain"
	if force {
		path += "?force=1"
	}
	return d, c.do(ctx, "POST", path, nil, &d)
}

// DrainStatus calls GET /v1/drain.
func (c *Client) DrainStatus(ctx context.Context) (DrainInfo, error) {
	var d DrainInfo
	return d, c.do(ctx, "GET", "/v1/drain", nil, &d)
}
