package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"shoal.dev/shoal/disk"
	"shoal.dev/shoal/mesh"
)

// Protocol is the libp2p protocol ID of block transfer.
const Protocol = "/shoal/block/1"

// Every request is one header frame, followed for "put" by the block's raw
// bytes. Every response is one header frame, followed for a successful "get"
// by the raw bytes. A frame is a 4-byte big-endian length and msgpack.
const (
	opGet      = "get"
	opPut      = "put"
	opHas      = "has"
	opHaveMany = "have"
)

// maxFrame bounds a header frame: a few dozen bytes, but a "have" request
// lists up to maxHaveIDs block IDs.
const maxFrame = 8 << 20

// maxHaveIDs bounds the IDs in one "have" request.
const maxHaveIDs = 100000

// Error codes carried in responses, mapped back to sentinels.
const (
	codeNotFound = "not_found"
	codeCorrupt  = "corrupt"
	codeFull     = "full" // Err is the holder's *disk.FullError text
)

type request struct {
	Op     string `msgpack:"op"`
	ID     ID     `msgpack:"id"`
	Offset int64  `msgpack:"off,omitempty"`
	Size   int64  `msgpack:"size,omitempty"`
	IDs    []ID   `msgpack:"ids,omitempty"`
	// Repl, on a put, is the replication the writer stores the block
	// with (0 from writers that do not say; see Store.NotePut).
	Repl int `msgpack:"repl,omitempty"`
	// Chunk and Sums, on a put, are the block's CRC32C chunk sums (see
	// SumChunk), computed by the sender from bytes that hashed to ID. A
	// receiver given them checks each chunk as it arrives instead of
	// hashing the block with SHA-256, and keeps them as its sidecar.
	// Senders that do not send them (older releases, blocks without
	// sums at hand) get the SHA-256 check; older receivers ignore them.
	Chunk int64    `msgpack:"chunk,omitempty"`
	Sums  []uint32 `msgpack:"sums,omitempty"`
}

// Limits on the chunk size of the sums a put carries: the sums of a
// block of MaxBlockSize in chunks of minSumChunk fit a frame, and a
// reader of the stored block holds one chunk of maxSumChunk in memory.
const (
	minSumChunk = 4 << 10
	maxSumChunk = 16 << 20
)

// blockSums returns the chunk sums a put request carries, nil if it
// carries none, or an error if they cannot be the sums of its block.
func (r request) blockSums() (*blockSums, error) {
	if r.Chunk == 0 && len(r.Sums) == 0 {
		return nil, nil
	}
	if err := sumsFit(r.Size, r.Chunk, len(r.Sums)); err != nil {
		return nil, fmt.Errorf("block %s: %w", r.ID.Short(), err)
	}
	return &blockSums{id: r.ID, size: r.Size, chunk: r.Chunk, crc: r.Sums}, nil
}

// sumsFit says why n chunk sums over chunks of chunk bytes cannot be
// those of a block of size bytes, or nil when they can.
func sumsFit(size, chunk int64, n int) error {
	if chunk < minSumChunk || chunk > maxSumChunk {
		return fmt.Errorf("chunk sums over chunks of %d bytes, want %d..%d", chunk, minSumChunk, maxSumChunk)
	}
	if c := chunks(size, chunk); int64(n) != c {
		return fmt.Errorf("%d chunk sums for %d chunks", n, c)
	}
	return nil
}

type response struct {
	Code string `msgpack:"code,omitempty"` // codeNotFound, codeCorrupt, codeFull or "" for other errors
	Err  string `msgpack:"err,omitempty"`
	Size int64  `msgpack:"size,omitempty"`
	Has  bool   `msgpack:"has,omitempty"`
	Have []bool `msgpack:"have,omitempty"`
	// Sizes answers "have" alongside Have: each block's length, -1 when
	// it is not stored.
	Sizes []int64 `msgpack:"sizes,omitempty"`
}

func writeFrame(w io.Writer, v any) error { return mesh.WriteMsg(w, v) }

func readFrame(r io.Reader, v any) error { return mesh.ReadMsg(r, v, maxFrame) }

func (r response) err(node string, id ID) error {
	switch {
	case r.Code == codeNotFound:
		return fmt.Errorf("%w: %s on %s", ErrNotFound, id.Short(), node)
	case r.Code == codeCorrupt:
		return fmt.Errorf("%w: %s on %s", ErrCorrupt, id.Short(), node)
	case r.Code == codeFull:
		return disk.Remote(r.Err)
	case r.Err != "":
		return fmt.Errorf("%s: %s", node, r.Err)
	}
	return nil
}

func errResponse(err error) response {
	switch {
	case errors.Is(err, ErrNotFound):
		return response{Code: codeNotFound, Err: err.Error()}
	case errors.Is(err, ErrCorrupt):
		return response{Code: codeCorrupt, Err: err.Error()}
	case errors.Is(err, disk.ErrFull):
		return response{Code: codeFull, Err: err.Error()}
	}
	return response{Err: err.Error()}
}

// headerTimeout bounds how long either side waits for a header frame.
const headerTimeout = 30 * time.Second

// idleTimeout bounds a stalled transfer of block bytes.
const idleTimeout = 60 * time.Second

// Server answers block requests from other nodes out of a local Store.
type Server struct {
	store *Store
	log   *slog.Logger
}

// NewServer returns a server for store.
func NewServer(store *Store, log *slog.Logger) *Server {
	return &Server{store: store, log: log}
}

// Handle serves one inbound stream; it matches mesh.StreamHandler.
func (s *Server) Handle(from mesh.NodeName, st mesh.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(headerTimeout))
	var req request
	if err := readFrame(st, &req); err != nil {
		s.log.Warn("bad block request", "from", from, "err", err)
		st.Reset()
		return
	}
	switch req.Op {
	case opHas:
		size, err := s.store.Size(req.ID)
		writeFrame(st, response{Has: err == nil, Size: size})
	case opHaveMany:
		if len(req.IDs) > maxHaveIDs {
			writeFrame(st, response{Err: fmt.Sprintf("%d ids in one request, limit %d", len(req.IDs), maxHaveIDs)})
			return
		}
		have := make([]bool, len(req.IDs))
		sizes := make([]int64, len(req.IDs))
		for i, id := range req.IDs {
			n, err := s.store.Size(id)
			have[i], sizes[i] = err == nil, n
			if err != nil {
				sizes[i] = -1
			}
		}
		writeFrame(st, response{Have: have, Sizes: sizes})
	case opGet:
		r, n, err := s.store.Open(req.ID, req.Offset)
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				s.log.Error("corrupt block copy quarantined", "block", req.ID.String(), "requested_by", from)
			}
			writeFrame(st, errResponse(err))
			return
		}
		defer r.Close()
		if err := writeFrame(st, response{Size: n}); err != nil {
			return
		}
		if _, err := copyWithDeadline(st, r, st); err != nil {
			if errors.Is(err, ErrCorrupt) {
				s.log.Error("corrupt block copy quarantined", "block", req.ID.String(), "requested_by", from)
			}
			s.log.Debug("block send aborted", "block", req.ID.Short(), "to", from, "err", err)
			st.Reset()
		}
	case opPut:
		if req.Size < 0 {
			writeFrame(st, response{Err: "negative size"})
			return
		}
		st.SetDeadline(time.Now().Add(idleTimeout))
		body := &deadlineReader{r: st, s: st}
		sums, err := req.blockSums()
		if err == nil {
			err = s.store.write(req.ID, body, req.Size, sums)
		}
		if err != nil {
			s.log.Warn("block put refused", "block", req.ID.Short(), "from", from, "err", err)
			// Read the rest of the block (none is left when the stream
			// broke), so that the writer, which sends it whole before it
			// reads the answer, gets the reason rather than a reset
			// stream: no room, bytes damaged in transit, bad sums.
			io.Copy(io.Discard, io.LimitReader(body, req.Size))
			writeFrame(st, errResponse(err))
			return
		}
		s.store.NotePut(req.ID, req.Repl)
		writeFrame(st, response{})
	default:
		writeFrame(st, response{Err: fmt.Sprintf("unknown op %q", req.Op)})
	}
}

// deadlineReader pushes the stream's deadline forward on every read, so a
// transfer may take long but not stall.
type deadlineReader struct {
	r io.Reader
	s mesh.Stream
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.s.SetDeadline(time.Now().Add(idleTimeout))
	return d.r.Read(p)
}

type deadlineWriter struct {
	w io.Writer
	s mesh.Stream
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.s.SetDeadline(time.Now().Add(idleTimeout))
	return d.w.Write(p)
}

func copyWithDeadline(w io.Writer, r io.Reader, s mesh.Stream) (int64, error) {
	buf := make([]byte, 256<<10)
	return io.CopyBuffer(&deadlineWriter{w: w, s: s}, r, buf)
}

// Client makes block requests to other nodes.
type Client struct {
	dial mesh.Dialer
}

// NewClient returns a client dialing through d.
func NewClient(d mesh.Dialer) *Client { return &Client{dial: d} }

// Has asks node whether it stores the block, and its size.
func (c *Client) Has(ctx context.Context, node string, id ID) (bool, int64, error) {
	st, err := c.dial.Dial(ctx, node, Protocol)
	if err != nil {
		return false, 0, err
	}
	defer st.Close()
	stopAt(ctx, st)
	if err := writeFrame(st, request{Op: opHas, ID: id}); err != nil {
		st.Reset()
		return false, 0, fmt.Errorf("has %s on %s: %w", id.Short(), node, err)
	}
	var resp response
	if err := readFrame(st, &resp); err != nil {
		st.Reset()
		return false, 0, fmt.Errorf("has %s on %s: %w", id.Short(), node, err)
	}
	return resp.Has, resp.Size, resp.err(node, id)
}

// HaveMany asks node which of ids it stores.
func (c *Client) HaveMany(ctx context.Context, node string, ids []ID) ([]bool, error) {
	have, _, err := c.haveMany(ctx, node, ids)
	return have, err
}

// SizesMany asks node for the length of each of ids it stores; -1 for
// those it does not.
func (c *Client) SizesMany(ctx context.Context, node string, ids []ID) ([]int64, error) {
	_, sizes, err := c.haveMany(ctx, node, ids)
	return sizes, err
}

func (c *Client) haveMany(ctx context.Context, node string, ids []ID) ([]bool, []int64, error) {
	have := make([]bool, 0, len(ids))
	sizes := make([]int64, 0, len(ids))
	for len(ids) > 0 {
		batch := ids[:min(len(ids), maxHaveIDs)]
		ids = ids[len(batch):]
		st, err := c.dial.Dial(ctx, node, Protocol)
		if err != nil {
			return nil, nil, err
		}
		stopAt(ctx, st)
		var resp response
		err = writeFrame(st, request{Op: opHaveMany, IDs: batch})
		if err == nil {
			err = readFrame(st, &resp)
		}
		st.Close()
		if err == nil {
			err = resp.err(node, ID{})
		}
		if err == nil && (len(resp.Have) != len(batch) || len(resp.Sizes) != len(batch)) {
			err = fmt.Errorf("%s answered %d of %d", node, len(resp.Have), len(batch))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("have on %s: %w", node, err)
		}
		have = append(have, resp.Have...)
		sizes = append(sizes, resp.Sizes...)
	}
	return have, sizes, nil
}

// Put sends size bytes of r to node as block id. The node verifies them.
func (c *Client) Put(ctx context.Context, node string, id ID, r io.Reader, size int64) error {
	return c.put(ctx, node, id, r, size, 0, nil)
}

// PutFor is Put of a copy of a block written with replication repl, which
// the node remembers for a while (Store.NotePut).
func (c *Client) PutFor(ctx context.Context, node string, id ID, r io.Reader, size int64, repl int) error {
	return c.put(ctx, node, id, r, size, repl, nil)
}

// put is PutFor with the block's chunk sums, if sums is not nil: sums
// computed from bytes that hashed to id, which the node checks the bytes
// against as they arrive instead of hashing them again.
func (c *Client) put(ctx context.Context, node string, id ID, r io.Reader, size int64, repl int, sums *blockSums) error {
	st, err := c.dial.Dial(ctx, node, Protocol)
	if err != nil {
		return err
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	st.SetDeadline(time.Now().Add(headerTimeout))
	req := request{Op: opPut, ID: id, Size: size, Repl: repl}
	if sums != nil && sums.id == id && sums.size == size {
		req.Chunk, req.Sums = sums.chunk, sums.crc
	}
	if err := writeFrame(st, req); err != nil {
		st.Reset()
		return fmt.Errorf("put %s on %s: %w", id.Short(), node, err)
	}
	if _, err := copyWithDeadline(st, io.LimitReader(r, size), st); err != nil {
		st.Reset()
		return fmt.Errorf("put %s on %s: %w", id.Short(), node, ctxErr(ctx, err))
	}
	if err := st.CloseWrite(); err != nil {
		return fmt.Errorf("put %s on %s: %w", id.Short(), node, err)
	}
	st.SetDeadline(time.Now().Add(headerTimeout))
	var resp response
	if err := readFrame(st, &resp); err != nil {
		return fmt.Errorf("put %s on %s: %w", id.Short(), node, ctxErr(ctx, err))
	}
	if resp.Code == codeCorrupt && resp.Err != "" {
		// Say what the node found ("bytes 65536 to 131072 fail the
		// checksum their sender sent (damaged in transit)").
		return fmt.Errorf("%w: %s refused %s: %s", ErrCorrupt, node, id.Short(), strings.TrimPrefix(resp.Err, ErrCorrupt.Error()+": "+id.Short()+": "))
	}
	return resp.err(node, id)
}

// Get opens block id on node from offset. The reader yields the returned
// number of bytes; the caller verifies them and must Close it.
func (c *Client) Get(ctx context.Context, node string, id ID, offset int64) (io.ReadCloser, int64, error) {
	st, err := c.dial.Dial(ctx, node, Protocol)
	if err != nil {
		return nil, 0, err
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	st.SetDeadline(time.Now().Add(headerTimeout))
	if err := writeFrame(st, request{Op: opGet, ID: id, Offset: offset}); err != nil {
		stop()
		st.Reset()
		return nil, 0, fmt.Errorf("get %s from %s: %w", id.Short(), node, err)
	}
	st.CloseWrite()
	var resp response
	if err := readFrame(st, &resp); err != nil {
		stop()
		st.Reset()
		return nil, 0, fmt.Errorf("get %s from %s: %w", id.Short(), node, ctxErr(ctx, err))
	}
	if err := resp.err(node, id); err != nil {
		stop()
		st.Close()
		return nil, 0, err
	}
	return &blockReader{st: st, stop: stop, left: resp.Size}, resp.Size, nil
}

type blockReader struct {
	st   mesh.Stream
	stop func() bool
	left int64
}

func (b *blockReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	b.st.SetDeadline(time.Now().Add(idleTimeout))
	n, err := b.st.Read(p)
	b.left -= int64(n)
	if errors.Is(err, io.EOF) && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if b.left == 0 && errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

func (b *blockReader) Close() error {
	b.stop()
	if b.left > 0 {
		return b.st.Reset()
	}
	return b.st.Close()
}

// stopAt resets st when ctx ends, for short exchanges.
func stopAt(ctx context.Context, st mesh.Stream) {
	if d, ok := ctx.Deadline(); ok {
		st.SetDeadline(d)
	} else {
		st.SetDeadline(time.Now().Add(headerTimeout))
	}
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
