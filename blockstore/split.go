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
// a block) is cut at blockSize. Only a small copy buffer and the bytes
// after the last newline (up to maxPending) are held in memory: block bytes
// are spooled to the store's tmp dir, and hashed as they are spooled.
type Splitter struct {
	store     *Store
	r         io.Reader
	blockSize int64
	buf       []byte
	cur       *os.File // spool of the block being filled; holds the carried tail
	curSize   int64
	tail      []byte // the carried tail's bytes, if held (tailHeld)
	tailHeld  bool
	eof       bool
	err       error
}

// maxPending is how many bytes after a block's last newline so far a
// Splitter holds to hash them once the next newline comes (see next).
// Past it (a line or binary run that long), the block is hashed from
// its spool once cut.
const maxPending = 1 << 20

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

// next spools the next block and hashes it as it goes: the bytes up to the
// last newline read are sure to be in the block whatever its cut, so they
// are hashed as they arrive; the bytes after it are held (pending) until
// the next newline or the cut. The block is read back from its spool to
// hash it only when more than maxPending bytes came without a newline.
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
		s.tail, s.tailHeld = nil, true
	}
	h := newBlockHasher()
	hashed := int64(0)  // bytes of the block written to h
	pending := s.tail   // the bytes from hashed on, while held
	held := s.tailHeld  // false: hash the block from its spool once cut
	lastNL := int64(-1) // the carried tail holds no newline
	for !s.eof && s.curSize < s.blockSize {
		want := min(int64(len(s.buf)), s.blockSize-s.curSize)
		n, err := s.r.Read(s.buf[:want])
		if n > 0 {
			if i := bytes.LastIndexByte(s.buf[:n], '\n'); i >= 0 {
				lastNL = s.curSize + int64(i)
				if held {
					h.Write(pending)
					h.Write(s.buf[:i+1])
					hashed = lastNL + 1
					pending = append(pending[:0], s.buf[i+1:n]...)
				}
			} else if held {
				pending = append(pending, s.buf[:n]...)
				if len(pending) > maxPending {
					held, pending = false, nil
				}
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
	switch {
	case held && cut == hashed: // cut after the last newline: pending is the tail
	case held: // cut at the end: nothing carried
		h.Write(pending)
		pending = nil
	default:
		h = newBlockHasher()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(s.cur, 0, cut), s.buf); err != nil {
			if next != nil {
				next.Close()
				os.Remove(next.Name())
			}
			return nil, fmt.Errorf("hash block: %w", err)
		}
	}
	id := h.ID()
	c := &Chunk{ID: id, Size: cut, File: s.cur, sums: h.sums(id)}
	s.cur, s.curSize = next, s.curSize-cut
	s.tail, s.tailHeld = pending, held
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
