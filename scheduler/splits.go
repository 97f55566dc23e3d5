package scheduler

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"shoal.dev/shoal/blockstore"
)

// split is one map task's input: one block of one input file, or for a
// generator job nothing but its index.
type split struct {
	index  int
	gen    bool
	file   InputFile
	block  blockstore.BlockRef
	offset int64                 // of the block in its file
	prev   *blockstore.BlockRef  // the block before, in the same file
	next   []blockstore.BlockRef // the blocks after, in the same file
}

// computeSplits lists a job's splits in order from its input files'
// manifests: files in submission order, blocks in file order.
func computeSplits(ctx context.Context, fs *blockstore.FS, j *JobRecord) ([]split, error) {
	ss, err := specSplits(ctx, fs, j.Inputs)
	if err != nil {
		return nil, err
	}
	return splitsOf(j, ss)
}

// specSplits reads the input files' manifests into the spec's split list.
func specSplits(ctx context.Context, fs *blockstore.FS, inputs []InputFile) ([]SpecSplit, error) {
	var out []SpecSplit
	for fi, f := range inputs {
		m, err := fs.Manifest(ctx, blockstore.FileInfo{Path: f.Path, Manifest: f.Manifest, Replication: f.Replication})
		if err != nil {
			return nil, err
		}
		if len(m.Blocks) != f.Blocks {
			return nil, fmt.Errorf("input %s: manifest lists %d blocks, the job %d", f.Path, len(m.Blocks), f.Blocks)
		}
		var off int64
		for _, b := range m.Blocks {
			out = append(out, SpecSplit{File: fi, Block: b, Offset: off})
			off += b.Size
		}
	}
	return out, nil
}

// splitsOf turns a spec's split list into the job's splits: a generator's
// synthetic splits first, then one per input block, each knowing the
// blocks around it in its file.
func splitsOf(j *JobRecord, ss []SpecSplit) ([]split, error) {
	out := make([]split, 0, j.Generate+len(ss))
	for i := 0; i < j.Generate; i++ {
		out = append(out, split{index: i, gen: true})
	}
	for start := 0; start < len(ss); {
		fi := ss[start].File
		if fi < 0 || fi >= len(j.Inputs) {
			return nil, fmt.Errorf("job spec: split %d names input file %d of %d", start, fi, len(j.Inputs))
		}
		end := start
		for end < len(ss) && ss[end].File == fi {
			end++
		}
		blocks := make([]blockstore.BlockRef, 0, end-start)
		for _, s := range ss[start:end] {
			blocks = append(blocks, s.Block)
		}
		for i, s := range ss[start:end] {
			sp := split{index: len(out), file: j.Inputs[fi], block: s.Block, offset: s.Offset, next: blocks[i+1:]}
			if i > 0 {
				sp.prev = &blocks[i-1]
			}
			out = append(out, sp)
		}
		start = end
	}
	return out, nil
}

// openSplit returns the split's bytes as whole lines, with the offset of the
// first byte in its file. Blocks end at newlines unless a line was longer
// than a block; then the Hadoop rule applies: a split skips the partial
// line it starts in (the split before owns it) and reads past its end to
// finish its own last line.
func openSplit(ctx context.Context, fs *blockstore.FS, sp split) (r io.Reader, base int64, local bool, closeFn func(), err error) {
	repl := sp.file.Replication
	skipHead := false
	if sp.prev != nil && sp.prev.Size > 0 {
		last, err := lastByte(ctx, fs, *sp.prev, repl)
		if err != nil {
			return nil, 0, false, nil, err
		}
		skipHead = last != '\n'
	}
	br, local, err := fs.OpenBlock(ctx, sp.block, repl, 0)
	if err != nil {
		return nil, 0, false, nil, err
	}
	body := &lastByteReader{r: br}
	tail := &tailReader{ctx: ctx, fs: fs, repl: repl, blocks: sp.next, body: body}
	in := bufio.NewReaderSize(io.MultiReader(body, tail), 1<<20)
	closeFn = func() { br.Close(); tail.close() }
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

// tailReader yields, after the split's own block, the bytes of the
// following blocks up to and including the first newline — only when the
// block did not end in one.
type tailReader struct {
	ctx    context.Context
	fs     *blockstore.FS
	repl   int
	blocks []blockstore.BlockRef
	body   *lastByteReader
	cur    io.ReadCloser
	done   bool
}

func (t *tailReader) Read(p []byte) (int, error) {
	if t.done || !t.body.seen || t.body.last == '\n' {
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
