// Package blockstore keeps Shoal's files: content-addressed blocks on local
// disk, the protocol that moves them between nodes, the writer that cuts a
// stream into blocks and places them on their ring owners, the reader that
// reassembles and verifies them, and the repair loop that keeps every block
// at its replication.
package blockstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"shoal.dev/shoal/disk"
)

// Errors of the local store.
var (
	// ErrNotFound: the block is not stored here.
	ErrNotFound = errors.New("block not found")
	// ErrCorrupt: the block's bytes do not hash to its ID. A corrupt local
	// copy is moved to quarantine when found.
	ErrCorrupt = errors.New("block corrupt")
	// ErrUnavailable: every alive member was asked for the block and none
	// holds it. Its holders are down or on the other side of a network
	// partition, so a later read may find it. Reads that fail so also
	// match ErrNotFound.
	ErrUnavailable = errors.New("on no alive member")
)

// Store is a node's local block directory:
//
//	DIR/ab/abcdef…   block files, named by ID, fanned out by the first byte
//	DIR/ab/abcdef….crc  each block's chunk checksums (see SumChunk)
//	DIR/tmp/         blocks being written; cleared at open
//	DIR/quarantine/  copies found corrupt, kept for inspection
//
// Block files are written once, by rename, and never modified. Every write
// goes through the node's disk guard: one that would leave less than the
// reserve free is refused before a byte is written, and an ENOSPC is
// reported as the same *disk.FullError. A Store is safe for concurrent use.
type Store struct {
	dir   string
	guard *disk.Guard
	seq   atomic.Uint64
	mu    sync.Mutex // serializes quarantines

	// Counters for /metrics.
	Corrupt  atomic.Int64 // corrupt copies found
	Written  atomic.Int64 // blocks written
	Deleted  atomic.Int64 // blocks deleted
	ReadByte atomic.Int64 // bytes served from disk
	// Summed counts the blocks received from a member and checked
	// against the chunk sums it sent, not hashed (see Store.write).
	Summed atomic.Int64

	// puts remembers, for the blocks puts stored here, the replication
	// each put asked for and when (NotePut, PutRepl); kept in memory for
	// the repair loop's grace period.
	putsMu sync.Mutex
	puts   map[ID]putMark

	// startWriteback starts the write-back of a spool (startWriteback;
	// a test may count the calls instead).
	startWriteback func(*os.File)

	// held and heldBytes count the blocks stored and their bytes: walked
	// once at open, then kept up to date by every write, delete and
	// quarantine, so a scrape never walks the directories.
	held, heldBytes atomic.Int64
}

// Held returns the number of blocks stored and their total size, as
// counted since open.
func (s *Store) Held() (blocks, bytes int64) { return s.held.Load(), s.heldBytes.Load() }

// OpenStore opens (creating) the block directory dir. Writes go through
// guard, which may be nil (no reserve; ENOSPC is still reported clearly).
func OpenStore(dir string, guard *disk.Guard) (*Store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "quarantine")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("block store: %w", err)
		}
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("block store: clear tmp: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("block store: %w", err)
	}
	s := &Store{dir: dir, guard: guard, startWriteback: startWriteback}
	if err := s.sweepSums(); err != nil {
		return nil, fmt.Errorf("block store: %w", err)
	}
	blocks, err := s.List()
	if err != nil {
		return nil, fmt.Errorf("block store: %w", err)
	}
	for _, b := range blocks {
		s.held.Add(1)
		s.heldBytes.Add(b.Size)
	}
	return s, nil
}

// Check refuses, with a *disk.FullError, a write of need bytes that would
// leave less than the node's reserve free.
func (s *Store) Check(need int64) error { return s.guard.Check(s.dir, need) }

// SpoolWriter wraps f, a file of the store, so that every write is checked
// against the reserve and an ENOSPC reads as a *disk.FullError, and the
// disk writes f's bytes as they come (spoolWriter), not all at its fsync.
func (s *Store) SpoolWriter(f *os.File) io.Writer {
	return &spoolWriter{w: s.guard.Writer(f, s.dir), f: f, start: s.startWriteback}
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(id ID) string {
	h := id.String()
	return filepath.Join(s.dir, h[:2], h)
}

// TempFile creates a file in the store's tmp dir, for spooling a block that
// will be adopted with Adopt or removed by the caller.
func (s *Store) TempFile() (*os.File, error) {
	name := filepath.Join(s.dir, "tmp", fmt.Sprintf("%d-%d", time.Now().UnixNano(), s.seq.Add(1)))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	return f, s.guard.Wrap(err, s.dir)
}

// Has reports whether the block is stored here (unverified).
func (s *Store) Has(id ID) bool {
	_, err := os.Stat(s.path(id))
	return err == nil
}

// Size returns the stored block's length.
func (s *Store) Size(id ID) (int64, error) {
	fi, err := os.Stat(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, id.Short())
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Write stores the block id from r, which must yield exactly size bytes
// hashing to id; anything else stores nothing and returns an error
// (ErrCorrupt for a hash mismatch). Writing a block already stored reads
// and discards r.
//
// A write that would cross the reserve is refused before r is read, with a
// *disk.FullError; so is one that meets ENOSPC, and nothing is kept.
func (s *Store) Write(id ID, r io.Reader, size int64) error { return s.write(id, r, size, nil) }

// write is Write, or, when sums is not nil, the write of a block whose
// chunk sums a member sent with its bytes: sums it computed from bytes
// that hashed to id. Each chunk is then checked against its sum as it
// arrives, instead of the whole block against id with SHA-256: a chunk
// damaged in transit fails the write with ErrCorrupt before its bytes
// reach the spool, and nothing is stored. The sums become the block's
// sidecar.
func (s *Store) write(id ID, r io.Reader, size int64, sums *blockSums) error {
	if err := s.Check(size); err != nil {
		return err
	}
	f, err := s.TempFile()
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	var h *blockHasher
	var check io.Writer
	if sums != nil {
		check = &sumChecker{sums: sums}
	} else {
		h = newBlockHasher()
		check = h
	}
	n, err := copyBlock(io.MultiWriter(check, s.SpoolWriter(f)), io.LimitReader(r, size+1))
	if err == nil && n != size {
		err = fmt.Errorf("block %s: got %d bytes, want %d", id.Short(), n, size)
	}
	if err == nil && h != nil && h.ID() != id {
		err = fmt.Errorf("%w: %s: received bytes hash to %s", ErrCorrupt, id.Short(), h.ID().Short())
	}
	if err != nil {
		f.Close()
		return err
	}
	if h != nil {
		sums = h.sums(id)
	}
	err = s.link(id, f, sums)
	if err == nil && h == nil {
		s.Summed.Add(1)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = s.guard.Wrap(cerr, s.dir)
	}
	return err
}

// Adopt moves a spooled temp file, whose bytes the caller has hashed to id,
// into the store. It closes f.
func (s *Store) Adopt(id ID, f *os.File) error {
	defer os.Remove(f.Name())
	return s.adopt(id, f)
}

func (s *Store) adopt(id ID, f *os.File) error {
	err := s.link(id, f, nil)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = s.guard.Wrap(cerr, s.dir)
	}
	return err
}

// Link stores the block id from f, a file of the store's tmp dir (see
// TempFile) whose bytes the caller has hashed to id and will not change:
// it syncs f to disk and links it into place, without copying a byte. f
// stays open and keeps its temp name: the caller still closes and removes
// it, and may go on reading it meanwhile (the write pipeline sends the
// same bytes to the block's other owners). The block's chunk sums are
// computed from f and written beside it.
func (s *Store) Link(id ID, f *os.File) error { return s.link(id, f, nil) }

// link is Link with the block's chunk sums, computed from f when nil.
func (s *Store) link(id ID, f *os.File, sums *blockSums) error {
	p := s.path(id)
	if s.Has(id) {
		// Stored (and synced) before: the spool need not reach the disk.
		s.refresh(id)
		return nil
	}
	if err := f.Sync(); err != nil {
		return s.guard.Wrap(err, s.dir)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return s.guard.Wrap(err, s.dir)
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if sums == nil || sums.size != fi.Size() {
		if sums, err = sumsOfFile(f, id, fi.Size()); err != nil {
			return fmt.Errorf("block %s: %w", id.Short(), err)
		}
	}
	// The sidecar goes first: a reader that finds the block finds its
	// sums (one that finds no sidecar checks SHA-256 and writes it).
	s.writeSums(sums)
	// A link, not a rename: it fails when another writer stored the block
	// meanwhile, so each block is counted once.
	if err := os.Link(f.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			s.refresh(id)
			return nil
		}
		return s.guard.Wrap(err, s.dir)
	}
	s.Written.Add(1)
	s.held.Add(1)
	s.heldBytes.Add(fi.Size())
	return nil
}

type putMark struct {
	repl int
	at   time.Time
}

// NotePut records that a put stored block id here asking for repl copies
// (0: unknown, recorded as nothing). Until its file commits, the files
// referencing the block may ask for fewer, and the repair loop must not
// take this copy for one to drop (see PutRepl).
func (s *Store) NotePut(id ID, repl int) {
	if repl <= 0 {
		return
	}
	s.putsMu.Lock()
	defer s.putsMu.Unlock()
	if s.puts == nil {
		s.puts = map[ID]putMark{}
	}
	s.puts[id] = putMark{repl: max(repl, s.puts[id].repl), at: time.Now()}
}

// PutRepl returns the highest replication a put that stored block id here
// within grace asked for, and when it last did; 0 if none did.
func (s *Store) PutRepl(id ID, grace time.Duration) (int, time.Time) {
	s.putsMu.Lock()
	defer s.putsMu.Unlock()
	if m, ok := s.puts[id]; ok && time.Since(m.at) <= grace {
		return m.repl, m.at
	}
	return 0, time.Time{}
}

// prunePuts forgets the puts older than grace.
func (s *Store) prunePuts(grace time.Duration) {
	s.putsMu.Lock()
	defer s.putsMu.Unlock()
	for k, m := range s.puts {
		if time.Since(m.at) > grace {
			delete(s.puts, k)
		}
	}
}

// refresh sets the stored block's time to now: a block stored again is as
// fresh as a new one, so the repair loop gives the put storing it the same
// grace (see ModTime) before it collects or drops the copy.
func (s *Store) refresh(id ID) {
	now := time.Now()
	os.Chtimes(s.path(id), now, now)
}

// Verify checks the stored block against its ID with SHA-256 (the full
// check; reads check the cheaper chunk sums). A corrupt copy is
// quarantined and ErrCorrupt returned. A good copy without a usable
// sidecar gets one.
func (s *Store) Verify(id ID) error {
	f, err := os.Open(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, id.Short())
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return s.verifyFile(id, f, fi.Size())
}

// verifyFile is Verify of the open copy f of size bytes.
func (s *Store) verifyFile(id ID, f *os.File, size int64) error {
	h := newBlockHasher()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, size), make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("block %s: %w", id.Short(), err)
	}
	if h.ID() != id {
		s.quarantineFile(id, f)
		return fmt.Errorf("%w: %s on local disk", ErrCorrupt, id.Short())
	}
	if s.readSums(id, size) == nil {
		s.writeSums(h.sums(id))
	}
	return nil
}

// Open opens the stored block for reading from offset and returns the
// reader and the number of bytes it will yield. The reader checks each
// chunk it reads against the block's sidecar before yielding a byte of it;
// the first chunk is read and checked here, so a corrupt one is refused
// before the first byte. A chunk found corrupt quarantines the copy and
// fails with ErrCorrupt, at Open or at a later Read. A block without a
// usable sidecar is checked whole with SHA-256 here, and its sidecar
// written.
func (s *Store) Open(id ID, offset int64) (io.ReadCloser, int64, error) {
	f, err := os.Open(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id.Short())
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	size := fi.Size()
	if offset < 0 || offset > size {
		f.Close()
		return nil, 0, fmt.Errorf("block %s: offset %d outside its %d bytes", id.Short(), offset, size)
	}
	sums := s.readSums(id, size)
	if sums == nil {
		if err := s.verifyFile(id, f, size); err != nil {
			f.Close()
			return nil, 0, err
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, 0, err
		}
		return &countingFile{f: f, n: &s.ReadByte}, size - offset, nil
	}
	r := &chunkReader{s: s, f: f, sums: sums, off: offset, n: &s.ReadByte}
	if offset < size {
		if err := r.fill(); err != nil {
			f.Close()
			return nil, 0, err
		}
	}
	return r, size - offset, nil
}

// countingFile reads a block checked whole at open. It hides the file's
// WriteTo, so every byte read is counted.
type countingFile struct {
	f *os.File
	n *atomic.Int64
}

func (c *countingFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingFile) Close() error { return c.f.Close() }

// quarantineFile moves the corrupt copy f of block id aside, so the
// repair loop fetches a good one, and counts it. A copy that is no longer
// the block's file (another reader quarantined it first, and maybe a good
// copy has replaced it) is left alone and not counted again.
func (s *Store) quarantineFile(id ID, f *os.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mine, err := f.Stat()
	if err != nil {
		return
	}
	fi, err := os.Stat(s.path(id))
	if err != nil || !os.SameFile(mine, fi) {
		return
	}
	s.Corrupt.Add(1)
	dst := filepath.Join(s.dir, "quarantine", fmt.Sprintf("%s.%d", id, time.Now().UnixNano()))
	if err := os.Rename(s.path(id), dst); err != nil {
		err = os.Remove(s.path(id))
	}
	if err == nil {
		s.forget(fi.Size())
	}
	os.Remove(s.sumPath(id))
}

// forget uncounts a block of size bytes that left the store.
func (s *Store) forget(size int64) {
	s.held.Add(-1)
	s.heldBytes.Add(-size)
}

// Delete removes the block; deleting a missing block is not an error.
func (s *Store) Delete(id ID) error {
	fi, err := os.Stat(s.path(id))
	if err == nil {
		err = os.Remove(s.path(id))
		os.Remove(s.sumPath(id))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		s.Deleted.Add(1)
		s.forget(fi.Size())
	}
	return err
}

// BlockInfo describes a stored block.
type BlockInfo struct {
	ID      ID
	Size    int64
	ModTime time.Time
}

// List returns every stored block, unverified.
func (s *Store) List() ([]BlockInfo, error) {
	var out []BlockInfo
	err := s.each(func(id ID, e os.DirEntry) {
		fi, err := e.Info()
		if err != nil {
			return // deleted meanwhile
		}
		out = append(out, BlockInfo{ID: id, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	return out, err
}

// IDs returns the IDs of every stored block: List without a stat of each
// (the repair pass needs the times of unreferenced blocks only).
func (s *Store) IDs() ([]ID, error) {
	var out []ID
	err := s.each(func(id ID, _ os.DirEntry) { out = append(out, id) })
	return out, err
}

// ModTime returns when the block id was last stored (written, or stored
// again while already here).
func (s *Store) ModTime(id ID) (time.Time, error) {
	fi, err := os.Stat(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, fmt.Errorf("%w: %s", ErrNotFound, id.Short())
	}
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// each calls fn with every stored block's ID and directory entry.
func (s *Store) each(fn func(ID, os.DirEntry)) error {
	return s.eachEntry(func(_ string, f os.DirEntry) {
		if id, err := ParseID(f.Name()); err == nil {
			fn(id, f)
		}
	})
}

// eachEntry calls fn with every entry of the store's two-character shard
// directories (blocks and their sidecars) and the directory it is in.
func (s *Store) eachEntry(fn func(dir string, f os.DirEntry)) error {
	dirs, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		sub := filepath.Join(s.dir, d.Name())
		files, err := os.ReadDir(sub)
		if err != nil {
			return err
		}
		for _, f := range files {
			fn(sub, f)
		}
	}
	return nil
}

func removeFile(f *os.File) { os.Remove(f.Name()) }
