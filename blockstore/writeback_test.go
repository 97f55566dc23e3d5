package blockstore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
