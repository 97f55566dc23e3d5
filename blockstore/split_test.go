package blockstore

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// split cuts data and returns the blocks' contents, checking IDs and sizes.
func split(t *testing.T, s *Store, r io.Reader, blockSize int64) [][]byte {
	t.Helper()
	sp := NewSplitter(s, r, blockSize)
	defer sp.Close()
	var out [][]byte
	for {
		c, err := sp.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(c.File.Name())
		c.Discard()
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != c.Size || Sum(b) != c.ID {
			t.Fatalf("chunk %s: size %d (file %d) or ID wrong", c.ID.Short(), c.Size, len(b))
		}
		h := newBlockHasher()
		h.Write(b)
		if want := h.sums(c.ID); !slices.Equal(c.sums.crc, want.crc) || c.sums.size != want.size || c.sums.id != want.id {
			t.Fatalf("chunk %s: chunk sums differ from its bytes'", c.ID.Short())
		}
		out = append(out, b)
	}
}

func TestSplitterText(t *testing.T) {
	s := newTestStore(t)
	rng := rand.New(rand.NewPCG(3, 4))
	var text bytes.Buffer
	for text.Len() < 1<<20 {
		text.WriteString(strings.Repeat("x", rng.IntN(300)))
		text.WriteByte('\n')
	}
	text.WriteString("last line without newline")
	const bs = 64 << 10
	blocks := split(t, s, &text, bs) // text is drained; rebuild below
	var joined []byte
	for i, b := range blocks {
		if len(b) > bs {
			t.Fatalf("block %d has %d bytes > %d", i, len(b), bs)
		}
		if i < len(blocks)-1 && b[len(b)-1] != '\n' {
			t.Fatalf("block %d does not end at a newline", i)
		}
		joined = append(joined, b...)
	}
	if len(blocks) < 16 {
		t.Fatalf("only %d blocks", len(blocks))
	}
	if !bytes.HasSuffix(joined, []byte("\nlast line without newline")) || len(joined) < 1<<20 {
		t.Fatal("blocks do not rebuild the input")
	}
}

func TestSplitterEdges(t *testing.T) {
	s := newTestStore(t)
	if b := split(t, s, strings.NewReader(""), MinBlockSize); len(b) != 0 {
		t.Fatalf("empty input gave %d blocks", len(b))
	}
	// Binary data without newlines is cut at the block size exactly.
	bin := bytes.Repeat([]byte{7}, 3*MinBlockSize+5)
	b := split(t, s, bytes.NewReader(bin), MinBlockSize)
	if len(b) != 4 || len(b[0]) != MinBlockSize || len(b[3]) != 5 {
		t.Fatalf("binary split: %d blocks", len(b))
	}
	// A line longer than a block is cut at the block size, and the rest
	// goes on.
	long := append(bytes.Repeat([]byte{'a'}, MinBlockSize+10), []byte("\nshort\n")...)
	b = split(t, s, bytes.NewReader(long), MinBlockSize)
	if !bytes.Equal(bytes.Join(b, nil), long) || len(b[0]) != MinBlockSize {
		t.Fatalf("long line split wrong: %d blocks", len(b))
	}
	// Exactly one block of newline-terminated text stays one block.
	exact := append(bytes.Repeat([]byte{'z'}, MinBlockSize-1), '\n')
	if b := split(t, s, bytes.NewReader(exact), MinBlockSize); len(b) != 1 {
		t.Fatalf("exact block split into %d", len(b))
	}
	// Runs without a newline longer than maxPending, within a block and
	// carried over a cut, and text around them, with reads of every size.
	var mixed []byte
	rng := rand.New(rand.NewPCG(5, 6))
	for len(mixed) < 12*maxPending {
		switch rng.IntN(3) {
		case 0:
			mixed = append(mixed, bytes.Repeat([]byte{'r'}, maxPending+rng.IntN(maxPending))...)
		default:
			for range 1 + rng.IntN(2000) {
				mixed = append(mixed, strings.Repeat("y", rng.IntN(200))+"\n"...)
			}
		}
	}
	for _, bs := range []int64{MinBlockSize, 3 * maxPending, 5*maxPending + 3} {
		b := split(t, s, iotest.OneByteReader(bytes.NewReader(mixed[:1<<16])), bs)
		if !bytes.Equal(bytes.Join(b, nil), mixed[:1<<16]) {
			t.Fatalf("block size %d, one byte a read: blocks do not rebuild the input", bs)
		}
		b = split(t, s, &randomReads{r: bytes.NewReader(mixed), rng: rng}, bs)
		if !bytes.Equal(bytes.Join(b, nil), mixed) {
			t.Fatalf("block size %d: blocks do not rebuild the input", bs)
		}
	}
	// Nothing is left in tmp.
	left, _ := os.ReadDir(s.Dir() + "/tmp")
	if len(left) != 0 {
		t.Fatalf("%d spool files left", len(left))
	}
}

func TestStoreWriteVerify(t *testing.T) {
	s := newTestStore(t)
	data := []byte("hello blocks\n")
	id := Sum(data)
	if err := s.Write(id, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(Sum([]byte("other")), bytes.NewReader(data), int64(len(data))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("write with a wrong ID: %v", err)
	}
	if err := s.Write(id, bytes.NewReader(data[:3]), int64(len(data))); err == nil {
		t.Fatal("short write accepted")
	}
	r, n, err := s.Open(id, 6)
	if err != nil || n != int64(len(data)-6) {
		t.Fatalf("open: %v %d", err, n)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != "blocks\n" {
		t.Fatalf("read %q", got)
	}

	// Flip a byte on disk: the read fails as corrupt, the copy is
	// quarantined and counted.
	p := s.path(id)
	raw, _ := os.ReadFile(p)
	raw[0] ^= 0xff
	os.WriteFile(p, raw, 0o600)
	if _, _, err := s.Open(id, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open corrupt: %v", err)
	}
	if s.Has(id) || s.Corrupt.Load() != 1 {
		t.Fatalf("corrupt copy not quarantined (has %v, count %d)", s.Has(id), s.Corrupt.Load())
	}
	if _, _, err := s.Open(id, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open quarantined: %v", err)
	}
}

// randomReads reads at most a random 1 to 3 MiB at a time.
type randomReads struct {
	r   io.Reader
	rng *rand.Rand
}

func (r *randomReads) Read(p []byte) (int, error) {
	return r.r.Read(p[:min(len(p), 1+r.rng.IntN(3<<20))])
}

// BenchmarkSplitter cuts 256 MiB of 100-byte lines (terasort's records)
// into 64 MiB blocks, spooling and hashing each, as a reduce's output is
// stored; each block is discarded once cut.
func BenchmarkSplitter(b *testing.B) {
	s, err := OpenStore(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	line := append(bytes.Repeat([]byte{'k'}, 99), '\n')
	const size = 256 << 20
	data := bytes.Repeat(line, size/len(line))
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		sp := NewSplitter(s, bytes.NewReader(data), 64<<20)
		for {
			c, err := sp.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			c.Discard()
		}
		sp.Close()
	}
}
