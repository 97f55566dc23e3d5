package disk

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestParseReserve(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Reserve
		err  string
	}{
		{"0", Reserve{}, ""},
		{"4096", Reserve{Bytes: 4096}, ""},
		{"64MiB", Reserve{Bytes: 64 << 20}, ""},
		{"64 MB", Reserve{Bytes: 64 << 20}, ""},
		{"1.5G", Reserve{Bytes: 3 << 29}, ""},
		{"2gib", Reserve{Bytes: 2 << 30}, ""},
		{"5%", Reserve{Percent: 5}, ""},
		{" 0.5 % ", Reserve{Percent: 0.5}, ""},
		{"0%", Reserve{}, ""},
		{"91%", Reserve{}, "percentage must be a number from 0 to 90"},
		{"-1%", Reserve{}, "percentage"},
		{"x%", Reserve{}, "percentage"},
		{"-5MiB", Reserve{}, "want a size"},
		{"12 parsecs", Reserve{}, "unknown unit"},
		{"", Reserve{}, "want a size"},
		{"2000000TiB", Reserve{}, "larger than 1 EiB"},
	} {
		got, err := ParseReserve(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) {
				t.Errorf("ParseReserve(%q) = %v, %v; want an error with %q naming the input", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseReserve(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestReserveOf(t *testing.T) {
	for _, tc := range []struct {
		r     Reserve
		total int64
		want  int64
	}{
		{Reserve{}, 1 << 40, 0},
		{Reserve{Bytes: 100}, 10, 100},
		{Reserve{Percent: 10}, 1000, 100},
		{DefaultReserve, 1 << 40, 1 << 30},
		{DefaultReserve, 10 << 30, 512 << 20},
		{DefaultReserve, 4 << 20, 4 << 20 / 20},
	} {
		if got := tc.r.Of(tc.total); got != tc.want {
			t.Errorf("%v.Of(%d) = %d, want %d", tc.r, tc.total, got, tc.want)
		}
	}
	if s := DefaultReserve.String(); s != "1 GiB (at most 5%)" {
		t.Errorf("default reserve prints %q", s)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 64 << 20: "64 MiB", 3 << 30: "3 GiB", 5 << 40: "5 TiB"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

// fakeFS is a file system whose free space the test sets.
type fakeFS struct {
	mu          sync.Mutex
	free, total int64
}

func (f *fakeFS) statfs(string) (Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Usage{Free: f.free, Total: f.total}, nil
}

func TestAdmitAtTheDoor(t *testing.T) {
	fs := &fakeFS{free: 100 << 20, total: 1 << 30}
	fulls := 0
	g := New(Config{Node: "node3", Reserve: Reserve{Bytes: 64 << 20}, Statfs: fs.statfs, OnFull: func(*FullError) { fulls++ }})
	done1, err := g.Admit("/data/blocks", 20<<20)
	if err != nil {
		t.Fatal(err)
	}
	// 100 free - 20 pending - 20 asked = 60 < 64: refused.
	_, err = g.Admit("/data/blocks", 20<<20)
	var fe *FullError
	if !errors.As(err, &fe) || !errors.Is(err, ErrFull) {
		t.Fatalf("second admit: %v, want a FullError", err)
	}
	want := "node3 is low on disk: 80 MiB free at /data/blocks, and it keeps 64 MiB free (--reserve); refused a write of 20 MiB"
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	if fulls != 1 || g.Refused.Load() != 1 {
		t.Errorf("OnFull called %d times, refused %d; want 1, 1", fulls, g.Refused.Load())
	}
	done1()
	done1() // twice is harmless
	done2, err := g.Admit("/data/blocks", 20<<20)
	if err != nil {
		t.Fatalf("after the first write is done: %v", err)
	}
	done2()
	// The zero reserve leaves the limit to the file system's ENOSPC.
	g0 := New(Config{Node: "n", Statfs: fs.statfs})
	if _, err := g0.Admit("/d", 1<<40); err != nil {
		t.Errorf("zero reserve refused a write: %v", err)
	}
	// A nil guard admits everything.
	var gn *Guard
	if done, err := gn.Admit("/d", 1<<50); err != nil {
		t.Errorf("nil guard: %v", err)
	} else {
		done()
	}
}

func TestWrapNoSpace(t *testing.T) {
	fs := &fakeFS{free: 12 << 10, total: 4 << 20}
	g := New(Config{Node: "node2", Reserve: Reserve{Bytes: 1 << 20}, Statfs: fs.statfs})
	raw := &os.PathError{Op: "write", Path: "/data/blocks/tmp/1", Err: syscall.ENOSPC}
	err := g.Wrap(fmt.Errorf("copy: %w", raw), "/data/blocks")
	want := "node2 ran out of disk space writing /data/blocks (12 KiB free, reserve 1 MiB)"
	if err == nil || err.Error() != want || !errors.Is(err, ErrFull) {
		t.Errorf("Wrap(ENOSPC) = %v; want %q wrapping ErrFull", err, want)
	}
	if g.NoSpace.Load() != 1 {
		t.Errorf("NoSpace = %d", g.NoSpace.Load())
	}
	if err := g.Wrap(&os.PathError{Op: "write", Path: "x", Err: syscall.EDQUOT}, "/q"); !errors.Is(err, ErrFull) {
		t.Errorf("EDQUOT: %v", err)
	}
	other := errors.New("permission denied")
	if g.Wrap(other, "/x") != other || g.Wrap(nil, "/x") != nil {
		t.Errorf("Wrap changed an error that is not about space")
	}
	if !errors.Is(Remote("node4 is low on disk"), ErrFull) {
		t.Errorf("Remote does not wrap ErrFull")
	}
}

func TestSysStatfs(t *testing.T) {
	u, err := SysStatfs(t.TempDir())
	if err != nil || u.Total <= 0 || u.Free < 0 || u.Free > u.Total {
		t.Fatalf("SysStatfs = %+v, %v", u, err)
	}
}

func TestWriterAdmitsEachWrite(t *testing.T) {
	fs := &fakeFS{free: 10 << 20, total: 1 << 30}
	g := New(Config{Node: "node1", Reserve: Reserve{Bytes: 8 << 20}, Statfs: fs.statfs})
	var sink strings.Builder
	w := g.Writer(&sink, "/data/shuffle")
	if _, err := w.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	fs.free = 9 << 20
	fs.mu.Unlock()
	// Small writes are checked once per CheckEvery bytes.
	if _, err := w.Write(make([]byte, 1)); err != nil {
		t.Fatalf("a small write within CheckEvery of the last check: %v", err)
	}
	n, err := w.Write(make([]byte, 2<<20))
	if n != 0 || !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "node1 is low on disk: 9 MiB free at /data/shuffle") {
		t.Fatalf("write past the reserve: %d, %v", n, err)
	}
	if sink.Len() != 1<<20+1 {
		t.Errorf("the refused write wrote bytes: %d in the sink", sink.Len())
	}
	// A file system error other than space passes through Writer as is;
	// ENOSPC becomes a FullError.
	fw := g.Writer(failWriter{syscall.EIO}, "/d")
	if _, err := fw.Write([]byte("x")); !errors.Is(err, syscall.EIO) || err.Error() != "node1: the disk failed (I/O error) writing /d" {
		t.Errorf("EIO: %v", err)
	}
	fw = g.Writer(failWriter{syscall.EPERM}, "/d")
	if _, err := fw.Write([]byte("x")); err != syscall.EPERM {
		t.Errorf("EPERM: %v", err)
	}
	fw = (*Guard)(nil).Writer(failWriter{syscall.ENOSPC}, "/d")
	if _, err := fw.Write([]byte("x")); !errors.Is(err, ErrFull) {
		t.Errorf("ENOSPC through a nil guard: %v", err)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }
