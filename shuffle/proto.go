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

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

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
	// Codec asks for the segment compressed (CodecS2, CodecZstd); a
	// server that does not know it, or an older one, sends it plain.
	Codec string `msgpack:"codec,omitempty"`
}

type response struct {
	Code    string `msgpack:"code,omitempty"` // codeNotFound, codeInvalid, codeCorrupt, or "" for other errors
	Err     string `msgpack:"err,omitempty"`
	Length  int64  `msgpack:"len,omitempty"`
	Records int64  `msgpack:"recs,omitempty"`
	CRC     uint32 `msgpack:"crc,omitempty"`
	// Codec is how the segment's bytes follow: "" plain, else compressed
	// with it as one stream. Length, Records and CRC are of the plain
	// bytes either way.
	Codec string `msgpack:"codec,omitempty"`
}

// The codecs the transport may compress a segment with, on request.
const (
	// CodecS2 is klauspost's S2 (Snappy's successor): fast, modest ratio.
	CodecS2 = "s2"
	// CodecZstd is Zstandard at its fastest level.
	CodecZstd = "zstd"
)

// ValidCodec reports whether c is "" (plain) or a codec the transport
// knows.
func ValidCodec(c string) bool { return c == "" || c == CodecS2 || c == CodecZstd }

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

	// SameHost, if set, reports whether a stream joins two processes on
	// one host (p2p.SameHost). A segment asked for compressed is then
	// sent plain all the same, and the response says so: its bytes cross
	// no network, and compressing them cost terasort's three agents on
	// one 2-core host about 15% of their CPU. Set it before serving.
	SameHost func(mesh.Stream) bool

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
	resp := response{Length: seg.Length, Records: seg.Records, CRC: seg.CRC}
	if req.Codec != "" && ValidCodec(req.Codec) && (s.SameHost == nil || !s.SameHost(st)) {
		resp.Codec = req.Codec
	}
	if err := mesh.WriteMsg(st, resp); err != nil {
		st.Reset()
		return
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	var dst io.Writer = &deadlineWriter{st: st}
	zw, err := compressor(resp.Codec, dst)
	if err != nil {
		st.Reset()
		return
	}
	if zw != nil {
		dst = zw
	}
	n, err := io.CopyBuffer(dst, io.NewSectionReader(f, seg.Offset, seg.Length), *bp)
	if err == nil && zw != nil {
		err = zw.Close()
	}
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

type deadlineReader struct {
	st   mesh.Stream
	wire *atomic.Int64 // if set, counts the bytes read
	err  error         // the first error other than EOF
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.st.SetDeadline(time.Now().Add(idleTimeout))
	n, err := d.st.Read(p)
	if d.wire != nil {
		d.wire.Add(int64(n))
	}
	if err != nil && err != io.EOF && d.err == nil {
		d.err = err
	}
	return n, err
}

// compressor returns a writer compressing into w with codec, or nil for
// "" (plain).
func compressor(codec string, w io.Writer) (io.WriteCloser, error) {
	switch codec {
	case "":
		return nil, nil
	case CodecS2:
		return s2.NewWriter(w, s2.WriterConcurrency(1)), nil
	case CodecZstd:
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
	}
	return nil, fmt.Errorf("unknown shuffle codec %q", codec)
}

// decompressor returns a reader of r's bytes decompressed with codec, or
// nil for "" (plain). A stream that does not decode is reported as
// corrupt.
func decompressor(codec string, r *deadlineReader) (io.ReadCloser, error) {
	switch codec {
	case "":
		return nil, nil
	case CodecS2:
		return &corruptOnError{r: s2.NewReader(r), src: r, close: func() {}}, nil
	case CodecZstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return &corruptOnError{r: zr, src: r, close: zr.Close}, nil
	}
	return nil, fmt.Errorf("the server sent codec %q: %w", codec, ErrCorrupt)
}

// corruptOnError marks a decoder's errors as ErrCorrupt, unless the
// stream under it failed (that error is passed on as it is); its Close
// releases the decoder.
type corruptOnError struct {
	r     io.Reader
	src   *deadlineReader
	close func()
}

func (c *corruptOnError) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	switch {
	case err == nil || err == io.EOF:
	case c.src.err != nil:
		err = c.src.err
	case !errors.Is(err, ErrCorrupt):
		err = fmt.Errorf("compressed segment: %w (%w)", ErrCorrupt, err)
	}
	return n, err
}

func (c *corruptOnError) Close() error { c.close(); return nil }

// Fetch opens one partition's segment of a map output on node, and returns
// its length. Reads wait at most a minute for data; ending ctx aborts the
// transfer. The reader checks the segment's checksum at its end (an error
// wrapping ErrCorrupt on a mismatch); the caller must Close it. The node
// answers ErrNotFound when it does not have the output (any more); bad
// names are ErrInvalidName, refused before dialing.
func Fetch(ctx context.Context, d mesh.Dialer, node, job, task string, partition int) (io.ReadCloser, int64, error) {
	return FetchWith(ctx, d, node, job, task, partition, FetchOptions{})
}

// FetchOptions tune FetchWith.
type FetchOptions struct {
	// Codec asks the server to compress the segment on the wire
	// (CodecS2, CodecZstd; "" for none). The reader returns the plain
	// bytes whatever the server did.
	Codec string
	// Wire, if set, is added the bytes read from the stream (compressed
	// or not), as they are read.
	Wire *atomic.Int64
}

// FetchWith is Fetch with options.
func FetchWith(ctx context.Context, d mesh.Dialer, node, job, task string, partition int, o FetchOptions) (io.ReadCloser, int64, error) {
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
	if !ValidCodec(o.Codec) {
		return fail(fmt.Errorf("unknown shuffle codec %q", o.Codec))
	}
	if err := mesh.WriteMsg(st, request{Job: job, Task: task, Partition: partition, Codec: o.Codec}); err != nil {
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
	dr := &deadlineReader{st: st, wire: o.Wire}
	var src io.Reader = dr
	zr, err := decompressor(resp.Codec, dr)
	if err != nil {
		return fail(err)
	}
	if zr != nil {
		src = zr
	}
	return &fetchReader{
		segReader: segReader{r: src, name: what, left: resp.Length, total: resp.Length, want: resp.CRC},
		ctx:       ctx,
		st:        st,
		stop:      stop,
		zr:        zr,
	}, resp.Length, nil
}

// fetchReader is a segment arriving over a stream.
type fetchReader struct {
	segReader
	ctx  context.Context
	st   mesh.Stream
	stop func() bool
	zr   io.ReadCloser // the decompressor, if the segment came compressed
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
	if f.zr != nil {
		f.zr.Close()
	}
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
