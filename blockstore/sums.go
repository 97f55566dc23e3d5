package blockstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// Chunk checksums. A block's ID is the SHA-256 of its bytes, checked when
// the block is stored or received and by Verify; a replica received with
// its writer's chunk sums is checked against those instead (Store.write).
// A read of a stored block
// checks CRC32C sums instead, one per SumChunk bytes, kept in a sidecar
// file beside the block:
//
//	DIR/ab/<id>.crc
//
//	magic    8 bytes  "shoalcrc"
//	version  uint32   1
//	chunk    uint32   bytes per sum (SumChunk when written)
//	size     uint64   the block's length
//	id       32 bytes the block's ID
//	sums     uint32 × ceil(size/chunk), CRC32C (Castagnoli) of each chunk
//	trailer  uint32   CRC32C of every byte above
//
// all integers little-endian. A sidecar is written only from bytes that
// hashed to the block's ID (as they were stored, or by a SHA-256 check of
// the stored copy), or from the sums of a member that hashed them, which
// the bytes received matched, through the tmp dir and a rename, unsynced: one that a
// crash tore, or that fails its trailer, names another block or another
// size, is ignored like a missing one. A block without a usable sidecar (one
// stored by an older release) is checked with SHA-256 on its next read,
// which then writes the sidecar.
const (
	// SumChunk is how many bytes of a block each CRC32C covers: a read
	// from an offset checks the chunks it touches, at most one of them
	// only partly yielded.
	SumChunk = 64 << 10

	sumsMagic   = "shoalcrc"
	sumsVersion = 1
	sumsHeader  = 8 + 4 + 4 + 8 + 32
	sumsSuffix  = ".crc"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockSums are the CRC32C sums of a block's chunks.
type blockSums struct {
	id    ID
	size  int64
	chunk int64
	crc   []uint32
}

// chunks is the number of chunks of a block of size bytes.
func chunks(size, chunk int64) int64 { return (size + chunk - 1) / chunk }

// marshal encodes the sidecar.
func (s *blockSums) marshal() []byte {
	b := make([]byte, 0, sumsHeader+4*len(s.crc)+4)
	b = append(b, sumsMagic...)
	b = binary.LittleEndian.AppendUint32(b, sumsVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(s.chunk))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.size))
	b = append(b, s.id[:]...)
	for _, c := range s.crc {
		b = binary.LittleEndian.AppendUint32(b, c)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// errBadSums: a sidecar that cannot be used (the block is then checked
// with SHA-256).
var errBadSums = errors.New("unusable checksum sidecar")

// parseSums decodes a sidecar, which must describe block id of size bytes.
func parseSums(b []byte, id ID, size int64) (*blockSums, error) {
	if len(b) < sumsHeader+4 || string(b[:8]) != sumsMagic {
		return nil, fmt.Errorf("%w: no header", errBadSums)
	}
	body, trailer := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != trailer {
		return nil, fmt.Errorf("%w: trailer mismatch", errBadSums)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != sumsVersion {
		return nil, fmt.Errorf("%w: version %d", errBadSums, v)
	}
	s := &blockSums{
		chunk: int64(binary.LittleEndian.Uint32(b[12:])),
		size:  int64(binary.LittleEndian.Uint64(b[16:])),
	}
	copy(s.id[:], b[24:56])
	if s.id != id || s.size != size || s.chunk <= 0 {
		return nil, fmt.Errorf("%w: for another block (%s, %d bytes, chunk %d)", errBadSums, s.id.Short(), s.size, s.chunk)
	}
	n := chunks(size, s.chunk)
	if int64(len(body)-sumsHeader) != 4*n {
		return nil, fmt.Errorf("%w: %d sums for %d chunks", errBadSums, (len(body)-sumsHeader)/4, n)
	}
	s.crc = make([]uint32, n)
	for i := range s.crc {
		s.crc[i] = binary.LittleEndian.Uint32(body[sumsHeader+4*i:])
	}
	return s, nil
}

// blockHasher computes a block's ID and its chunk sums in one pass over
// its bytes.
type blockHasher struct {
	sha  hash.Hash
	size int64
	cur  uint32 // CRC32C of the chunk being filled
	crc  []uint32
}

func newBlockHasher() *blockHasher { return &blockHasher{sha: newHasher()} }

func (h *blockHasher) Write(p []byte) (int, error) {
	h.sha.Write(p)
	n := len(p)
	for len(p) > 0 {
		fill := h.size % SumChunk
		k := min(int64(len(p)), SumChunk-fill)
		h.cur = crc32.Update(h.cur, castagnoli, p[:k])
		h.size += k
		p = p[k:]
		if h.size%SumChunk == 0 {
			h.crc = append(h.crc, h.cur)
			h.cur = 0
		}
	}
	return n, nil
}

// ID is the SHA-256 of the bytes written.
func (h *blockHasher) ID() ID { return idOf(h.sha) }

// sumChecker checks the bytes written to it against a block's chunk sums,
// chunk by chunk, as they arrive; a Write that completes a chunk whose
// CRC32C differs from its sum fails with ErrCorrupt. Bytes beyond the
// block's size are counted but not checked (the caller refuses a block
// of the wrong length).
type sumChecker struct {
	sums *blockSums
	off  int64
	cur  uint32 // CRC32C of the chunk being filled
}

func (c *sumChecker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && c.off < c.sums.size {
		start := c.off / c.sums.chunk * c.sums.chunk
		end := min(start+c.sums.chunk, c.sums.size)
		k := min(int64(len(p)), end-c.off)
		c.cur = crc32.Update(c.cur, castagnoli, p[:k])
		c.off += k
		p = p[k:]
		if c.off == end {
			if c.cur != c.sums.crc[start/c.sums.chunk] {
				return 0, fmt.Errorf("%w: %s: bytes %d to %d fail the checksum their sender sent (damaged in transit)", ErrCorrupt, c.sums.id.Short(), start, end)
			}
			c.cur = 0
		}
	}
	c.off += int64(len(p))
	return n, nil
}

// sums returns the chunk sums of the bytes written, as block id's.
func (h *blockHasher) sums(id ID) *blockSums {
	crc := h.crc
	if h.size%SumChunk != 0 {
		crc = append(crc[:len(crc):len(crc)], h.cur)
	}
	return &blockSums{id: id, size: h.size, chunk: SumChunk, crc: crc}
}

func (s *Store) sumPath(id ID) string { return s.path(id) + sumsSuffix }

// readSums returns the usable sidecar of block id, stored with size bytes,
// or nil.
func (s *Store) readSums(id ID, size int64) *blockSums {
	b, err := os.ReadFile(s.sumPath(id))
	if err != nil {
		return nil
	}
	sums, err := parseSums(b, id, size)
	if err != nil {
		return nil
	}
	return sums
}

// writeSums writes a block's sidecar, through the tmp dir and a rename. It
// is best effort: a sidecar that cannot be written (no room, a failing
// disk) costs only a SHA-256 check on the block's next read.
func (s *Store) writeSums(sums *blockSums) {
	b := sums.marshal()
	if s.Check(int64(len(b))) != nil {
		return
	}
	f, err := s.TempFile()
	if err != nil {
		return
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		p := s.sumPath(sums.id)
		if err = os.MkdirAll(filepath.Dir(p), 0o700); err == nil {
			err = os.Rename(f.Name(), p)
		}
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

// sumsOfFile computes the sums of the first size bytes of f, as block id's.
func sumsOfFile(f *os.File, id ID, size int64) (*blockSums, error) {
	h := &blockHasher{sha: nopHash{}}
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, size), make([]byte, 1<<20)); err != nil {
		return nil, err
	}
	return h.sums(id), nil
}

// nopHash stands in for SHA-256 where only the chunk sums are wanted.
type nopHash struct{ hash.Hash }

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }

// chunkReader yields a stored block from an offset, checking every chunk
// it reads against the block's sidecar before yielding a byte of it. A
// chunk that fails quarantines the copy (counted once) and fails the read
// with ErrCorrupt; the bytes yielded before it were checked.
type chunkReader struct {
	s    *Store
	f    *os.File
	sums *blockSums
	off  int64  // next byte to yield
	buf  []byte // checked bytes at off, not yet yielded
	own  []byte // buf's storage: one chunk
	n    *atomic.Int64
	err  error
}

// fill reads and checks the chunk holding r.off into r.buf.
func (r *chunkReader) fill() error {
	c := r.sums.chunk
	i := r.off / c
	start := i * c
	end := min(start+c, r.sums.size)
	if r.own == nil {
		r.own = make([]byte, c)
	}
	b := r.own[:end-start]
	if err := r.readChecked(b, start); err != nil {
		return err
	}
	r.buf = b[r.off-start:]
	return nil
}

// readChecked reads len(b) bytes at start, a chunk boundary, and checks
// each chunk they cover.
func (r *chunkReader) readChecked(b []byte, start int64) error {
	if _, err := r.f.ReadAt(b, start); err != nil {
		return fmt.Errorf("block %s: %w", r.sums.id.Short(), err)
	}
	c := r.sums.chunk
	for k := int64(0); k < int64(len(b)); k += c {
		i := (start + k) / c
		part := b[k:min(k+c, int64(len(b)))]
		if crc32.Checksum(part, castagnoli) != r.sums.crc[i] {
			r.s.quarantineFile(r.sums.id, r.f)
			return fmt.Errorf("%w: %s on local disk (bytes %d to %d fail their checksum)", ErrCorrupt, r.sums.id.Short(), start+k, start+k+int64(len(part)))
		}
	}
	return nil
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(r.buf) == 0 {
		left := r.sums.size - r.off
		if left == 0 {
			return 0, io.EOF
		}
		c := r.sums.chunk
		if r.off%c == 0 && (int64(len(p)) >= c || int64(len(p)) >= left) {
			// Whole chunks straight into p: no copy through buf.
			n := min(int64(len(p))/c*c, left)
			if n == 0 {
				n = left
			}
			if err := r.readChecked(p[:n], r.off); err != nil {
				r.err = err
				return 0, err
			}
			r.off += n
			r.n.Add(n)
			return int(n), nil
		}
		if err := r.fill(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.off += int64(n)
	r.n.Add(int64(n))
	return n, nil
}

func (r *chunkReader) Close() error { return r.f.Close() }

// sweepSums removes the sidecars whose block is gone (an older release
// deleted or quarantined it without knowing of sidecars).
func (s *Store) sweepSums() error {
	return s.eachEntry(func(sub string, f os.DirEntry) {
		name, ok := strings.CutSuffix(f.Name(), sumsSuffix)
		if !ok {
			return
		}
		if _, err := os.Lstat(filepath.Join(sub, name)); errors.Is(err, fs.ErrNotExist) {
			os.Remove(filepath.Join(sub, f.Name()))
		}
	})
}

// readBufs holds the buffers chunkReader.WriteTo reads into.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// WriteTo writes the rest of the block to w, reading whole chunks (up to a
// MiB at a time) straight into the buffer it writes from, so a copy through
// a small buffer does not cost a second copy of each chunk.
func (r *chunkReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if len(r.buf) > 0 {
		n, err := w.Write(r.buf)
		r.buf = r.buf[n:]
		r.off += int64(n)
		r.n.Add(int64(n))
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// copyBlock copies a block being received through a 1 MiB buffer:
// io.Copy's 32 KiB one cost 2,048 reads and writes (and hash calls) per
// 64 MB block.
func copyBlock(dst io.Writer, src io.Reader) (int64, error) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	return io.CopyBuffer(dst, src, *bp)
}
