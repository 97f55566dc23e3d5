package shuffle

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"shoal.dev/shoal/mesh"
)

// TestFetchCompressed: a segment fetched with either codec reads back as
// the plain bytes (length and CRC checked on them), and on the wire it
// takes fewer bytes than plain; an unknown codec is refused.
func TestFetchCompressed(t *testing.T) {
	a, _, store, _ := testNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for p := range 4 {
		r, n, err := store.Open("j1", "m0", p)
		local := readSegment(t, r, n, err)
		var plainWire atomic.Int64
		r, n, err = FetchWith(ctx, a, "b", "j1", "m0", p, FetchOptions{Wire: &plainWire})
		readSegment(t, r, n, err)
		for _, codec := range []string{CodecS2, CodecZstd} {
			var wire atomic.Int64
			r, n, err := FetchWith(ctx, a, "b", "j1", "m0", p, FetchOptions{Codec: codec, Wire: &wire})
			got := readSegment(t, r, n, err)
			if !bytes.Equal(got, local) {
				t.Fatalf("%s partition %d: %d bytes, want %d", codec, p, len(got), len(local))
			}
			if len(local) > 4096 && wire.Load() >= plainWire.Load() {
				t.Errorf("%s partition %d: %d bytes on the wire, plain %d", codec, p, wire.Load(), plainWire.Load())
			}
		}
	}
	if _, _, err := FetchWith(ctx, a, "b", "j1", "m0", 0, FetchOptions{Codec: "lz4"}); err == nil {
		t.Error("an unknown codec was accepted")
	}
}

// TestSameHostSendsPlain: a server whose SameHost says the stream stays on
// its host sends the segment plain even when asked to compress it, and
// the reader gets the same bytes; the wire then carries the plain length.
func TestSameHostSendsPlain(t *testing.T) {
	a, _, store, srv := testNet(t)
	var asked atomic.Int64
	srv.SameHost = func(mesh.Stream) bool { asked.Add(1); return true }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for p := range 4 {
		r, n, err := store.Open("j1", "m0", p)
		local := readSegment(t, r, n, err)
		var plain, wire atomic.Int64
		r, n, err = FetchWith(ctx, a, "b", "j1", "m0", p, FetchOptions{Wire: &plain})
		readSegment(t, r, n, err)
		r, n, err = FetchWith(ctx, a, "b", "j1", "m0", p, FetchOptions{Codec: CodecS2, Wire: &wire})
		if got := readSegment(t, r, n, err); !bytes.Equal(got, local) {
			t.Fatalf("partition %d: %d bytes, want %d", p, len(got), len(local))
		}
		if wire.Load() != plain.Load() {
			t.Errorf("partition %d: %d bytes on the wire, want the plain %d (sent compressed on one host)", p, wire.Load(), plain.Load())
		}
	}
	if asked.Load() == 0 {
		t.Error("SameHost was never asked")
	}
}
