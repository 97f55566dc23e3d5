// Package client submits and watches Shoal jobs and reads and writes the
// cluster's files from Go, through any agent's HTTP API, without linking
// the engine: it imports neither libp2p, memberlist nor bbolt, only the
// standard library and Shoal's leaf packages job and secret.
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
// matching ErrUnreachable when no agent answers.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"shoal.dev/shoal/job"
	"shoal.dev/shoal/secret"
)

// SubmitRequest asks for a job (POST /v1/jobs).
type SubmitRequest struct {
	// Name is the job: a built-in one, or one of the program whose
	// SHA-256 Binary names.
	Name   string            `json:"name"`
	Params map[string]string `json:"params,omitempty"`
	// Inputs are files, directories (every file below) or globs.
	Inputs []string `json:"inputs"`
	Output string   `json:"output"`
	// Reducers: 0 takes the job's default; negative is an error.
	Reducers int `json:"reducers"`
	// MaxAttempts per task: 0 takes the default (4).
	MaxAttempts int `json:"max_attempts"`
	// Replication of the output files: 0 takes the file system default.
	Replication int `json:"replication"`
	// TaskTimeout fails a task attempt that makes no progress for this
	// long, a Go duration such as "10m" or "90s": "" takes the default
	// (10m), "0" disables it; otherwise it is between 1s and 168h.
	TaskTimeout string `json:"task_timeout,omitempty"`
	// Binary, if set, is the SHA-256 (64 hex digits) of a program stored
	// at BinaryPath(Binary) that holds the job's code (a shipped job; see
	// Client.ShipProgram): the agents run Name from it, in worker
	// processes, whether or not they have a job of that name built in.
	Binary string `json:"binary,omitempty"`
	// NoSpeculativeMaps and NoSpeculativeReduces turn off backup attempts
	// of straggling maps or reduces for this job (Hadoop's
	// mapreduce.map.speculative=false, mapreduce.reduce.speculative=false).
	NoSpeculativeMaps    bool `json:"no_speculative_maps,omitempty"`
	NoSpeculativeReduces bool `json:"no_speculative_reduces,omitempty"`
	// OutputCompression compresses the output parts: "gzip" or "zstd"
	// (part-r-00000.zst), or "" / "none".
	OutputCompression string `json:"output_compression,omitempty"`
	// MaxSplitBytes bounds the splits packed from small input files, for a
	// job whose code allows it (Hadoop's CombineFileInputFormat): 0 takes
	// the default, 128 MiB; negative packs nothing.
	MaxSplitBytes int64 `json:"max_split_bytes,omitempty"`
	// MapOutputCompression compresses map output segments on their way
	// to the reducers: "s2", "zstd" or "none"; "" takes the agents'
	// default (s2: see README, Shuffle compression).
	MapOutputCompression string `json:"map_output_compression,omitempty"`
}

// Job states.
const (
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateKilled    = "killed"
)

// JobStatus is a job as an agent reports it.
type JobStatus struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Output      string       `json:"output"`
	State       string       `json:"state"`
	Error       string       `json:"error,omitempty"`
	Maps        int          `json:"maps"`
	MapsDone    int          `json:"maps_done"`
	Reducers    int          `json:"reducers"`
	ReducesDone int          `json:"reduces_done"`
	Counters    job.Counters `json:"counters"`
	SubmittedBy string       `json:"submitted_by"`
	SubmittedAt int64        `json:"submitted_at_unix_ns"`
	EndedAt     int64        `json:"ended_at_unix_ns,omitempty"`
	Binary      string       `json:"binary,omitempty"`
	// TaskStatus holds the status lines tasks' code reported, by task ID.
	TaskStatus map[string]string `json:"task_status,omitempty"`
}

// Ended reports whether the job has its final state.
func (s JobStatus) Ended() bool { return s.State != "" && s.State != StateRunning }

// FileInfo is a file of the cluster file system.
type FileInfo struct {
	Path        string `json:"path"`
	Size        int64  `json:"size"`
	ModTime     int64  `json:"mtime_unix_ns"`
	BlockSize   int64  `json:"block_size"`
	Replication int    `json:"replication"`
	Blocks      int    `json:"blocks"`
}

// Entry is one name in a directory listing.
type Entry struct {
	Name  string    `json:"name"`
	Path  string    `json:"path"`
	Dir   bool      `json:"dir"`
	File  *FileInfo `json:"file,omitempty"`
	Files int       `json:"files,omitempty"` // for a directory: files below it
	Size  int64     `json:"size"`            // for a directory: their total size
}

// PutOptions say how Put stores a file.
type PutOptions struct {
	BlockSize   int64 // 0: the agent's default
	Replication int   // 0: the agent's default
	Force       bool  // replace an existing file
}

// Query is the query string of a put of path with these options
// (PUT /v1/fs/file): what the agent's API reads them from.
func (o PutOptions) Query(path string) url.Values {
	q := url.Values{"path": {path}}
	if o.BlockSize > 0 {
		q.Set("block_size", strconv.FormatInt(o.BlockSize, 10))
	}
	if o.Replication > 0 {
		q.Set("replication", strconv.Itoa(o.Replication))
	}
	if o.Force {
		q.Set("force", "1")
	}
	return q
}

// BinaryDir is the directory where shipped programs are stored, each
// under its SHA-256 in hex.
const BinaryDir = "/.shoal/bin"

// BinaryPath is where the program whose SHA-256 is sum (hex) is stored.
func BinaryPath(sum string) string { return BinaryDir + "/" + sum }

// Error is an agent's refusal: a non-2xx answer and its message.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// ErrUnreachable is matched by the errors of calls no agent answered.
var ErrUnreachable = errors.New("cannot reach the agent")

// Client talks to one agent. Any agent serves any call.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// New returns a client of the agent at addr ("http://HOST:PORT",
// "https://…", or "HOST:PORT" for http) authenticating with token (empty
// for a cluster without a secret). It does not contact the agent.
func New(addr, token string) (*Client, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("bad agent address %q: want http://HOST:PORT", addr)
	}
	return &Client{base: u, token: token, hc: &http.Client{}}, nil
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

// Submit submits a job; the status it returns is the job's first.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (JobStatus, error) {
	var st JobStatus
	return st, c.do(ctx, "POST", "/v1/jobs", req, &st)
}

// Job returns a job's status.
func (c *Client) Job(ctx context.Context, id string) (JobStatus, error) {
	var st JobStatus
	return st, c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id), nil, &st)
}

// Jobs lists the jobs the cluster remembers, newest first.
func (c *Client) Jobs(ctx context.Context) ([]JobStatus, error) {
	var sts []JobStatus
	return sts, c.do(ctx, "GET", "/v1/jobs", nil, &sts)
}

// Kill stops a job on every node.
func (c *Client) Kill(ctx context.Context, id string) (JobStatus, error) {
	var st JobStatus
	return st, c.do(ctx, "POST", "/v1/jobs/"+url.PathEscape(id)+"/kill", nil, &st)
}

// Wait asks for the job's status every interval until it has ended or ctx
// is done, and returns its last status. A failed or killed job is no error
// of Wait's: look at State and Error.
func (c *Client) Wait(ctx context.Context, id string, interval time.Duration) (JobStatus, error) {
	t := time.NewTicker(max(interval, 10*time.Millisecond))
	defer t.Stop()
	for {
		st, err := c.Job(ctx, id)
		if err != nil || st.Ended() {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-t.C:
		}
	}
}

// Put stores r as the file path. size is r's length if known, else -1.
// Without o.Force an existing file is an *Error with status 409.
func (c *Client) Put(ctx context.Context, path string, r io.Reader, size int64, o PutOptions) (FileInfo, error) {
	req, err := c.request(ctx, "PUT", "/v1/fs/file?"+o.Query(path).Encode(), io.NopCloser(r))
	if err != nil {
		return FileInfo{}, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	var info struct {
		File FileInfo `json:"file"`
	}
	return info.File, c.send(req, &info)
}

// Open returns the file path's contents; the caller closes the reader. A
// read error means the transfer was cut.
func (c *Client) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := c.request(ctx, "GET", "/v1/fs/file?"+url.Values{"path": {path}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.roundTrip(req)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Stat returns the file path; a missing one is an *Error with status 404.
func (c *Client) Stat(ctx context.Context, path string) (FileInfo, error) {
	var info struct {
		File FileInfo `json:"file"`
	}
	return info.File, c.do(ctx, "GET", "/v1/fs/stat?"+url.Values{"path": {path}}.Encode(), nil, &info)
}

// List lists the directory path.
func (c *Client) List(ctx context.Context, path string) ([]Entry, error) {
	var es []Entry
	return es, c.do(ctx, "GET", "/v1/fs/list?"+url.Values{"path": {path}}.Encode(), nil, &es)
}

// Remove removes the file path, or with recursive everything below the
// directory path, and returns the paths removed.
func (c *Client) Remove(ctx context.Context, path string, recursive bool) ([]string, error) {
	q := url.Values{"path": {path}}
	if recursive {
		q.Set("recursive", "1")
	}
	var ri struct {
		Removed []string `json:"removed"`
	}
	return ri.Removed, c.do(ctx, "DELETE", "/v1/fs/file?"+q.Encode(), nil, &ri)
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
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", false, err
	}
	_, err = c.Put(ctx, BinaryPath(sum), f, size, PutOptions{})
	if e := (*Error)(nil); errors.As(err, &e) && e.Status == http.StatusConflict {
		return sum, false, nil // stored by someone else meanwhile: the same bytes
	}
	if err != nil {
		return "", false, err
	}
	return sum, true, nil
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

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req, out)
}

func (c *Client) send(req *http.Request, out any) error {
	resp, err := c.roundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("the agent at %s sent a malformed answer: %v", c.base, err)
	}
	return nil
}

// roundTrip sends req and turns transport failures and non-2xx answers
// into errors; on success the caller owns resp.Body.
func (c *Client) roundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		if cerr := req.Context().Err(); cerr != nil {
			return nil, fmt.Errorf("request to the agent at %s: %w", c.base, cerr)
		}
		return nil, fmt.Errorf("%w at %s", ErrUnreachable, c.base)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("the agent at %s answered %s", c.base, resp.Status)
		}
		return nil, &Error{Status: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}
