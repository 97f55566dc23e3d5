package peer_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/client"
)

// splitterCuts returns the block lengths the agent's Splitter makes of data.
func splitterCuts(t *testing.T, st *blockstore.Store, data []byte, bs int64) []int64 {
	t.Helper()
	sp := blockstore.NewSplitter(st, bytes.NewReader(data), bs)
	defer sp.Close()
	var out []int64
	for {
		c, err := sp.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c.Size)
		c.Discard()
	}
}

// clientCuts returns the block lengths a resumable put cuts data into.
func clientCuts(t *testing.T, data []byte, bs int64) []int64 {
	t.Helper()
	var out []int64
	for off := int64(0); ; {
		n, err := client.NextBlockLen(bytes.NewReader(data), off, int64(len(data)), bs)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
		off += n
	}
}

// TestNextBlockLenCutsAsTheSplitter: a file put by the client (which cuts
// it itself) has the blocks a put through an agent's Splitter has, so the
// two ways of putting a file give the same block IDs.
func TestNextBlockLenCutsAsTheSplitter(t *testing.T) {
	st, err := blockstore.OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	bs := int64(blockstore.MinBlockSize)
	inputs := map[string][]byte{
		"empty":          nil,
		"one byte":       []byte("x"),
		"exactly one":    bytes.Repeat([]byte("abcdefg\n"), int(bs/8)),
		"one line long":  bytes.Repeat([]byte("y"), int(3*bs+5)),
		"text":           corpus(rng.Uint64(), 5*bs+rng.Int64N(bs)),
		"newline at end": append(bytes.Repeat([]byte("z"), int(bs)-1), '\n'),
	}
	bin := make([]byte, 3*bs+17)
	for i := range bin {
		bin[i] = byte(rng.Uint32())
	}
	inputs["binary"] = bin
	for name, data := range inputs {
		want, got := splitterCuts(t, st, data, bs), clientCuts(t, data, bs)
		if !slices.Equal(want, got) {
			t.Errorf("%s: client cuts %v, splitter %v", name, got, want)
		}
	}
	// Blocks larger than the client's 1 MiB read window, with lines
	// longer than it: the last newline of a block lies one or more
	// windows before its end.
	big := int64(5<<20 + 3)
	var long []byte
	for len(long) < int(4*big) {
		long = append(long, bytes.Repeat([]byte("w"), 1<<20+rng.IntN(3<<20))...)
		long = append(long, '\n')
	}
	if want, got := splitterCuts(t, st, long, big), clientCuts(t, long, big); !slices.Equal(want, got) {
		t.Errorf("long lines: client cuts %v, splitter %v", got, want)
	}
}
