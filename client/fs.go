package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
)

// ManifestHeader carries a file's manifest ID on a read of the file, so a
// reader cut off can go on from the same version of the file.
const ManifestHeader = "Shoal-Manifest"

// Put stores r as the file path. size is r's length if known, else -1.
// Without o.Force an existing file is an *Error with status 409. The
// agent cuts the bytes into blocks; PutLocal sends a local file's blocks
// itself and survives the agent's death.
func (c *Client) Put(ctx context.Context, path string, r io.Reader, size int64, o PutOptions) (PutInfo, error) {
	req, err := c.request(ctx, "PUT", "/v1/fs/file?"+o.Query(path).Encode(), io.NopCloser(r))
	if err != nil {
		return PutInfo{}, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	var info PutInfo
	return info, c.send(req, &info)
}

// Open returns the file path's contents; the caller closes the reader. A
// read error means the transfer was cut (OpenFile goes on through another
// agent).
func (c *Client) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	rc, _, _, err := c.OpenAt(ctx, path, 0, "")
	return rc, err
}

// OpenAt opens the file path from byte offset; manifest, when not empty,
// asks for that version of the file (a 404 if it is gone). It returns the
// reader, the number of bytes it yields and the version's manifest ID.
func (c *Client) OpenAt(ctx context.Context, path string, offset int64, manifest string) (io.ReadCloser, int64, string, error) {
	q := url.Values{"path": {path}}
	if offset > 0 {
		q.Set("offset", strconv.FormatInt(offset, 10))
	}
	if manifest != "" {
		q.Set("manifest", manifest)
	}
	req, err := c.request(ctx, "GET", "/v1/fs/file?"+q.Encode(), nil)
	if err != nil {
		return nil, 0, "", err
	}
	resp, err := c.roundTrip(req)
	if err != nil {
		return nil, 0, "", err
	}
	return resp.Body, resp.ContentLength, resp.Header.Get(ManifestHeader), nil
}

// Stat returns the file path; a missing one is an *Error with status 404.
func (c *Client) Stat(ctx context.Context, path string) (FileInfo, error) {
	st, err := c.StatBlocks(ctx, path)
	return st.File, err
}

// StatBlocks returns the file path with where each of its blocks is.
func (c *Client) StatBlocks(ctx context.Context, path string) (StatInfo, error) {
	var s StatInfo
	return s, c.do(ctx, "GET", "/v1/fs/stat?"+url.Values{"path": {path}}.Encode(), nil, &s)
}

// List lists the directory path.
func (c *Client) List(ctx context.Context, path string) ([]Entry, error) {
	var es []Entry
	return es, c.do(ctx, "GET", "/v1/fs/list?"+url.Values{"path": {path}}.Encode(), nil, &es)
}

// Glob returns the files matching pattern (path.Match syntax, '*' within
// one path component).
func (c *Client) Glob(ctx context.Context, pattern string) ([]FileInfo, error) {
	var fs []FileInfo
	return fs, c.do(ctx, "GET", "/v1/fs/glob?"+url.Values{"pattern": {pattern}}.Encode(), nil, &fs)
}

// Remove removes the file path, or with recursive everything below the
// directory path, and returns the paths removed.
func (c *Client) Remove(ctx context.Context, path string, recursive bool) ([]string, error) {
	q := url.Values{"path": {path}}
	if recursive {
		q.Set("recursive", "1")
	}
	var ri RemoveInfo
	return ri.Removed, c.do(ctx, "DELETE", "/v1/fs/file?"+q.Encode(), nil, &ri)
}

// Rename moves the file or directory src to dst (into dst when it is a
// directory).
func (c *Client) Rename(ctx context.Context, src, dst string) (RenameInfo, error) {
	var ri RenameInfo
	return ri, c.do(ctx, "POST", "/v1/fs/rename", RenameRequest{Src: src, Dst: dst}, &ri)
}

// Df reports the agent's node's capacity, free space, and the blocks it
// holds.
func (c *Client) Df(ctx context.Context) (DiskInfo, error) {
	var d DiskInfo
	return d, c.do(ctx, "GET", "/v1/fs/df", nil, &d)
}

// Conflicts lists the writes that lost to another write of the same path
// made on the other side of a partition, with where each is kept.
func (c *Client) Conflicts(ctx context.Context) ([]Conflict, error) {
	var cs []Conflict
	return cs, c.do(ctx, "GET", "/v1/fs/conflicts", nil, &cs)
}

// PutBlock sends one block of a resumable put (PUT /v1/fs/block): the
// size bytes of r, the index-th block of path, with repl copies asked.
func (c *Client) PutBlock(ctx context.Context, path string, index int, r io.Reader, size int64, repl int) (BlockAck, error) {
	q := url.Values{"path": {path}, "index": {strconv.Itoa(index)}, "replication": {strconv.Itoa(repl)}}
	req, err := c.request(ctx, "PUT", "/v1/fs/block?"+q.Encode(), io.NopCloser(r))
	if err != nil {
		return BlockAck{}, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	var ack BlockAck
	return ack, c.send(req, &ack)
}

// Commit ends a resumable put (POST /v1/fs/commit). A commit some of whose
// blocks no alive member holds fails with an *Error whose Missing lists
// them.
func (c *Client) Commit(ctx context.Context, req CommitRequest) (PutInfo, error) {
	var info PutInfo
	return info, c.do(ctx, "POST", "/v1/fs/commit", req, &info)
}

// ShipProgram stores the executable at path in the cluster as
// BinaryPath(its SHA-256), unless it is stored already, and returns the
// SHA-256 for SubmitRequest.Binary and whether it uploaded the program.
// The program must call cli.Main with the jobs it is to run.
func (c *Client) ShipProgram(ctx context.Context, path string) (sum string, uploaded bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return "", false, err
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if _, err := c.Stat(ctx, BinaryPath(sum)); err == nil {
		return sum, false, nil
	} else if e := (*Error)(nil); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		return "", false, err
	}
	_, err = PutLocal(ctx, []*Client{c}, BinaryPath(sum), f, size, PutOptions{}, nil, nil)
	if e := (*Error)(nil); errors.As(err, &e) && e.Status == http.StatusConflict {
		return sum, false, nil // stored by someone else meanwhile: the same bytes
	}
	if err != nil {
		return "", false, err
	}
	return sum, true, nil
}
