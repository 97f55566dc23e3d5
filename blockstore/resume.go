package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// MaxBlockSize is the largest block size a file may have.
const MaxBlockSize = 2 << 30

// MaxFileBlocks bounds the blocks of one file, so its manifest stays under
// maxManifest.
const MaxFileBlocks = 1 << 20

// A resumable put is driven by the client, which cuts the file itself:
//
//  1. it cuts the file into blocks with client.NextBlockLen (the Splitter's rule),
//  2. sends each block to any agent (PutBlock), which stores it through the
//     write pipeline and acknowledges its ID and length,
//  3. and commits the ordered list of acknowledged blocks to any agent
//     (Commit), which checks that every block is held by an alive member,
//     writes the manifest and only then the file record.
//
// An agent that dies costs only the blocks it had not acknowledged: the
// client sends those, and the commit, to another member. Blocks are
// content-addressed, so a block sent twice is stored once.

// BlockAck acknowledges one block of a resumable put: its ID and length,
// how many copies were stored, and the replication the agent applied (the
// asked one, capped at the alive members).
type BlockAck struct {
	ID          ID    `json:"id"`
	Size        int64 `json:"size"`
	Copies      int   `json:"copies"`
	Replication int   `json:"replication"`
}

// PutBlock stores one block of a resumable put: the size bytes of r, the
// index-th block of file (named in logs and errors only), with repl
// copies asked. It spools and hashes the bytes, then writes them through
// the write pipeline; when this node is one of the block's targets, the
// spool itself becomes its copy here (Store.Link), so the bytes are
// written to this disk once. It is ReceiveBlock and then its release.
func (fs *FS) PutBlock(ctx context.Context, file string, index int, r io.Reader, size int64, repl int) (BlockAck, error) {
	ack, release, err := fs.ReceiveBlock(ctx, file, index, r, size, repl)
	if err != nil {
		return BlockAck{}, err
	}
	release()
	return ack, nil
}

// ReceiveBlock is PutBlock for a caller that answers its client before
// the spool is cleaned up. When it returns without error the block is
// stored as acknowledged, but the spool file still has its name in the
// store's tmp dir; release (call it once) closes the spool and removes
// that name. Removing a name changes the tmp dir, which every spool of
// this node changes too, and a file system with a journal may make the
// change wait for the commit in progress: on ext4 under a put's load
// that took 30–150 ms per block, as long as an eighth of the block's
// transfer, for nothing the client needs. On error there is nothing to
// release.
func (fs *FS) ReceiveBlock(ctx context.Context, file string, index int, r io.Reader, size int64, repl int) (ack BlockAck, release func(), err error) {
	return fs.receive(ctx, file, index, r, size, repl, nil)
}

// ErrFileChanged fails a block handed over by a client on this host whose
// bytes, as read here, are not the ones the client hashed: the file
// changed during the put.
var ErrFileChanged = errors.New("the file changed while it was put")

// ErrBadSums fails a block whose chunk sums cannot be its own.
var ErrBadSums = errors.New("bad chunk sums")

// ReceiveSummedBlock is ReceiveBlock for a block whose ID and CRC32C
// sums (one per chunk bytes, see SumChunk) its client computed in one
// pass over its bytes: a client on this host that handed over its file
// (the local socket). Each chunk is checked against its sum as it is
// read, before it is written, and the block is not hashed again: the
// agent takes the client's word for the ID, as a replica's receiver takes
// its writer's (Store.write). Only the agent's own user can reach the
// local socket, and it could write the store's files itself. A chunk
// that fails its sum fails the block with ErrFileChanged. Sums that
// cannot be the block's (another count than its chunks, a chunk size
// outside 4 KiB..16 MiB, no ID) are refused with ErrBadSums.
func (fs *FS) ReceiveSummedBlock(ctx context.Context, file string, index int, r io.Reader, size int64, repl int, id ID, chunk int64, crc []uint32) (BlockAck, func(), error) {
	if err := blockLen(file, index, size); err != nil {
		return BlockAck{}, nil, err
	}
	if err := sumsFit(size, chunk, len(crc)); err != nil {
		return BlockAck{}, nil, fmt.Errorf("%w: block %d of %s: %v", ErrBadSums, index, file, err)
	}
	if id.IsZero() {
		return BlockAck{}, nil, fmt.Errorf("%w: block %d of %s: no ID with them", ErrBadSums, index, file)
	}
	return fs.receive(ctx, file, index, r, size, repl, &blockSums{id: id, size: size, chunk: chunk, crc: crc})
}

// changedChecker is a sumChecker whose failure says that the client's
// file changed.
type changedChecker struct{ sumChecker }

func (c *changedChecker) Write(p []byte) (int, error) {
	n, err := c.sumChecker.Write(p)
	if err != nil {
		end := c.off
		start := (end - 1) / c.sums.chunk * c.sums.chunk
		return n, fmt.Errorf("%w: bytes %d to %d of the block are not the ones the client hashed", ErrFileChanged, start, end)
	}
	return n, nil
}

// blockLen refuses a block length outside 1..MaxBlockSize.
func blockLen(file string, index int, size int64) error {
	if size <= 0 || size > MaxBlockSize {
		return fmt.Errorf("block %d of %s: length %d outside 1..%d", index, file, size, MaxBlockSize)
	}
	return nil
}

// receive is ReceiveBlock, checking the bytes against given's sums and
// storing them as given's block when given is not nil, else hashing them.
func (fs *FS) receive(ctx context.Context, file string, index int, r io.Reader, size int64, repl int, given *blockSums) (ack BlockAck, release func(), err error) {
	if err := blockLen(file, index, size); err != nil {
		return BlockAck{}, nil, err
	}
	if repl < 1 {
		return BlockAck{}, nil, fmt.Errorf("replication %d: must be at least 1", repl)
	}
	rg := fs.cfg.Ring()
	if rg.Len() == 0 {
		return BlockAck{}, nil, errors.New("no alive members to store blocks on")
	}
	repl = min(repl, rg.Len())
	if err := fs.cfg.Store.Check(size); err != nil {
		return BlockAck{}, nil, fmt.Errorf("block %d of %s: %w", index, file, err)
	}
	f, err := fs.cfg.Store.TempFile()
	if err != nil {
		return BlockAck{}, nil, err
	}
	cleanup := func() {
		f.Close()
		os.Remove(f.Name())
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	var (
		h   *blockHasher
		dst io.Writer
	)
	if given != nil {
		// The check comes first: a chunk that fails is not written.
		dst = io.MultiWriter(&changedChecker{sumChecker{sums: given}}, fs.cfg.Store.SpoolWriter(f))
	} else {
		h = newBlockHasher()
		dst = io.MultiWriter(fs.cfg.Store.SpoolWriter(f), h)
	}
	n, err := copyBlock(dst, io.LimitReader(r, size+1))
	if err != nil {
		return BlockAck{}, nil, fmt.Errorf("block %d of %s: receiving: %w", index, file, err)
	}
	if n != size {
		return BlockAck{}, nil, fmt.Errorf("block %d of %s: got %d bytes, want %d", index, file, n, size)
	}
	sums := given
	if h != nil {
		sums = h.sums(h.ID())
	}
	id := sums.id
	copies, err := fs.writeBlock(ctx, blockWrite{file: file, index: index, id: id, size: size, want: repl, spool: f, sums: sums}, f)
	if err != nil {
		return BlockAck{}, nil, fmt.Errorf("put %s: %w", file, err)
	}
	if given != nil {
		fs.cfg.Store.Summed.Add(1)
	}
	return BlockAck{ID: id, Size: size, Copies: copies, Replication: repl}, cleanup, nil
}

// CommitRequest ends a resumable put: the file's blocks in order.
type CommitRequest struct {
	Path        string     `json:"path"`
	BlockSize   int64      `json:"block_size"`
	Replication int        `json:"replication"`
	Overwrite   bool       `json:"force,omitempty"`
	Blocks      []BlockRef `json:"blocks"`
}

// MissingBlocksError answers a commit some of whose blocks no alive member
// holds (their only copies were on a node that died): the client sends
// them again and commits again.
type MissingBlocksError struct {
	Path    string
	Indexes []int
}

func (e *MissingBlocksError) Error() string {
	return fmt.Sprintf("put %s: %d acknowledged blocks are on no alive member (first: block %d); send them again", e.Path, len(e.Indexes), e.Indexes[0])
}

// Commit makes a resumably put file visible: it checks that every block is
// stored on some alive member with the length claimed, then writes the
// manifest and the record, as Create does. Committing the same blocks to
// the same path twice is not an error (the first answer may have been
// lost with its agent).
func (fs *FS) Commit(ctx context.Context, req CommitRequest) (FileInfo, error) {
	p, err := CleanPath(req.Path, false)
	if err != nil {
		return FileInfo{}, err
	}
	if req.BlockSize < MinBlockSize || req.BlockSize > MaxBlockSize {
		return FileInfo{}, fmt.Errorf("block size %d outside %d..%d", req.BlockSize, MinBlockSize, MaxBlockSize)
	}
	if req.Replication < 1 {
		return FileInfo{}, fmt.Errorf("replication %d: must be at least 1", req.Replication)
	}
	if len(req.Blocks) > MaxFileBlocks {
		return FileInfo{}, fmt.Errorf("%d blocks: a file has at most %d", len(req.Blocks), MaxFileBlocks)
	}
	var size int64
	for i, b := range req.Blocks {
		if b.Size <= 0 || b.Size > req.BlockSize {
			return FileInfo{}, fmt.Errorf("block %d: length %d outside 1..%d", i, b.Size, req.BlockSize)
		}
		size += b.Size
	}
	rg := fs.cfg.Ring()
	if rg.Len() == 0 {
		return FileInfo{}, errors.New("no alive members to store blocks on")
	}
	repl := min(req.Replication, rg.Len())
	mb, err := encodeManifest(Manifest{Blocks: req.Blocks})
	if err != nil {
		return FileInfo{}, err
	}
	if f, err := fs.Stat(p); err == nil && f.Manifest == Sum(mb) && f.Size == size {
		return f, nil // committed already
	}
	if err := fs.checkCreate(p, req.Overwrite); err != nil {
		return FileInfo{}, err
	}
	if missing := fs.unheld(ctx, req.Blocks); len(missing) > 0 {
		return FileInfo{}, &MissingBlocksError{Path: p, Indexes: missing}
	}
	// Reserved only once every block is held, so that a commit answered
	// with missing blocks holds nothing while the client sends them again.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	res := fs.reserve(ctx, p, req.Overwrite, cancel)
	defer res.release()
	return fs.commit(ctx, p, req.Blocks, size, req.BlockSize, repl, req.Overwrite, res)
}

// unheld returns the indexes of the blocks no alive member stores with
// the right length. A member that does not answer counts as holding
// nothing: it is most likely dead, and sending a block again only costs
// its bytes.
func (fs *FS) unheld(ctx context.Context, refs []BlockRef) []int {
	ids := make([]ID, len(refs))
	for i, b := range refs {
		ids[i] = b.ID
	}
	held := make([]bool, len(refs))
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, node := range fs.cfg.Ring().Members() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sizes := make([]int64, len(ids))
			if node == fs.cfg.Self {
				for i, id := range ids {
					n, err := fs.cfg.Store.Size(id)
					if err != nil {
						n = -1
					}
					sizes[i] = n
				}
			} else {
				var err error
				if sizes, err = fs.cfg.Client.SizesMany(ctx, node, ids); err != nil {
					fs.log.Warn("commit: member did not say which blocks it holds; counting them as missing", "member", node, "err", err)
					return
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for i, n := range sizes {
				if n == refs[i].Size {
					held[i] = true
				}
			}
		}()
	}
	wg.Wait()
	var missing []int
	for i, ok := range held {
		if !ok {
			missing = append(missing, i)
		}
	}
	return missing
}

// WriteToFrom streams the file's bytes from offset to w, as WriteTo does
// from the start. A reader cut off can go on from the byte it reached,
// through any member.
func (fs *FS) WriteToFrom(ctx context.Context, f FileInfo, offset int64, w io.Writer) (int64, error) {
	if offset < 0 || offset > f.Size {
		return 0, fmt.Errorf("offset %d outside the %d bytes of %s", offset, f.Size, f.Path)
	}
	m, err := fs.Manifest(ctx, f)
	if err != nil {
		return 0, err
	}
	var total, pos int64
	for _, b := range m.Blocks {
		if pos+b.Size <= offset {
			pos += b.Size
			continue
		}
		start := max(offset-pos, 0)
		cw := &countWriter{w: w}
		err := fs.readBlockFrom(ctx, b, f.Replication, start, cw)
		total += cw.n
		pos += b.Size
		if err != nil {
			return total, fmt.Errorf("read %s: %w", f.Path, err)
		}
	}
	return total, nil
}
