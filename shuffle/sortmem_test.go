package shuffle

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
)

// TestSortBufferMapped: on Linux a full-size sort buffer of 8 MiB is
// mapped outside the heap while a writer fills it, and the soft memory
// limit is lowered by its size meanwhile; Close frees it (without
// KeepBuffer) or hands it on (with it) until FreeBuffer; the output is
// the same as a heap buffer's (a 2 MiB one that spills).
func TestSortBufferMapped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sort buffers are mapped outside the heap on Linux only")
	}
	const limit = 1 << 30
	old := debug.SetMemoryLimit(limit)
	defer debug.SetMemoryLimit(old)
	pairs := randomPairs(rand.New(rand.NewPCG(7, 7)), 6<<20, 2000)
	part := hashPartition(3)
	dir := t.TempDir()
	heap, _ := writeMap(t, MapConfig{Dir: dir, Name: "heap", Partitions: 3, Partition: part, BufferBytes: 2 << 20}, pairs)
	base := MappedBytes()
	for _, keep := range []bool{false, true} {
		name := "mapped"
		if keep {
			name = "kept"
		}
		w, err := NewMapWriter(MapConfig{Dir: dir, Name: name, Partitions: 3, Partition: part, BufferBytes: 8 << 20, KeepBuffer: keep})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pairs {
			if err := w.Emit(p.key, p.value); err != nil {
				t.Fatal(err)
			}
		}
		if !isMapped(w.mem) || MappedBytes() != base+8<<20 {
			t.Fatalf("%s: buffer of %d bytes, mapped %v, %d bytes mapped: want the 8 MiB buffer mapped", name, len(w.mem), isMapped(w.mem), MappedBytes()-base)
		}
		if got := debug.SetMemoryLimit(-1); got != limit-8<<20 {
			t.Errorf("%s: memory limit %d while mapped, want %d", name, got, limit-8<<20)
		}
		out, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range [][2]string{{heap.Data, out.Data}, {heap.Index, out.Index}} {
			a, _ := os.ReadFile(f[0])
			b, _ := os.ReadFile(f[1])
			if !bytes.Equal(a, b) {
				t.Fatalf("%s: %s and %s differ", name, filepath.Base(f[0]), filepath.Base(f[1]))
			}
		}
		buf := w.Buffer()
		if keep != (buf != nil) {
			t.Fatalf("%s: Buffer gave %d bytes", name, len(buf))
		}
		if want := base + int64(len(buf)); MappedBytes() != want {
			t.Fatalf("%s: %d bytes mapped after Close, want %d", name, MappedBytes(), want)
		}
		FreeBuffer(buf)
		if MappedBytes() != base {
			t.Fatalf("%s: %d bytes still mapped after FreeBuffer", name, MappedBytes()-base)
		}
		if got := debug.SetMemoryLimit(-1); got != limit {
			t.Errorf("%s: memory limit %d once freed, want %d back", name, got, limit)
		}
	}
}
