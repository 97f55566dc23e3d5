package shuffle

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestIndexRoundTrip(t *testing.T) {
	segs := []Segment{{0, 10, 2, 7}, {10, 0, 0, 0}, {10, 300, 5, 0xdeadbeef}}
	path := filepath.Join(t.TempDir(), "x.index")
	if err := os.WriteFile(path, encodeIndex(segs), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadIndex(path)
	if err != nil || !slices.Equal(got, segs) {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := ReadIndex(path + ".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}

func TestIndexCorrupt(t *testing.T) {
	good := encodeIndex([]Segment{{0, 10, 2, 7}, {10, 5, 1, 9}})
	// Every truncation and every flipped bit is caught.
	for n := range len(good) {
		if _, err := parseIndex(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut at %d: %v", n, err)
		}
	}
	for i := range len(good) {
		for bit := range 8 {
			b := slices.Clone(good)
			b[i] ^= 1 << bit
			if _, err := parseIndex(b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("bit %d of byte %d flipped: %v", bit, i, err)
			}
		}
	}
	// Consistent checksums over inconsistent segments are caught too.
	for _, segs := range [][]Segment{
		{{5, 10, 2, 7}},               // does not start at 0
		{{0, 10, 2, 7}, {9, 1, 0, 0}}, // overlaps
		{{0, 10, 6, 7}},               // more records than bytes allow
		{{0, 0, 0, 7}},                // empty with a checksum
		{{0, 10, 0, 7}},               // bytes and no records
		{{0, -1, 1, 0}},               // negative length
		{},                            // no partitions
	} {
		if _, err := parseIndex(encodeIndex(segs)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%v: %v", segs, err)
		}
	}
}

func FuzzParseIndex(f *testing.F) {
	f.Add(encodeIndex([]Segment{{0, 10, 2, 7}, {10, 5, 1, 9}}))
	f.Add([]byte("SHIX"))
	f.Fuzz(func(t *testing.T, b []byte) {
		segs, err := parseIndex(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatal(err)
			}
			return
		}
		if !slices.Equal(encodeIndex(segs), b) {
			t.Fatal("a valid index does not re-encode to itself")
		}
	})
}
