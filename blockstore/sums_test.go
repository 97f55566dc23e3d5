package blockstore

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

// sumsBlock stores a block of n random bytes (seeded) and returns it.
func sumsBlock(t *testing.T, s *Store, n int, seed uint64) ([]byte, ID) {
	t.Helper()
	data := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	id := Sum(data)
	if err := s.Write(id, bytes.NewReader(data), int64(n)); err != nil {
		t.Fatal(err)
	}
	return data, id
}

func flipByte(t *testing.T, p string, at int) {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw[at] ^= 0x55
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReadChecksOnlyTheChunksItTouches: a read from an offset checks the
// chunks it reads, not the whole block. Before chunk sums, Open hashed the
// whole block and refused a read of good bytes far from a corrupt one.
func TestReadChecksOnlyTheChunksItTouches(t *testing.T) {
	s := newTestStore(t)
	data, id := sumsBlock(t, s, 10*SumChunk+123, 1)
	bad := 2*SumChunk + 17 // in chunk 2
	flipByte(t, s.path(id), bad)

	// Chunks 5..6, from mid-chunk: good, read and served.
	off := int64(5*SumChunk + 999)
	r, n, err := s.Open(id, off)
	if err != nil || n != int64(len(data))-off {
		t.Fatalf("open at %d: %d %v", off, n, err)
	}
	got := make([]byte, SumChunk+100)
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, data[off:off+int64(len(got))]) {
		t.Fatalf("read at %d: %v", off, err)
	}
	r.Close()
	if !s.Has(id) || s.Corrupt.Load() != 0 {
		t.Fatalf("good chunks read, yet the copy was quarantined (has %v, count %d)", s.Has(id), s.Corrupt.Load())
	}

	// From the start: chunks 0 and 1 are served, chunk 2 is refused.
	r, _, err = s.Open(id, 0)
	if err != nil {
		t.Fatalf("open at 0: %v", err)
	}
	got, err = io.ReadAll(r)
	r.Close()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read through a corrupt chunk: %v", err)
	}
	if len(got) > 2*SumChunk || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("read served %d bytes, some of them past the corrupt chunk's start %d or wrong", len(got), 2*SumChunk)
	}
	if s.Has(id) || s.Corrupt.Load() != 1 {
		t.Fatalf("corrupt copy not quarantined (has %v, count %d)", s.Has(id), s.Corrupt.Load())
	}
	if _, err := os.Stat(s.sumPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("quarantined block's sidecar left: %v", err)
	}

	// A reader that opened the copy before it was quarantined, and a good
	// copy stored since: its finding quarantines nothing more, counts
	// nothing more.
	if err := s.Write(id, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	r, _, err = s.Open(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	old := r.(*chunkReader)
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(id, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	old.sums.crc[3] ^= 1 // as if the old copy's chunk 3 were corrupt
	if _, err := io.ReadAll(old); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("stale reader: %v", err)
	}
	old.Close()
	if !s.Has(id) || s.Corrupt.Load() != 1 {
		t.Fatalf("a stale reader's finding hit the good copy (has %v, count %d)", s.Has(id), s.Corrupt.Load())
	}
}

// TestBlockWithoutSidecar: a block stored by a release without chunk sums
// is checked with SHA-256 on its first read, which writes its sidecar; a
// corrupt one is refused, quarantined and counted.
func TestBlockWithoutSidecar(t *testing.T) {
	s := newTestStore(t)
	data, id := sumsBlock(t, s, 3*SumChunk+5, 2)
	sidecar, err := os.ReadFile(s.sumPath(id))
	if err != nil {
		t.Fatalf("no sidecar written with the block: %v", err)
	}
	os.Remove(s.sumPath(id))
	readAll := func() ([]byte, error) {
		r, _, err := s.Open(id, 0)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(r)
	}
	if got, err := readAll(); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read without a sidecar: %v", err)
	}
	if again, err := os.ReadFile(s.sumPath(id)); err != nil || !bytes.Equal(again, sidecar) {
		t.Fatalf("sidecar not rewritten as the store writes it: %v", err)
	}

	// A sidecar that fails its own check (torn, flipped) is ignored: the
	// block is checked with SHA-256 and the sidecar rewritten.
	for _, at := range []int{0, 30, len(sidecar) - 9, len(sidecar) - 1} {
		flipByte(t, s.sumPath(id), at)
		if got, err := readAll(); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read with sidecar byte %d flipped: %v", at, err)
		}
		if again, _ := os.ReadFile(s.sumPath(id)); !bytes.Equal(again, sidecar) {
			t.Fatalf("sidecar with byte %d flipped not rewritten", at)
		}
	}
	// One for another size (a truncated block) is not used either.
	os.WriteFile(s.sumPath(id), sidecar[:len(sidecar)/2], 0o600)
	if got, err := readAll(); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read with a torn sidecar: %v", err)
	}

	// Without a sidecar, a corrupt block is refused at open.
	os.Remove(s.sumPath(id))
	flipByte(t, s.path(id), len(data)-1)
	if _, err := readAll(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt block without a sidecar: %v", err)
	}
	if s.Has(id) || s.Corrupt.Load() != 1 {
		t.Fatalf("corrupt copy not quarantined (has %v, count %d)", s.Has(id), s.Corrupt.Load())
	}
	if _, err := os.Stat(s.sumPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a sidecar was written for a corrupt block")
	}
}

// TestSidecarsFollowTheirBlocks: every way into the store writes a
// sidecar, Delete removes it, and a sidecar left without its block (an
// older release deleted the block) is removed at open.
func TestSidecarsFollowTheirBlocks(t *testing.T) {
	s := newTestStore(t)
	_, id := sumsBlock(t, s, SumChunk, 3)
	split := NewSplitter(s, bytes.NewReader(bytes.Repeat([]byte("a line\n"), 30000)), 100_000)
	defer split.Close()
	c, err := split.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Link(c.ID, c.File); err != nil {
		t.Fatal(err)
	}
	c.Discard()
	for _, b := range []ID{id, c.ID} {
		size, _ := s.Size(b)
		raw, err := os.ReadFile(s.sumPath(b))
		if err != nil {
			t.Fatalf("block %s has no sidecar: %v", b.Short(), err)
		}
		if _, err := parseSums(raw, b, size); err != nil {
			t.Fatalf("block %s: %v", b.Short(), err)
		}
	}
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.sumPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("deleted block's sidecar left")
	}
	os.Remove(s.path(c.ID)) // as an older release deletes
	s2, err := OpenStore(s.Dir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s2.sumPath(c.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("orphan sidecar not removed at open")
	}
	if b, _ := s2.Held(); b != 0 {
		t.Fatalf("store holds %d blocks, want 0", b)
	}
}

// BenchmarkStoreRead reads a stored 64 MiB block (from the page cache):
// the cost of checking it on read.
func BenchmarkStoreRead(b *testing.B) {
	s, err := OpenStore(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20)
	id := Sum(data)
	if err := s.Write(id, bytes.NewReader(data), int64(len(data))); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, _, err := s.Open(id, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
