package shuffle

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

type pair struct{ key, value []byte }

func hashPartition(n int) PartitionFunc {
	return func(key []byte) int {
		h := uint32(2166136261)
		for _, c := range key {
			h = (h ^ uint32(c)) * 16777619
		}
		return int(h % uint32(n))
	}
}

// randomPairs makes about size bytes of pairs: keys from a vocabulary (so
// keys repeat), values random; lengths cross the one-byte varint bound.
func randomPairs(rng *rand.Rand, size, vocab int) []pair {
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(4)) + 'a' // a small alphabet: long shared prefixes
			if rng.IntN(16) == 0 {
				b[i] = byte(rng.IntN(256))
			}
		}
		return b
	}
	keys := make([][]byte, vocab)
	for i := range keys {
		n := rng.IntN(24)
		if rng.IntN(50) == 0 {
			n = 100 + rng.IntN(200)
		}
		keys[i] = randBytes(n)
	}
	var pairs []pair
	for total := 0; total < size; {
		k := keys[rng.IntN(len(keys))]
		n := rng.IntN(48)
		if rng.IntN(100) == 0 {
			n = 128 + rng.IntN(400)
		}
		v := randBytes(n)
		if rng.IntN(4) == 0 && n > 0 {
			v = v[:1] // duplicate values too
		}
		pairs = append(pairs, pair{k, v})
		total += len(k) + len(v)
	}
	return pairs
}

func cmpPair(a, b pair) int {
	return cmp.Or(bytes.Compare(a.key, b.key), bytes.Compare(a.value, b.value))
}

// readAll reads a record stream.
func readAll(t testing.TB, r io.Reader) []pair {
	t.Helper()
	rr := NewRecordReader(r, 0)
	var out []pair
	for {
		k, v, err := rr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pair{bytes.Clone(k), bytes.Clone(v)})
	}
}

// readOutput reads a map output's segments, checking them against its
// index file.
func readOutput(t testing.TB, out MapOutput) [][]pair {
	t.Helper()
	segs, err := ReadIndex(out.Index)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(segs, out.Segments) {
		t.Fatalf("index file %v, Close returned %v", segs, out.Segments)
	}
	data, err := os.ReadFile(out.Data)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != dataLength(segs) {
		t.Fatalf("data file of %d bytes, index says %d", len(data), dataLength(segs))
	}
	parts := make([][]pair, len(segs))
	for p, s := range segs {
		b := data[s.Offset : s.Offset+s.Length]
		parts[p] = readAll(t, bytes.NewReader(b))
		if int64(len(parts[p])) != s.Records {
			t.Fatalf("partition %d: %d records, index says %d", p, len(parts[p]), s.Records)
		}
	}
	return parts
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// encode encodes pairs as a record stream.
func encode(pairs []pair) []byte {
	var b []byte
	for _, p := range pairs {
		b = AppendRecord(b, p.key, p.value)
	}
	return b
}
