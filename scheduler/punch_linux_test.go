package scheduler

import (
	"bytes"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestLazyFilePunchesSpool: a spooled segment read through lazyFile gives
// back its bytes unchanged, and the range already read is punched out of
// the file (its disk blocks, and so its page-cache pages, freed) while the
// rest is still to be read; a map output opened in place (open set) is
// left whole.
func TestLazyFilePunchesSpool(t *testing.T) {
	const size = 3*punchEvery + 12345
	data := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(data)
	dir := t.TempDir()
	path := filepath.Join(dir, "m-000001.seg")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if allocated(t, path) < size {
		t.Skipf("the file system under %s allocates %d of %d bytes written: no room to see holes", dir, allocated(t, path), size)
	}

	l := &lazyFile{path: path}
	defer l.close()
	got := make([]byte, 2*punchEvery+punchEvery/2)
	if _, err := io.ReadFull(l, got); err != nil {
		t.Fatal(err)
	}
	// At least the first 2*punchEvery bytes read are gone from the disk.
	if a := allocated(t, path); a > size-2*punchEvery {
		t.Errorf("after reading %d of %d bytes, %d bytes still allocated; want at most %d", len(got), size, a, size-2*punchEvery)
	}
	rest, err := io.ReadAll(l)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(got, rest...), data) {
		t.Fatal("the bytes read differ from the spooled segment's")
	}
	// The last, partial file-system block is zeroed, not freed.
	if a := allocated(t, path); a > 4096 {
		t.Errorf("after reading the whole segment, %d bytes still allocated; want at most one 4 KiB block", a)
	}

	// A map output of this node is read in place, not punched: other
	// reducers may still fetch it.
	inPlace := filepath.Join(dir, "out")
	if err := os.WriteFile(inPlace, data, 0o600); err != nil {
		t.Fatal(err)
	}
	l2 := &lazyFile{open: func() (io.ReadCloser, error) { return os.Open(inPlace) }}
	defer l2.close()
	if _, err := io.Copy(io.Discard, l2); err != nil {
		t.Fatal(err)
	}
	if a := allocated(t, inPlace); a < size {
		t.Errorf("map output read in place: %d of %d bytes allocated", a, size)
	}
}

// allocated is the bytes of disk the file at path holds.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}
