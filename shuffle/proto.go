package shuffle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"shoal.dev/shoal/mesh"
)

// Protocol is the stream protocol ID of segment transfer.
//
// A fetch is one stream: the reducer writes one request header and closes
// its side; the map node answers with one response header and, when it
// has the segment, the segment's raw bytes. A header is a mesh control
// message (4-byte big-endian length, msgpack).
const Protocol = "/shoal/shuffle/1"

type request struct {
	Job       string `msgpack:"job"`
	Task      string `msgpack:"task"`
	Partition int    `msgpack:"part"`
}

type response struct {
	Code    string `msgpack:"code,omitempty"` // codeNotFound, codeInvalid, codeCorrupt, or "" for other errors
	Err     string `msgpack:"err,omitempty"`
	Length  int64  `msgpack:"len,omitempty"`
	Records int64  `msgpack:"recs,omitempty"`
	CRC     uint32 `msgpack:"crc,omitempty"`
}

// Error codes of responses, mapped back to sentinels.
const (
	codeNotFound = "not_found"
	codeInvalid  = "invalid"
	codeCorrupt  = "corrupt"
)

// Header size limits: requests hold two names of at most 200 bytes.
const (
	maxRequest  = 4 << 10
	maxResponse = 64 << 10
)

// headerTimeout bounds the wait for a header; idleTimeout, a stalled
// transfer of segment bytes.
const (
	headerTimeout = 30 * time.Second
	idleTimeout   = 60 * time.Second
)

const copyBuffer = 256 << 10

func errResponse(err error) response {
	switch {
	case errors.Is(err, ErrNotFound):
		return response{Code: codeNotFound, Err: err.Error()}
	case errors.Is(err, ErrInvalidName):
		return response{Code: codeInvalid, Err: err.Error()}
	case errors.Is(err, ErrCorrupt):
		return response{Code: codeCorrupt, Err: err.Error()}
	}
	return response{Err: err.Error()}
}

func (r *response) err() error {
	switch {
	case r.Code == codeNotFound:
		return fmt.Errorf("%s: %w", r.Err, ErrNotFound)
	case r.Code == codeInvalid:
		return fmt.Errorf("%s: %w", r.Err, ErrInvalidName)
	case r.Code == codeCorrupt:
		return fmt.Errorf("%s: %w", r.Err, ErrCorrupt)
	case r.Err != "":
		return errors.New(r.Err)
	case r.Length < 0 || r.Records < 0 || r.Records > r.Length/2:
		return fmt.Errorf("response claims %d records in %d bytes: %w", r.Records, r.Length, ErrCorrupt)
	}
	return nil
}

// Server serves map output segments to reducers on other nodes. Its
// counters are for /metrics.
type Server struct {
	store *Store
	log   *slog.Logger
	bufs  sync.Pool

	Served      atomic.Int64 // segments sent whole
	BytesServed atomic.Int64 // segment bytes sent
	Refused     atomic.Int64 // malformed requests
}

// NewServer returns a server of store's outputs; log may be nil.
func NewServer(store *Store, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{store: store, log: log}
	s.bufs.New = func() any { b := make([]byte, copyBuffer); return &b }
	return s
}

// Handle serves one inbound stream; it matches mesh.StreamHandler.
func (s *Server) Handle(from mesh.NodeName, st mesh.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(headerTimeout))
	var req request
	if err := mesh.ReadMsg(st, &req, maxRequest); err != nil {
		s.Refused.Add(1)
		s.log.Warn("bad shuffle request", "from", from, "err", err)
		st.Reset()
		return
	}
	f, seg, err := s.store.openSegment(req.Job, req.Task, req.Partition)
	if err != nil {
		if errors.Is(err, ErrInvalidName) {
			s.Refused.Add(1)
			s.log.Warn("bad shuffle request", "from", from, "err", err)
		} else if !errors.Is(err, ErrNotFound) {
			s.log.Error("serve map output", "job", req.Job, "task", req.Task, "partition", req.Partition, "to", from, "err", err)
		}
		mesh.WriteMsg(st, errResponse(err))
		return
	}
	defer f.Close()
	if err := mesh.WriteMsg(st, response{Length: seg.Length, Records: seg.Records, CRC: seg.CRC}); err != nil {
		st.Reset()
		return
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	n, err := io.CopyBuffer(&deadlineWriter{st: st}, io.NewSectionReader(f, seg.Offset, seg.Length), *bp)
	s.BytesServed.Add(n)
	if err != nil {
		s.log.Debug("segment send aborted", "job", req.Job, "task", req.Task, "partition", req.Partition, "to", from, "err", err)
		st.Reset()
		return
	}
	s.Served.Add(1)
}

// deadlineWriter pushes the stream's deadline forward before every write,
// so a transfer may take long but not stall.
type deadlineWriter struct{ st mesh.Stream }

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.st.SetDeadline(time.Now().Add(idleTimeout))
	return d.st.Write(p)
}

type deadlineReader struct{ st mesh.Stream }

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.st.SetDeadline(time.Now().Add(idleTimeout))
	return d.st.Read(p)
}

// Fetch opens one partition's segment of a map output on node, and returns
// its length. Reads wait at most a minute for data; ending ctx aborts the
// transfer. The reader checks the segment's checksum at its end (an error
// wrapping ErrCorrupt on a mismatch); the caller must Close it. The node
// answers ErrNotFound when it does not have the output (any more); bad
// names are ErrInvalidName, refused before dialing.
func Fetch(ctx context.Context, d mesh.Dialer, node, job, task string, partition int) (io.ReadCloser, int64, error) {
	what := fmt.Sprintf("fetch %s/%s partition %d from %s", job, task, partition, node)
	if err := checkName("job", job); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkName("task", task); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	if partition < 0 {
		return nil, 0, fmt.Errorf("%s: negative partition", what)
	}
	st, err := d.Dial(ctx, node, Protocol)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	fail := func(err error) (io.ReadCloser, int64, error) {
		stop()
		st.Reset()
		return nil, 0, fmt.Errorf("%s: %w", what, ctxErr(ctx, err))
	}
	st.SetDeadline(time.Now().Add(headerTimeout))
	if err := mesh.WriteMsg(st, request{Job: job, Task: task, Partition: partition}); err != nil {
		return fail(err)
	}
	if err := st.CloseWrite(); err != nil {
		return fail(err)
	}
	var resp response
	if err := mesh.ReadMsg(st, &resp, maxResponse); err != nil {
		return fail(err)
	}
	if err := resp.err(); err != nil {
		stop()
		st.Close()
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	return &fetchReader{
		segReader: segReader{r: &deadlineReader{st: st}, name: what, left: resp.Length, total: resp.Length, want: resp.CRC},
		ctx:       ctx,
		st:        st,
		stop:      stop,
	}, resp.Length, nil
}

// fetchReader is a segment arriving over a stream.
type fetchReader struct {
	segReader
	ctx  context.Context
	st   mesh.Stream
	stop func() bool
}

func (f *fetchReader) Read(p []byte) (int, error) {
	n, err := f.segReader.Read(p)
	if err != nil && err != io.EOF && f.ctx.Err() != nil {
		err = fmt.Errorf("%s: %w", f.name, f.ctx.Err())
		f.segReader.err = err
	}
	return n, err
}

// Close ends the stream: gracefully after the whole segment, else by a
// reset.
func (f *fetchReader) Close() error {
	f.stop()
	if f.left == 0 && f.err == nil {
		return f.st.Close()
	}
	return f.st.Reset()
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
