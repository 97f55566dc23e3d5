package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Defaults of a put that does not say (PutOptions zero): the agents'.
const (
	DefaultBlockSize   = 128 << 20
	DefaultReplication = 3
)

// putParallel is how many blocks a resumable put has in flight.
const putParallel = 4

// NextBlockLen returns the length of the block that starts at off in a
// file of total bytes read through r, by the Splitter's rule: at most
// blockSize bytes, ending after the last newline among them, unless the
// rest of the file fits in the block or the window holds no newline.
func NextBlockLen(r io.ReaderAt, off, total, blockSize int64) (int64, error) {
	if off >= total {
		return 0, io.EOF
	}
	if total-off < blockSize {
		return total - off, nil
	}
	buf := make([]byte, min(blockSize, 1<<20))
	cut := int64(-1)
	for pos := off; pos < off+blockSize; {
		n := min(int64(len(buf)), off+blockSize-pos)
		if _, err := r.ReadAt(buf[:n], pos); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			cut = pos + int64(i) + 1 - off
		}
		pos += n
	}
	if cut < 0 {
		return blockSize, nil
	}
	return cut, nil
}

// Failover is told when a client moves from one agent to the next: the one
// it leaves, the next, where it goes on (a block index for a put, a byte
// offset for a read), and why: an error wrapping ErrUnreachable when the
// agent stopped answering, or the agent's own *Error with LowDisk when
// it had no room to take a block of a put. It may be called from several
// goroutines, one at a time.
type Failover func(from, to *Client, at int64, why error)

// agents is the list of agents a client may use, in order, and the one in
// use; safe for concurrent use.
type agents struct {
	mu   sync.Mutex
	list []*Client
	cur  int
	on   Failover
}

// get returns the agent in use and its place in the list; nil when every
// agent has stopped answering.
func (a *agents) get() (*Client, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur >= len(a.list) {
		return nil, a.cur
	}
	return a.list[a.cur], a.cur
}

// failed moves past the agent at place i, unless another caller did
// already.
func (a *agents) failed(i int, at int64, why error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur != i {
		return
	}
	a.cur++
	if a.cur < len(a.list) && a.on != nil {
		a.on(a.list[i], a.list[a.cur], at, why)
	}
}

func (a *agents) last() *Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.list[min(a.cur, len(a.list))-1]
}

// PutLocal stores the size bytes of f as the file p with the resumable put:
// it cuts f into blocks itself (NextBlockLen), sends each to the
// first agent of list, and commits them. When an agent stops answering it
// goes on through the next one, from the first block not acknowledged: an
// acknowledged block is never sent again, unless no alive member holds it
// any more (the commit says so). sent, if not nil, is told the bytes of
// each acknowledged block. Nothing is visible until the commit succeeds.
func PutLocal(ctx context.Context, list []*Client, p string, f io.ReaderAt, size int64, o PutOptions, sent func(int64), on Failover) (PutInfo, error) {
	if len(list) == 0 {
		return PutInfo{}, errors.New("no agent to put through")
	}
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.Replication == 0 {
		o.Replication = DefaultReplication
	}
	ag := &agents{list: list, on: on}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		mu     sync.Mutex
		lowErr error // the last agent that had no room for a block
		refs   []BlockRef
		offs   []int64
		repl   = o.Replication
	)
	send := func(i int, off, n int64) error {
		for {
			c, place := ag.get()
			if c == nil {
				mu.Lock()
				low := lowErr
				mu.Unlock()
				if low != nil {
					return fmt.Errorf("put %s: no agent had room to take block %d (the last said: %w); nothing was stored visibly", p, i, low)
				}
				return fmt.Errorf("put %s: every member stopped answering (the last was %s) before block %d was stored; nothing was stored visibly: put again once the cluster is back", p, ag.last(), i)
			}
			ack, err := c.PutBlock(ctx, p, i, io.NewSectionReader(f, off, n), n, o.Replication)
			if errors.Is(err, ErrUnreachable) && ctx.Err() == nil {
				ag.failed(place, int64(i), err)
				continue
			}
			var ae *Error
			if errors.As(err, &ae) && ae.LowDisk && ctx.Err() == nil {
				// The agent has no room to spool the block: the next
				// member may. If none has, the last one's words stand.
				mu.Lock()
				lowErr = err
				mu.Unlock()
				ag.failed(place, int64(i), err)
				continue
			}
			if err != nil {
				return err
			}
			if ack.Size != n {
				return fmt.Errorf("put %s: %s stored %d bytes of block %d, want %d", p, c, ack.Size, i, n)
			}
			mu.Lock()
			refs[i] = BlockRef{ID: ack.ID, Size: ack.Size}
			repl = min(repl, ack.Replication)
			mu.Unlock()
			if sent != nil {
				sent(n)
			}
			return nil
		}
	}

	sem := make(chan struct{}, putParallel)
	var wg sync.WaitGroup
	for off, i := int64(0), 0; off < size; i++ {
		n, err := NextBlockLen(f, off, size, o.BlockSize)
		if err != nil {
			cancel(fmt.Errorf("put %s: reading the local file: %w", p, err))
			break
		}
		mu.Lock()
		refs = append(refs, BlockRef{})
		offs = append(offs, off)
		mu.Unlock()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int, off int64) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := send(i, off, n); err != nil {
				cancel(err)
			}
		}(i, off)
		off += n
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return PutInfo{}, err
	}

	req := CommitRequest{Path: p, BlockSize: o.BlockSize, Replication: repl, Overwrite: o.Force, Blocks: refs}
	for round := 0; ; round++ {
		c, place := ag.get()
		if c == nil {
			return PutInfo{}, fmt.Errorf("put %s: every member stopped answering (the last was %s) before the file was committed; nothing was stored visibly: put again once the cluster is back", p, ag.last())
		}
		info, err := c.Commit(ctx, req)
		if errors.Is(err, ErrUnreachable) && ctx.Err() == nil {
			ag.failed(place, int64(len(refs)), err)
			continue
		}
		var ae *Error
		if errors.As(err, &ae) && len(ae.Missing) > 0 && round < 3 {
			// Blocks whose copies all went down with a node: send them again.
			for _, i := range ae.Missing {
				if i < 0 || i >= len(refs) {
					return PutInfo{}, fmt.Errorf("put %s: %s asked again for block %d of %d", p, c, i, len(refs))
				}
				end := size
				if i+1 < len(offs) {
					end = offs[i+1]
				}
				if err := send(i, offs[i], end-offs[i]); err != nil {
					return PutInfo{}, err
				}
			}
			req.Blocks = refs
			continue
		}
		return info, err
	}
}

// FileReader reads a cluster file through one agent at a time: when the
// stream is cut (its agent died), it opens the same version of the file
// again through the next agent, from the byte it had reached.
type FileReader struct {
	ctx      context.Context
	ag       *agents
	path     string
	rc       io.ReadCloser
	off      int64
	size     int64
	manifest string
	pending  error
}

// OpenFile opens the file p through the first agent of list that answers.
// on, if not nil, is told each move to another agent and the byte offset
// it goes on from.
func OpenFile(ctx context.Context, list []*Client, p string, on Failover) (*FileReader, error) {
	if len(list) == 0 {
		return nil, errors.New("no agent to read through")
	}
	r := &FileReader{ctx: ctx, ag: &agents{list: list, on: on}, path: p, size: -1}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// Size is the file's length.
func (r *FileReader) Size() int64 { return r.size }

// open opens the file from r.off through the agent in use, moving on past
// agents that do not answer.
func (r *FileReader) open() error {
	for {
		c, place := r.ag.get()
		if c == nil {
			if r.size < 0 {
				return fmt.Errorf("read %s: no member answered (the last tried was %s); check `shoal members`", r.path, r.ag.last())
			}
			return fmt.Errorf("read %s: the transfer was cut at byte %d of %d and no other member could go on (the last tried was %s); read it again once the cluster is back", r.path, r.off, r.size, r.ag.last())
		}
		rc, n, m, err := c.OpenAt(r.ctx, r.path, r.off, r.manifest)
		if errors.Is(err, ErrUnreachable) && r.ctx.Err() == nil {
			r.ag.failed(place, r.off, err)
			continue
		}
		if err != nil {
			return err
		}
		if r.size < 0 {
			r.size, r.manifest = n, m
		} else if n != r.size-r.off {
			rc.Close()
			return fmt.Errorf("read %s: %s offers %d bytes from byte %d, want %d", r.path, c, n, r.off, r.size-r.off)
		}
		r.rc = rc
		return nil
	}
}

// Read reads the file, going on through another agent when the stream is
// cut.
func (r *FileReader) Read(p []byte) (int, error) {
	for {
		if r.pending == nil {
			if r.off >= r.size && r.size >= 0 {
				return 0, io.EOF
			}
			n, err := r.rc.Read(p)
			r.off += int64(n)
			if errors.Is(err, io.EOF) && r.off == r.size {
				err = nil
			}
			if n > 0 {
				r.pending = err
				return n, nil
			}
			if err == nil {
				continue
			}
			r.pending = err
		}
		if r.ctx.Err() != nil {
			return 0, r.ctx.Err()
		}
		// The stream was cut short: go on through the next agent.
		cut := fmt.Errorf("%w: the stream was cut: %v", ErrUnreachable, r.pending)
		r.pending = nil
		r.rc.Close()
		_, place := r.ag.get()
		r.ag.failed(place, r.off, cut)
		if err := r.open(); err != nil {
			return 0, err
		}
	}
}

// Close closes the current stream.
func (r *FileReader) Close() error {
	if r.rc == nil {
		return nil
	}
	return r.rc.Close()
}
