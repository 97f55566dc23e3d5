package client

import (
	"context"
	"io"
	"net/url"
	"strconv"
)

// Health calls GET /v1/health.
func (c *Client) Health(ctx context.Context) (HealthInfo, error) {
	var h HealthInfo
	return h, c.do(ctx, "GET", "/v1/health", nil, &h)
}

// Members lists the cluster's members as the agent sees them.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var m []Member
	return m, c.do(ctx, "GET", "/v1/members", nil, &m)
}

// Owners returns the n members the ring places key on.
func (c *Client) Owners(ctx context.Context, key string, n int) (OwnersInfo, error) {
	var o OwnersInfo
	q := url.Values{"key": {key}, "n": {strconv.Itoa(n)}}
	return o, c.do(ctx, "GET", "/v1/ring/owners?"+q.Encode(), nil, &o)
}

// Ping has the agent ping node over the data plane.
func (c *Client) Ping(ctx context.Context, node string) (PingInfo, error) {
	var p PingInfo
	return p, c.do(ctx, "POST", "/v1/p2p/ping", PingRequest{Node: node}, &p)
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

// ConsoleLink asks the agent for a one-time console login link.
func (c *Client) ConsoleLink(ctx context.Context) (ConsoleLink, error) {
	var l ConsoleLink
	return l, c.do(ctx, "POST", "/v1/ui/link", nil, &l)
}

// Metrics returns the agent's /metrics text.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	req, err := c.request(ctx, "GET", "/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.roundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
