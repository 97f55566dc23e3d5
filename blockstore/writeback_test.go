package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A spool's write-back is started every writebackEvery bytes, so that the
// disk writes a block while it arrives instead of all of it at its fsync.
func TestSpoolStartsWriteback(t *testing.T) {
	st, err := OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var started []*os.File
	st.startWriteback = func(f *os.File) { started = append(started, f) }
	f, err := st.TempFile()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := st.SpoolWriter(f)
	chunk := make([]byte, 3<<20)
	for range 7 { // 21 MiB: write-back starts at 9 and at 18 MiB
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if len(started) != 2 || started[0] != f || started[1] != f {
		t.Fatalf("write-back started %d times (files %v), want twice, of the spool", len(started), started)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != 21<<20 {
		t.Fatalf("spool holds %v bytes (%v), want %d", fi.Size(), err, 21<<20)
	}
	// The real call, on this platform: advice, it must not disturb the file.
	startWriteback(f)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// ReceiveBlock returns once the block is stored, with the spool's name
// still in tmp/; release removes it. Its caller answers its client in
// between, so the answer does not wait for the file system to remove a
// name.
func TestReceiveBlockLeavesTheSpoolToRelease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newTestCluster(t, 1)
	n := c.nodes["n1"]
	data := bytes.Repeat([]byte("spool\n"), 1000)
	ack, release, err := n.fs.ReceiveBlock(ctx, "/r", 0, bytes.NewReader(data), int64(len(data)), 1)
	if err != nil {
		t.Fatal(err)
	}
	if ack.ID != Sum(data) || !n.fs.cfg.Store.Has(ack.ID) {
		t.Fatalf("ack %+v: block not stored", ack)
	}
	tmp := filepath.Join(n.fs.cfg.Store.dir, "tmp")
	if des, _ := os.ReadDir(tmp); len(des) != 1 {
		t.Fatalf("%d files in tmp/ before release, want the spool", len(des))
	}
	release()
	if des, _ := os.ReadDir(tmp); len(des) != 0 {
		t.Fatalf("%d files in tmp/ after release, want none", len(des))
	}
	if !n.fs.cfg.Store.Has(ack.ID) {
		t.Fatal("release removed the stored block")
	}
	// A refused block leaves nothing to release, and nothing in tmp/.
	if _, release, err := n.fs.ReceiveBlock(ctx, "/r", 1, bytes.NewReader(data), int64(len(data))+1, 1); err == nil || release != nil {
		t.Fatalf("short block: err %v, release %v", err, release != nil)
	}
	if des, _ := os.ReadDir(tmp); len(des) != 0 {
		t.Fatalf("%d files in tmp/ after a refused block", len(des))
	}
}

// A block whose client sent its ID and chunk sums (a file handed over
// through the local socket) is checked chunk by chunk against the sums
// and stored under that ID, not hashed again; a chunk that fails its sum
// fails the block with ErrFileChanged and stores nothing.
func TestReceiveSummedBlock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newTestCluster(t, 1)
	n := c.nodes["n1"]
	st := n.fs.cfg.Store
	data := bytes.Repeat([]byte("summed block\n"), 3*SumChunk/13+7) // 3 chunks and a part
	h := newBlockHasher()
	h.Write(data)
	sums := h.sums(h.ID())

	// The client's word for the ID is taken: an ID that is not the
	// bytes' SHA-256 shows that they were not hashed again.
	claimed := Sum([]byte("the client's word"))
	ack, release, err := n.fs.ReceiveSummedBlock(ctx, "/s", 0, bytes.NewReader(data), int64(len(data)), 1, claimed, SumChunk, sums.crc)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if ack.ID != claimed || ack.Size != int64(len(data)) || !st.Has(claimed) || st.Has(Sum(data)) {
		t.Fatalf("ack %+v: want the block stored as %s", ack, claimed.Short())
	}
	if got := st.Summed.Load(); got != 1 {
		t.Fatalf("%d blocks counted as received by sums, want 1", got)
	}
	if got := st.readSums(claimed, int64(len(data))); got == nil || !slices.Equal(got.crc, sums.crc) {
		t.Fatalf("sidecar %+v, want the client's sums", got)
	}

	// The file changed after the client hashed it: its third chunk fails.
	changed := bytes.Clone(data)
	changed[2*SumChunk+5] ^= 1
	_, release, err = n.fs.ReceiveSummedBlock(ctx, "/s", 1, bytes.NewReader(changed), int64(len(data)), 1, h.ID(), SumChunk, sums.crc)
	if !errors.Is(err, ErrFileChanged) || release != nil || !strings.Contains(err.Error(), fmt.Sprintf("bytes %d to %d", 2*SumChunk, 3*SumChunk)) {
		t.Fatalf("changed file: err %v, want ErrFileChanged naming bytes %d to %d", err, 2*SumChunk, 3*SumChunk)
	}
	if st.Has(h.ID()) {
		t.Fatal("a block that failed its sums was stored")
	}
	// Sums that cannot be the block's.
	for _, bad := range []struct {
		chunk int64
		crc   []uint32
		id    ID
		want  string
	}{
		{SumChunk, sums.crc[:3], h.ID(), "3 chunk sums for 4 chunks"},
		{1 << 10, sums.crc, h.ID(), "chunks of 1024 bytes"},
		{SumChunk, sums.crc, ID{}, "no ID"},
	} {
		_, release, err := n.fs.ReceiveSummedBlock(ctx, "/s", 2, bytes.NewReader(data), int64(len(data)), 1, bad.id, bad.chunk, bad.crc)
		if err == nil || release != nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("chunk %d, %d sums, id %s: err %v, want %q", bad.chunk, len(bad.crc), bad.id.Short(), err, bad.want)
		}
	}
	if des, _ := os.ReadDir(filepath.Join(st.dir, "tmp")); len(des) != 0 {
		t.Fatalf("%d files left in tmp/", len(des))
	}
}
