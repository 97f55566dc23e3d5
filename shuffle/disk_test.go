package shuffle

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"shoal.dev/shoal/disk"
)

// TestSpillRefusedAtTheDoor: a map writer whose spill would cross the
// node's reserve fails with the guard's words, and leaves no file.
func TestSpillRefusedAtTheDoor(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "job")
	var free atomic.Int64
	free.Store(100 << 20)
	g := disk.New(disk.Config{Node: "node2", Reserve: disk.Reserve{Bytes: 64 << 20}, Statfs: func(string) (disk.Usage, error) {
		return disk.Usage{Free: free.Load(), Total: 1 << 40}, nil
	}})
	w, err := NewMapWriter(MapConfig{Dir: dir, Name: "m", Partitions: 1, BufferBytes: MinBufferBytes, Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	free.Store(64<<20 + 1000) // a spill of more than 1000 bytes crosses the reserve
	var emitErr error
	for i := 0; i < 200000 && emitErr == nil; i++ {
		emitErr = w.Emit([]byte(fmt.Sprintf("key%07d", i)), []byte("value"))
	}
	if !errors.Is(emitErr, disk.ErrFull) || !strings.HasPrefix(emitErr.Error(), "node2 is low on disk: ") || !strings.Contains(emitErr.Error(), dir) {
		t.Fatalf("emit past a full disk: %v", emitErr)
	}
	if _, err := w.Close(); !errors.Is(err, disk.ErrFull) {
		t.Fatalf("close: %v", err)
	}
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Fatalf("%d files left in %s", len(des), dir)
	}
}

// TestMergePassRefused: a reduce-side merge whose intermediate pass would
// cross the reserve fails with the guard's words and removes its files.
func TestMergePassRefused(t *testing.T) {
	tmp := t.TempDir()
	g := disk.New(disk.Config{Node: "node1", Reserve: disk.Reserve{Bytes: 1 << 30}, Statfs: func(string) (disk.Usage, error) {
		return disk.Usage{Free: 1 << 30, Total: 1 << 40}, nil
	}})
	var inputs []io.Reader
	for i := 0; i < MaxFanIn+2; i++ {
		var b bytes.Buffer
		rw := newRecordWriterBuf(&b, make([]byte, 4096), false)
		if err := rw.Write([]byte(fmt.Sprintf("k%03d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := rw.Flush(); err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, &b)
	}
	_, err := MergeGuarded(inputs, tmp, g, func([]byte, ValueIter) error { return nil })
	if !errors.Is(err, disk.ErrFull) || !strings.HasPrefix(err.Error(), "node1 is low on disk: 1 GiB free at "+tmp) {
		t.Fatalf("merge past the reserve: %v", err)
	}
	if des, _ := os.ReadDir(tmp); len(des) != 0 {
		t.Fatalf("%d files left in %s", len(des), tmp)
	}
}
