package blockstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// MinBlockSize is the smallest block size a file may have.
const MinBlockSize = 64 << 10

// DefaultBlockSize is the block size of files put without one.
const DefaultBlockSize = 128 << 20

// Chunk is one block cut from a stream, spooled to a temp file of the store.
// The receiver owns File: it must Adopt it into a store or close and remove
// it (Discard).
type Chunk struct {
	ID   ID
	Size int64
	File *os.File
	sums *blockSums // File's chunk sums
}

// Discard closes and removes the chunk's spool file.
func (c *Chunk) Discard() {
	c.File.Close()
	os.Remove(c.File.Name())
}

// Splitter cuts a stream into blocks of at most blockSize bytes. A block
// ends after the last newline that fits, so no line of text spans two
// blocks; a block with no newline at all (binary data, or a line longer than
// a block) is cut at blockSize. Only a small copy buffer is held in memory:
// block bytes are spooled to the store's tmp dir.
type Splitter struct {
	store     *Store
	r         io.Reader
	blockSize int64
	buf       []byte
	cur       *os.File // spool of the block being filled; holds the carried tail
	curSize   int64
	eof       bool
	err       error
}

// NewSplitter returns a Splitter reading r.
func NewSplitter(store *Store, r io.Reader, blockSize int64) *Splitter {
	return &Splitter{store: store, r: r, blockSize: blockSize, buf: make([]byte, min(blockSize, 1<<20))}
}

// Next returns the next block, or io.EOF after the last one. An empty stream
// has no blocks.
func (s *Splitter) Next() (*Chunk, error) {
	if s.err != nil {
		return nil, s.err
	}
	c, err := s.next()
	if err != nil {
		s.err = err
		s.Close()
	}
	return c, err
}

func (s *Splitter) next() (*Chunk, error) {
	if s.cur == nil {
		if s.eof {
			return nil, io.EOF
		}
		f, err := s.store.TempFile()
		if err != nil {
			return nil, err
		}
		s.cur, s.curSize = f, 0
	}
	lastNL := int64(-1) // the carried tail holds no newline
	for !s.eof && s.curSize < s.blockSize {
		want := min(int64(len(s.buf)), s.blockSize-s.curSize)
		n, err := s.r.Read(s.buf[:want])
		if n > 0 {
			if i := bytes.LastIndexByte(s.buf[:n], '\n'); i >= 0 {
				lastNL = s.curSize + int64(i)
			}
			if _, werr := s.store.SpoolWriter(s.cur).Write(s.buf[:n]); werr != nil {
				return nil, werr // the store's words: low on disk, out of space, a failing disk
			}
			s.curSize += int64(n)
		}
		if errors.Is(err, io.EOF) {
			s.eof = true
		} else if err != nil {
			return nil, err
		}
	}
	if s.curSize == 0 {
		s.cur.Close()
		os.Remove(s.cur.Name())
		s.cur = nil
		return nil, io.EOF
	}
	cut := s.curSize
	if !s.eof && lastNL >= 0 {
		cut = lastNL + 1
	}
	var next *os.File
	if cut < s.curSize {
		f, err := s.store.TempFile()
		if err != nil {
			return nil, err
		}
		if _, err := io.Copy(s.store.SpoolWriter(f), io.NewSectionReader(s.cur, cut, s.curSize-cut)); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		if err := s.cur.Truncate(cut); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("spool block: %w", err)
		}
		next = f
	}
	h := newBlockHasher()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(s.cur, 0, cut), s.buf); err != nil {
		if next != nil {
			next.Close()
			os.Remove(next.Name())
		}
		return nil, fmt.Errorf("hash block: %w", err)
	}
	id := h.ID()
	c := &Chunk{ID: id, Size: cut, File: s.cur, sums: h.sums(id)}
	s.cur, s.curSize = next, s.curSize-cut
	return c, nil
}

// Close removes any spool the splitter still holds. Safe twice.
func (s *Splitter) Close() {
	if s.cur != nil {
		s.cur.Close()
		os.Remove(s.cur.Name())
		s.cur = nil
	}
}
