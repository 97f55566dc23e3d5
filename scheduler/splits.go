package scheduler

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/codec"
	"shoal.dev/shoal/job"
)

// split is one map task's input: one or more parts, each a run of blocks
// of one input file, or for a generator job nothing but its index.
type split struct {
	index int
	gen   bool
	parts []splitPart
}

// splitPart is a run of consecutive blocks of one input file: one block of
// a file cut by blocks, or every block of a file read whole (a compressed
// file, or a small file packed with others).
type splitPart struct {
	file   InputFile
	blocks []blockstore.BlockRef
	offset int64                 // of the first block in its file
	prev   *blockstore.BlockRef  // the block before, in the same file
	next   []blockstore.BlockRef // the blocks after, in the same file
}

// first is the split's first block, which places its map task.
func (sp split) first() blockstore.BlockRef { return sp.parts[0].blocks[0] }

// size is the stored size of the split's blocks: the bytes it reads, but
// for a compressed file's (which decompress to more) and the end of a line
// that runs on into the next block.
func (sp split) size() int64 {
	var n int64
	for _, p := range sp.parts {
		for _, b := range p.blocks {
			n += b.Size
		}
	}
	return n
}

// path names the split's input for messages: the first file's path, and
// how many more files the split reads.
func (sp split) path() string {
	if len(sp.parts) == 1 {
		return sp.parts[0].file.Path
	}
	return fmt.Sprintf("%s and %d more files", sp.parts[0].file.Path, len(sp.parts)-1)
}

// computeSplits lists a job's splits in order from its input files'
// manifests, cut with the packing the job was submitted with.
func computeSplits(ctx context.Context, fs *blockstore.FS, j *JobRecord, pk packing) ([]split, error) {
	ss, err := specSplits(ctx, fs, j.Inputs, pk)
	if err != nil {
		return nil, err
	}
	return splitsOf(j, ss)
}

// DefaultMaxSplitBytes is the largest split packed from small files when a
// job gives no size: the default block size, as in Hadoop.
const DefaultMaxSplitBytes = blockstore.DefaultBlockSize

// packing says how a job's input files become splits (see specSplits).
type packing struct {
	// pack packs files of at most maxBytes into shared splits.
	pack     bool
	maxBytes int64
	// owner is the node that holds a block first (its first ring owner);
	// packing groups files by it. Nil puts every file in one group.
	owner func(id string, repl int) string
}

// specSplits reads the input files' manifests into the spec's split list:
//   - a compressed file (codec.ForPath) is one split of all its blocks: its
//     stream cannot be entered in the middle;
//   - with pk.pack, every file of one block and at most pk.maxBytes is
//     packed with others into splits of at most pk.maxBytes (packFiles),
//     after the other files' splits (a file of several blocks is already
//     cut where its blocks lie);
//   - any other file gives one split per block.
func specSplits(ctx context.Context, fs *blockstore.FS, inputs []InputFile, pk packing) ([]SpecSplit, error) {
	var out []SpecSplit
	manifests, err := readManifests(ctx, fs, inputs)
	if err != nil {
		return nil, err
	}
	blocks := make([][]blockstore.BlockRef, len(inputs))
	var small []packFile
	for fi, f := range inputs {
		m := manifests[fi]
		if len(m.Blocks) != f.Blocks {
			return nil, fmt.Errorf("input %s: manifest lists %d blocks, the job %d", f.Path, len(m.Blocks), f.Blocks)
		}
		blocks[fi] = m.Blocks
		if len(m.Blocks) == 0 {
			continue
		}
		whole := codec.ForPath(f.Path) != codec.None
		if pk.pack && len(m.Blocks) == 1 && f.Size <= pk.maxBytes {
			node := ""
			if pk.owner != nil {
				node = pk.owner(m.Blocks[0].ID.String(), max(f.Replication, 1))
			}
			small = append(small, packFile{index: fi, size: f.Size, node: node})
			continue
		}
		out = appendFile(out, fi, m.Blocks, whole)
	}
	for _, group := range packFiles(small, pk.maxBytes) {
		for n, fi := range group {
			first := len(out)
			out = appendFile(out, fi, blocks[fi], true)
			out[first].Join = n > 0
		}
	}
	return out, nil
}

// manifestReaders is how many manifests readManifests reads at once: a
// job over 10,000 small files waited 19 s at submission for them one at a
// time on a loaded machine.
const manifestReaders = 8

// readManifests reads the inputs' manifests, manifestReaders at a time,
// and stops at the first that fails, returning its error.
func readManifests(ctx context.Context, fs *blockstore.FS, inputs []InputFile) ([]blockstore.Manifest, error) {
	out := make([]blockstore.Manifest, len(inputs))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(manifestReaders, len(inputs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(inputs) || ctx.Err() != nil {
					return
				}
				f := inputs[i]
				m, err := fs.Manifest(ctx, blockstore.FileInfo{Path: f.Path, Manifest: f.Manifest, Replication: f.Replication})
				if err != nil {
					cancel(err) // the first cause stays
					return
				}
				out[i] = m
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// appendFile appends a file's blocks to a split list: one split each, or
// one split of them all if whole.
func appendFile(out []SpecSplit, fi int, blocks []blockstore.BlockRef, whole bool) []SpecSplit {
	var off int64
	for i, b := range blocks {
		out = append(out, SpecSplit{File: fi, Block: b, Offset: off, Join: whole && i > 0})
		off += b.Size
	}
	return out
}

// packFile is a file that packFiles may put in a shared split.
type packFile struct {
	index int    // in the job's inputs
	size  int64  // bytes
	node  string // the node that holds its first block first
}

// packFiles groups small files into splits, Hadoop's CombineFileInputFormat
// on one level: the files of each node (in order of the node's first
// file), in their input order, fill splits of at most maxBytes each (a
// file is never cut). The splits of one node come first, so that its map
// tasks read local blocks. It returns the splits as lists of input indexes.
func packFiles(files []packFile, maxBytes int64) [][]int {
	var nodes []string
	byNode := map[string][]packFile{}
	for _, f := range files {
		if _, ok := byNode[f.node]; !ok {
			nodes = append(nodes, f.node)
		}
		byNode[f.node] = append(byNode[f.node], f)
	}
	var out [][]int
	for _, n := range nodes {
		var cur []int
		var size int64
		for _, f := range byNode[n] {
			if len(cur) > 0 && size+f.size > maxBytes {
				out = append(out, cur)
				cur, size = nil, 0
			}
			cur = append(cur, f.index)
			size += f.size
		}
		if len(cur) > 0 {
			out = append(out, cur)
		}
	}
	return out
}

// splitsOf turns a spec's split list into the job's splits: a generator's
// synthetic splits first, then one per run of spec splits joined together
// (SpecSplit.Join), each part knowing the blocks around it in its file.
func splitsOf(j *JobRecord, ss []SpecSplit) ([]split, error) {
	out := make([]split, 0, j.Generate+len(ss))
	for i := 0; i < j.Generate; i++ {
		out = append(out, split{index: i, gen: true})
	}
	// Every file's blocks, in file order, and each spec split's place.
	blocks := make([][]blockstore.BlockRef, len(j.Inputs))
	at := make([]int, len(ss))
	for i, s := range ss {
		if s.File < 0 || s.File >= len(j.Inputs) {
			return nil, fmt.Errorf("job spec: split %d names input file %d of %d", i, s.File, len(j.Inputs))
		}
		at[i] = len(blocks[s.File])
		blocks[s.File] = append(blocks[s.File], s.Block)
	}
	for i, s := range ss {
		if i == 0 || !s.Join {
			out = append(out, split{index: len(out)})
		}
		sp := &out[len(out)-1]
		if n := len(sp.parts); n > 0 && ss[i-1].File == s.File && at[i-1]+1 == at[i] {
			sp.parts[n-1].blocks = append(sp.parts[n-1].blocks, s.Block)
			sp.parts[n-1].next = blocks[s.File][at[i]+1:]
			continue
		}
		p := splitPart{file: j.Inputs[s.File], blocks: []blockstore.BlockRef{s.Block}, offset: s.Offset, next: blocks[s.File][at[i]+1:]}
		if at[i] > 0 {
			p.prev = &blocks[s.File][at[i]-1]
		}
		sp.parts = append(sp.parts, p)
	}
	for _, sp := range out {
		for _, p := range sp.parts {
			if codec.ForPath(p.file.Path) != codec.None && (p.prev != nil || len(p.next) > 0) {
				return nil, fmt.Errorf("job spec: split %d reads part of the compressed file %s", sp.index, p.file.Path)
			}
		}
	}
	return out, nil
}

// readSplit feeds fn the records of every part of the split, in order,
// under format: a compressed part decompressed, TextInput keys counting
// from each part's offset in its (decompressed) file. local reports
// whether every part's first block was read from this node.
func readSplit(ctx context.Context, fs *blockstore.FS, sp split, format job.InputFormat, read *atomic.Int64, fn func(key, value []byte) error) (local bool, err error) {
	local = true
	rr := job.RecordReader{Expect: sp.size()} // one buffer for every part (file) of the split
	for _, p := range sp.parts {
		r, base, l, closeFn, err := openSplit(ctx, fs, p)
		if err != nil {
			return false, fmt.Errorf("open input %s block %s: %w", p.file.Path, p.blocks[0].ID.Short(), err)
		}
		r = &countingReader{r: r, n: read}
		local = local && l
		err = rr.Read(r, format, base, fn)
		closeFn()
		var ce *codec.CorruptError
		if errors.As(err, &ce) {
			// The stored bytes are the file as it was put: no retry reads
			// it differently.
			return false, job.Permanent(fmt.Errorf("input %s: %w", p.file.Path, ce))
		}
		if err != nil {
			return false, err
		}
	}
	return local, nil
}

// openSplit returns the split's bytes as whole lines, with the offset of the
// first byte in its file. Blocks end at newlines unless a line was longer
// than a block; then the Hadoop rule applies: a split skips the partial
// line it starts in (the split before owns it) and reads past its end to
// finish its own last line.
//
// A part of a compressed file (which is always the whole file) is
// decompressed; its base is 0, in the decompressed stream.
func openSplit(ctx context.Context, fs *blockstore.FS, sp splitPart) (r io.Reader, base int64, local bool, closeFn func(), err error) {
	repl := sp.file.Replication
	skipHead := false
	if sp.prev != nil && sp.prev.Size > 0 {
		last, err := lastByte(ctx, fs, *sp.prev, repl)
		if err != nil {
			return nil, 0, false, nil, err
		}
		skipHead = last != '\n'
	}
	br, local, err := fs.OpenBlock(ctx, sp.blocks[0], repl, 0)
	if err != nil {
		return nil, 0, false, nil, err
	}
	var own io.Reader = br
	rest := &tailReader{ctx: ctx, fs: fs, repl: repl, blocks: sp.blocks[1:], all: true}
	if len(sp.blocks) > 1 {
		own = io.MultiReader(br, rest)
	}
	body := &lastByteReader{r: own}
	tail := &tailReader{ctx: ctx, fs: fs, repl: repl, blocks: sp.next, body: body}
	closeFn = func() { br.Close(); rest.close(); tail.close() }
	if c := codec.ForPath(sp.file.Path); c != codec.None {
		zr, err := codec.NewReader(c, bufio.NewReaderSize(body, 1<<20))
		if err != nil {
			closeFn()
			return nil, 0, false, nil, err
		}
		closeFn = func() { zr.Close(); br.Close(); rest.close() }
		return bufio.NewReaderSize(zr, 1<<20), 0, local, closeFn, nil
	}
	// Sized to the part: a 1 MiB buffer for each 1 KB file of a packed
	// split was a third of such a map's time.
	var size int64
	for _, b := range sp.blocks {
		size += b.Size
	}
	in := bufio.NewReaderSize(io.MultiReader(body, tail), int(min(1<<20, max(4<<10, size))))
	base = sp.offset
	if skipHead {
		for {
			chunk, err := in.ReadSlice('\n')
			base += int64(len(chunk))
			if err == nil {
				break
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				break // the whole block is the middle of a line
			}
			closeFn()
			return nil, 0, false, nil, err
		}
	}
	return in, base, local, closeFn, nil
}

func lastByte(ctx context.Context, fs *blockstore.FS, b blockstore.BlockRef, repl int) (byte, error) {
	r, _, err := fs.OpenBlock(ctx, b, repl, b.Size-1)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var one [1]byte
	if _, err := io.ReadFull(r, one[:]); err != nil {
		return 0, fmt.Errorf("last byte of block %s: %w", b.ID.Short(), err)
	}
	return one[0], nil
}

// lastByteReader remembers the last byte it passed on.
type lastByteReader struct {
	r    io.Reader
	last int // -1 before any byte
	seen bool
}

func (l *lastByteReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n > 0 {
		l.last, l.seen = int(p[n-1]), true
	}
	return n, err
}

// tailReader yields, after the split's own blocks, the bytes of the
// following blocks up to and including the first newline — only when the
// blocks did not end in one. With all, it yields every byte of its blocks
// instead (the rest of a part's own blocks).
type tailReader struct {
	ctx    context.Context
	fs     *blockstore.FS
	repl   int
	blocks []blockstore.BlockRef
	body   *lastByteReader
	all    bool
	cur    io.ReadCloser
	done   bool
}

func (t *tailReader) Read(p []byte) (int, error) {
	if t.done || (!t.all && (!t.body.seen || t.body.last == '\n')) {
		return 0, io.EOF
	}
	for {
		if t.cur == nil {
			if len(t.blocks) == 0 {
				t.done = true
				return 0, io.EOF
			}
			r, _, err := t.fs.OpenBlock(t.ctx, t.blocks[0], t.repl, 0)
			if err != nil {
				return 0, err
			}
			t.cur, t.blocks = r, t.blocks[1:]
		}
		n, err := t.cur.Read(p)
		if n > 0 && t.all {
			return n, nil
		}
		if n > 0 {
			for i, c := range p[:n] {
				if c == '\n' {
					t.done = true
					return i + 1, nil
				}
			}
			return n, nil
		}
		if errors.Is(err, io.EOF) {
			t.cur.Close()
			t.cur = nil
			continue
		}
		return 0, err
	}
}

func (t *tailReader) close() {
	if t.cur != nil {
		t.cur.Close()
	}
}

// countingReader adds the bytes read through it to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}
