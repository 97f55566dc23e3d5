// Package client submits and watches Shoal jobs, reads and writes the
// cluster's files and asks after its members from Go, through any agent's
// HTTP API, without linking the engine: it imports neither libp2p,
// memberlist nor bbolt, only the standard library and Shoal's leaf
// packages job and secret. It holds the API's wire types (the agent
// answers with them) and is the client the shoal CLI uses.
//
//	token, _ := client.TokenFromSecretFile("/etc/shoal/secret")
//	c, _ := client.New("http://127.0.0.1:7470", token)
//	_, _ = c.Put(ctx, "/in/a.txt", strings.NewReader("a b a\n"), -1, client.PutOptions{})
//	st, _ := c.Submit(ctx, client.SubmitRequest{Name: "wordcount", Inputs: []string{"/in"}, Output: "/out"})
//	st, _ = c.Wait(ctx, st.ID, time.Second)
//	fmt.Println(st.State, st.Counters["REDUCE_OUTPUT_RECORDS"])
//	r, _ := c.Open(ctx, "/out/part-r-00000")
//
// Every method is safe for concurrent use. Errors are one line in Shoal's
// words: an *Error for an agent's refusal (with its HTTP status), an error
// matching ErrUnreachable when no agent answers. A call whose context has
// no deadline gets one of DefaultTimeout (reads of a file's bytes excepted).
package client

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

	"shoal.dev/shoal/secret"
)

// DefaultTimeout bounds a control call whose context has no deadline.
const DefaultTimeout = 5 * time.Minute

// Error is an agent's refusal: a non-2xx answer and its message.
type Error struct {
	Status  int
	Message string
	// Missing lists, for a refused commit, the blocks to send again.
	Missing []int
	// LowDisk: the agent had no room to take a block of a put (507).
	LowDisk bool
}

func (e *Error) Error() string { return e.Message }

// ErrUnreachable is matched by the errors of calls no agent answered.
var ErrUnreachable = errors.New("cannot reach the agent")

// Client talks to one agent. Any agent serves any call.
type Client struct {
	base  *url.URL
	token string
	roots *x509.CertPool
	hc    *http.Client
	name  string // the member's name, when known
}

// New returns a client of the agent at addr ("http://HOST:PORT",
// "https://HOST:PORT", or "HOST:PORT" for http) authenticating with token
// (empty for a cluster without a secret). An https agent's certificate is
// checked against the system's roots. It does not contact the agent.
func New(addr, token string) (*Client, error) {
	return NewTLS(addr, token, nil)
}

// NewTLS is New checking an https agent's certificate against roots (nil:
// the system's roots).
func NewTLS(addr, token string, roots *x509.CertPool) (*Client, error) {
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

// TokenFromSecretFile reads a cluster secret (as `shoal keygen` writes it)
// and returns the API token derived from it.
func TokenFromSecretFile(path string) (string, error) {
	s, err := secret.Load(path)
	if err != nil {
		return "", err
	}
	return s.APIToken(), nil
}

// At returns a client for the agent at hostport (a member's HTTP address,
// Member.HTTP) with this client's scheme, token and TLS roots.
func (c *Client) At(hostport string) (*Client, error) {
	return NewTLS(c.base.Scheme+"://"+hostport, c.token, c.roots)
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

func (c *Client) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends in (JSON, if not nil) and decodes the JSON answer into out (if
// not nil).
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
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	req, err := c.request(ctx, method, path, body)
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

// send runs req and decodes a JSON answer into out.
func (c *Client) send(req *http.Request, out any) error {
	resp, err := c.roundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if cerr := req.Context().Err(); cerr != nil {
			return c.contextError(cerr)
		}
		return fmt.Errorf("the agent at %s sent a bad or cut answer: %s", c.base, describeTransport(err))
	}
	return nil
}

// ErrorBody is the JSON body of every non-2xx answer: the agent writes it,
// Client turns it into an *Error.
type ErrorBody struct {
	Error string `json:"error"`
	// Missing answers a commit: the blocks no alive member holds.
	Missing []int `json:"missing,omitempty"`
	// LowDisk answers a block of a put (507) that this agent had no room
	// to take: another agent may.
	LowDisk bool `json:"low_disk,omitempty"`
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
		var e ErrorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("agent at %s answered %s", c.base, resp.Status)
		}
		return nil, &Error{Status: resp.StatusCode, Message: e.Error, Missing: e.Missing, LowDisk: e.LowDisk}
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
