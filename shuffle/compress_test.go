package shuffle

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"
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
