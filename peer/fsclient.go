package peer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/client"
	"shoal.dev/shoal/scheduler"
)

// PutOptions shape a client put; the light client's, so that both send
// a put's options the same way.
type PutOptions = client.PutOptions

// PutFile streams r to the file p. size is r's length if known, else -1.
func (c *Client) PutFile(ctx context.Context, p string, r io.Reader, size int64, o PutOptions) (PutInfo, error) {
	req, err := c.newRequest(ctx, "PUT", "/v1/fs/file?"+o.Query(p).Encode(), io.NopCloser(r))
	if err != nil {
		return PutInfo{}, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	var info PutInfo
	return info, c.send(req, &info)
}

// GetFile opens the file p for reading. The caller must close the reader;
// a read error means the transfer was cut.
func (c *Client) GetFile(ctx context.Context, p string) (io.ReadCloser, int64, error) {
	req, err := c.newRequest(ctx, "GET", "/v1/fs/file?"+url.Values{"path": {p}}.Encode(), nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.roundTrip(req)
	if err != nil {
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// Stat returns the file at p with its block locations.
func (c *Client) Stat(ctx context.Context, p string) (StatInfo, error) {
	var s StatInfo
	return s, c.do(ctx, "GET", "/v1/fs/stat?"+url.Values{"path": {p}}.Encode(), nil, &s)
}

// List lists the directory p.
func (c *Client) List(ctx context.Context, p string) ([]blockstore.Entry, error) {
	var es []blockstore.Entry
	return es, c.do(ctx, "GET", "/v1/fs/list?"+url.Values{"path": {p}}.Encode(), nil, &es)
}

// Glob returns the files matching pattern.
func (c *Client) Glob(ctx context.Context, pattern string) ([]blockstore.FileInfo, error) {
	var fs []blockstore.FileInfo
	return fs, c.do(ctx, "GET", "/v1/fs/glob?"+url.Values{"pattern": {pattern}}.Encode(), nil, &fs)
}

// Remove removes the file p, or everything below the directory p.
func (c *Client) Remove(ctx context.Context, p string, recursive bool) (RemoveInfo, error) {
	q := url.Values{"path": {p}}
	if recursive {
		q.Set("recursive", "1")
	}
	var ri RemoveInfo
	return ri, c.do(ctx, "DELETE", "/v1/fs/file?"+q.Encode(), nil, &ri)
}

// Metrics returns the agent's /metrics text.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	req, err := c.newRequest(ctx, "GET", "/metrics", nil)
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

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
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

// Submit submits a job.
func (c *Client) Submit(ctx context.Context, req scheduler.SubmitRequest) (scheduler.Status, error) {
	var st scheduler.Status
	return st, c.do(ctx, "POST", "/v1/jobs", req, &st)
}

// Job reports a job.
func (c *Client) Job(ctx context.Context, id string) (scheduler.Status, error) {
	var st scheduler.Status
	return st, c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id), nil, &st)
}

// Jobs lists every job, newest first.
func (c *Client) Jobs(ctx context.Context) ([]scheduler.Status, error) {
	var sts []scheduler.Status
	return sts, c.do(ctx, "GET", "/v1/jobs", nil, &sts)
}

// Kill kills a job.
func (c *Client) Kill(ctx context.Context, id string) (scheduler.Status, error) {
	var st scheduler.Status
	return st, c.do(ctx, "POST", "/v1/jobs/"+url.PathEscape(id)+"/kill", nil, &st)
}
