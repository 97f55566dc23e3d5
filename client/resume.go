package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"
)

// Defaults of a put that does not say (PutOptions zero): the agents'.
const (
	DefaultBlockSize   = 128 << 20
	DefaultReplication = 3
)

// putParallel is how many blocks a resumable put has in flight, and
// putHashers how many it hashes at once to find their owners.
const (
	putParallel = 4
	putHashers  = 2
)

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
	// The last newline of the window: read from its end backwards, so
	// that a text block costs one read of its last megabyte.
	buf := make([]byte, min(blockSize, 1<<20))
	for end := off + blockSize; end > off; {
		n := min(int64(len(buf)), end-off)
		if _, err := r.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i) + 1 - off, nil
		}
		end -= n
	}
	return blockSize, nil
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
// it cuts f into blocks itself (NextBlockLen), sends each to the agent of
// its first ring owner when list has it (else to the first agent of
// list; when every alive member owns every block, to each member's agent
// in turn, see everyOwner), and commits them. When f is a regular *os.File and the agent is
// on this host, the agent is handed the file itself (see localPuts). When an agent stops answering it
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
	// Each block goes first to the agent of its first ring owner, which
	// stores its copy as it receives it and forwards the others; through
	// any other agent it would cross the data plane once more. An owner
	// whose agent fails is not tried again in this put: the block then
	// goes through the agent in use, as every block did before.
	// stored notes block i acknowledged.
	stored := func(i int, ack BlockAck) {
		mu.Lock()
		refs[i] = BlockRef{ID: ack.ID, Size: ack.Size}
		repl = min(repl, ack.Replication)
		mu.Unlock()
		if sent != nil {
			sent(ack.Size)
		}
	}
	// putBlock sends block i to c: the file itself when c is an agent of
	// this host with a local socket, else its bytes over HTTP.
	local := newLocalPuts(f)
	putBlock := func(c *Client, i int, off, n int64, bs *blockSums) (BlockAck, error) {
		if ack, sent, err := local.put(ctx, c, p, i, off, n, o.Replication, bs); sent {
			return ack, err
		}
		return c.PutBlock(ctx, p, i, io.NewSectionReader(f, off, n), n, o.Replication)
	}
	skip := map[*Client]bool{}
	// direct sends block i to owner, the agent of its first ring owner
	// (nil: not known), unless an earlier block failed there.
	direct := func(i int, off, n int64, owner *Client, bs *blockSums) bool {
		mu.Lock()
		skipped := owner == nil || skip[owner]
		mu.Unlock()
		if skipped {
			return false
		}
		ack, err := putBlock(owner, i, off, n, bs)
		if err != nil || ack.Size != n {
			mu.Lock()
			skip[owner] = true
			mu.Unlock()
			return false
		}
		stored(i, ack)
		return true
	}
	// ownerOf finds the agent of the first ring owner of the block at
	// off..off+n, as the agent in use places it; nil when none is known.
	// The sums are those ownerAgent computed on the way (nil when the
	// block was not hashed here).
	// hashBufs holds the buffers blocks are read through to be hashed,
	// one per block being hashed.
	hashBufs := make(chan []byte, putHashers)
	for range putHashers {
		hashBufs <- make([]byte, 1<<20)
	}
	// every holds, when each alive member owns every block (no more
	// members than copies), their agents: block i then goes to the i-th
	// of them in turn, unhashed (see everyOwner).
	// A file of one block is not asked about: its one question to the
	// ring would be its block's own.
	var every []*Client
	if c, _ := ag.get(); c != nil && size > o.BlockSize {
		every = everyOwner(ctx, c, list, p, o.Replication)
	}
	ownerOf := func(i int, off, n int64, buf []byte) (*Client, *blockSums) {
		if len(every) > 0 {
			return every[i%len(every)], nil // the agent hashes it
		}
		c, _ := ag.get()
		if c == nil {
			return nil, nil
		}
		return ownerAgent(ctx, c, list, f, off, n, buf, local.summed(ctx, c, n))
	}
	send := func(i int, off, n int64, owner *Client, bs *blockSums) error {
		if direct(i, off, n, owner, bs) {
			return nil
		}
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
			ack, err := putBlock(c, i, off, n, bs)
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
			stored(i, ack)
			return nil
		}
	}

	// Each block is hashed (to find its owner), then sent. Up to
	// putHashers blocks are hashed at once and up to putParallel sent at
	// once, and hashing runs ahead of the senders by up to putHashers
	// blocks: a sender that finishes a block starts the next at once,
	// instead of first hashing it while no agent has anything to do, and
	// the first block goes out after one block's hashing.
	slots := make(chan struct{}, putParallel+putHashers) // blocks hashed or sent
	sending := make(chan struct{}, putParallel)
	wait := func(c chan struct{}) bool {
		select {
		case c <- struct{}{}:
			return true
		case <-ctx.Done():
			return false
		}
	}
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
		if !wait(slots) {
			break
		}
		var buf []byte
		select {
		case buf = <-hashBufs:
		case <-ctx.Done():
		}
		if buf == nil {
			<-slots
			break
		}
		wg.Add(1)
		go func(i int, off, n int64) {
			defer wg.Done()
			defer func() { <-slots }()
			owner, bs := ownerOf(i, off, n, buf)
			hashBufs <- buf
			if !wait(sending) {
				return
			}
			defer func() { <-sending }()
			if err := send(i, off, n, owner, bs); err != nil {
				cancel(err)
			}
		}(i, off, n)
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
				buf := <-hashBufs // all are back: nothing else is hashed now
				owner, bs := ownerOf(i, offs[i], end-offs[i], buf)
				hashBufs <- buf
				if err := send(i, offs[i], end-offs[i], owner, bs); err != nil {
					return PutInfo{}, err
				}
			}
			req.Blocks = refs
			continue
		}
		return info, err
	}
}

// everyOwner returns the agents in list of every alive member, as the
// agent c counts them, when there are no more of them than repl: each is
// then an owner of every block (the ring's first repl members of any key
// are all of them), and a block sent to any of them is stored there as
// it is received and forwarded to the others, as a block sent to its
// first owner is. The put then spreads its blocks over them in turn and
// hashes none of them to place it: the client's hash of a block cost
// about half the CLI's CPU of a put, and the agent hashes the block
// anyway. Nil when there are more members than repl, one of them has no
// agent in list, or c does not answer: blocks are then hashed to find
// their first owner. Membership is asked once per put: a member that
// joins meanwhile only makes some blocks cross the data plane once more
// (their agent forwards them to their owners), and one that dies fails
// over as a first owner does.
func everyOwner(ctx context.Context, c *Client, list []*Client, key string, repl int) []*Client {
	o, err := c.Owners(ctx, key, repl+1)
	if err != nil || len(o.Owners) == 0 || len(o.Owners) > repl {
		return nil
	}
	out := make([]*Client, 0, len(o.Owners))
	for _, name := range o.Owners {
		i := slices.IndexFunc(list, func(a *Client) bool { return a.name == name })
		if i < 0 {
			return nil
		}
		out = append(out, list[i])
	}
	return out
}

// ownerAgent returns the agent in list of the first ring owner of the
// block at off..off+n of f, as the agent c places it: the block is hashed
// here to find it, read through buf, whose length is a multiple of
// LocalSumChunk. The agent is nil when that owner is not in list, c does
// not answer, or ctx ends: the block then goes through c. The sums are
// the block's ID and, when summed, its chunk sums, computed in the same
// pass (nil when the file could not be read, or ctx ended).
func ownerAgent(ctx context.Context, c *Client, list []*Client, f io.ReaderAt, off, n int64, buf []byte, summed bool) (*Client, *blockSums) {
	h := sha256.New() // a block's ID, as the agents compute it
	var sums []byte
	if summed {
		sums = make([]byte, 0, 4*((n+LocalSumChunk-1)/LocalSumChunk))
	}
	for done := int64(0); done < n; {
		if ctx.Err() != nil {
			return nil, nil
		}
		k, err := f.ReadAt(buf[:min(int64(len(buf)), n-done)], off+done)
		h.Write(buf[:k])
		// A read is short only at the block's end (or with an error,
		// which ends the pass): the chunks line up with the reads.
		for b := buf[:k]; summed && len(b) > 0; b = b[min(len(b), LocalSumChunk):] {
			sums = binary.LittleEndian.AppendUint32(sums, crc32.Checksum(b[:min(len(b), LocalSumChunk)], castagnoli))
		}
		done += int64(k)
		if err != nil && done < n {
			return nil, nil
		}
	}
	bs := &blockSums{id: hex.EncodeToString(h.Sum(nil)), sums: sums}
	o, err := c.Owners(ctx, bs.id, 1)
	if err != nil || len(o.Owners) == 0 {
		return nil, bs
	}
	for _, a := range list {
		if a.name == o.Owners[0] {
			return a, bs
		}
	}
	return nil, bs
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FileReader reads a cluster file. It reads each block straight from the
// agent of a member that holds it (GET /v1/fs/block), which verifies its
// copy before sending it, so the bytes never cross the data plane between
// agents. When no holder's agent serves a block, it reads the rest of the
// file through one agent at a time (GET /v1/fs/file, which fetches each
// block from wherever it is): when that stream is cut (its agent died), it
// opens the same version of the file again through the next agent, from
// the byte it had reached.
type FileReader struct {
	ctx      context.Context
	ag       *agents
	path     string
	rc       io.ReadCloser
	off      int64
	size     int64
	manifest string
	pending  error

	// The direct reads: each block's place and holders' agents, the
	// block stream open (ending at bend, from bholder), and the agents
	// that failed.
	blocks  []directBlock
	brc     io.ReadCloser
	bend    int64
	bholder *Client
	bad     map[*Client]bool
	left    *Client // the last holder that failed, not yet reported
	why     error
}

// directBlock is one block of a file read straight from its holders.
type directBlock struct {
	id      string
	start   int64
	end     int64
	holders []*Client
}

// maxDirectBlocks bounds the blocks of a file read straight from their
// holders; a larger file is read through an agent.
const maxDirectBlocks = 1 << 16

// OpenFile opens the file p: where it can, each block straight from an
// agent that holds it, else through the first agent of list that answers.
// on, if not nil, is told each move to another agent and the byte offset
// it goes on from.
func OpenFile(ctx context.Context, list []*Client, p string, on Failover) (*FileReader, error) {
	if len(list) == 0 {
		return nil, errors.New("no agent to read through")
	}
	r := &FileReader{ctx: ctx, ag: &agents{list: list, on: on}, path: p, size: -1, bad: map[*Client]bool{}}
	if r.plan(list) {
		return r, nil
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// plan asks the first agent where each block of the file is, and reports
// whether every block has a holder whose agent is in list; the reads then
// go to them. Any failure leaves the file to the agent stream.
func (r *FileReader) plan(list []*Client) bool {
	c, _ := r.ag.get()
	st, err := c.StatBlocks(r.ctx, r.path)
	if err != nil || st.File.Blocks > maxDirectBlocks || len(st.Blocks) != st.File.Blocks+1 {
		return false
	}
	byName := map[string]*Client{}
	for _, a := range list {
		if a.name != "" {
			byName[a.name] = a
		}
	}
	var blocks []directBlock
	var off int64
	for _, b := range st.Blocks {
		if b.Manifest {
			continue
		}
		d := directBlock{id: b.ID, start: off, end: off + b.Size}
		for _, h := range b.Holders {
			if a := byName[h]; a != nil {
				d.holders = append(d.holders, a)
			}
		}
		if len(d.holders) == 0 {
			return false
		}
		blocks = append(blocks, d)
		off = d.end
	}
	if off != st.File.Size {
		return false
	}
	r.blocks, r.size, r.manifest = blocks, st.File.Size, st.File.Manifest
	return true
}

// readDirect reads from the block that holds r.off, opening it on the
// first of its holders' agents that serves it. ok is false when none
// does: the caller goes on through an agent.
func (r *FileReader) readDirect(p []byte) (n int, ok bool) {
	for {
		if r.brc == nil {
			if !r.openDirect() {
				return 0, false
			}
		}
		if left := r.bend - r.off; int64(len(p)) > left {
			p = p[:left]
		}
		n, err := r.brc.Read(p)
		r.off += int64(n)
		if done := r.off == r.bend; done || err != nil {
			// The block is done, or its stream failed: a later read
			// opens the next block, or the rest of this one on another
			// holder.
			if !done {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				r.fail(r.bholder, fmt.Errorf("%w: the stream was cut: %v", ErrUnreachable, err))
			}
			r.brc.Close()
			r.brc = nil
		}
		if n > 0 {
			return n, true
		}
		if r.ctx.Err() != nil {
			return 0, false
		}
	}
}

// openDirect opens the block holding r.off from r.off on, on the first
// holder's agent that serves it and has not failed.
func (r *FileReader) openDirect() bool {
	i := sort.Search(len(r.blocks), func(i int) bool { return r.blocks[i].end > r.off })
	if i == len(r.blocks) {
		return false
	}
	b := r.blocks[i]
	for _, c := range b.holders {
		if r.bad[c] {
			continue
		}
		rc, n, err := c.GetBlock(r.ctx, b.id, r.off-b.start)
		if err == nil && n == b.end-r.off {
			if r.left != nil && r.left != c && r.ag.on != nil {
				r.ag.on(r.left, c, r.off, r.why)
			}
			r.left = nil
			r.brc, r.bend, r.bholder = rc, b.end, c
			return true
		}
		if err == nil {
			rc.Close()
			err = fmt.Errorf("%s offers %d bytes of block %s from byte %d, want %d", c, n, b.id, r.off-b.start, b.end-r.off)
		}
		r.fail(c, err)
	}
	return false
}

// fail marks holder c's agent failed for the rest of the read; the next
// holder a block is read from is reported to the Failover as taking over
// from it.
func (r *FileReader) fail(c *Client, why error) {
	r.bad[c] = true
	if r.left == nil {
		r.left, r.why = c, why
	}
}

// GetBlock opens block id, held by this agent, from byte offset (GET
// /v1/fs/block). It returns the reader and the number of bytes it yields.
func (c *Client) GetBlock(ctx context.Context, id string, offset int64) (io.ReadCloser, int64, error) {
	q := url.Values{"id": {id}}
	if offset > 0 {
		q.Set("offset", strconv.FormatInt(offset, 10))
	}
	req, err := c.request(ctx, "GET", "/v1/fs/block?"+q.Encode(), nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.roundTrip(req)
	if err != nil {
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
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
	if r.blocks != nil {
		if r.off >= r.size {
			return 0, io.EOF
		}
		if n, ok := r.readDirect(p); ok {
			return n, nil
		}
		if err := r.ctx.Err(); err != nil {
			return 0, err
		}
		// No holder's agent served the block: the rest of the file goes
		// through an agent, pinned to the version planned.
		r.blocks = nil
		if err := r.open(); err != nil {
			return 0, err
		}
	}
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
	if r.brc != nil {
		r.brc.Close()
		r.brc = nil
	}
	if r.rc == nil {
		return nil
	}
	return r.rc.Close()
}
