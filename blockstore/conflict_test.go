package blockstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/gossip"
)

func TestDetectConflict(t *testing.T) {
	v := func(ms uint64, node string) gossip.Version { return gossip.Version{HLC: ms << 16, Node: node} }
	file := func(p string, m byte, size int64, prev gossip.Version) FileInfo {
		return FileInfo{Path: p, Size: size, Manifest: ID{m}, Prev: prev, Replication: 3}
	}
	rec := func(f FileInfo, ver gossip.Version) gossip.Record {
		b, err := encodeFileInfo(f)
		if err != nil {
			t.Fatal(err)
		}
		return gossip.Record{Key: fileKey(f.Path), Value: b, Version: ver}
	}
	a := rec(file("/x", 1, 10, gossip.Version{}), v(1000, "h1"))
	cases := []struct {
		name     string
		old, cur gossip.Record
		want     bool
	}{
		{"two creates that did not see each other", a, rec(file("/x", 2, 20, gossip.Version{}), v(2000, "h3")), true},
		{"an overwrite of the record it replaced (--force)", a, rec(file("/x", 2, 20, v(1000, "h1")), v(2000, "h3")), false},
		{"an overwrite of another version than the one held here", a, rec(file("/x", 2, 20, v(900, "h4")), v(2000, "h3")), true},
		{"a later write of the same node, the writes between not seen here", a, rec(file("/x", 2, 20, v(1500, "h1")), v(2000, "h1")), false},
		{"the same bytes written on both sides", a, rec(file("/x", 1, 10, gossip.Version{}), v(2000, "h3")), false},
		{"a deletion is not a file conflict", a, gossip.Record{Key: fileKey("/x"), Version: v(2000, "h3"), Deleted: true}, false},
		{"a file over a deletion", gossip.Record{Key: fileKey("/x"), Version: v(900, "h1"), Deleted: true}, rec(file("/x", 2, 20, gossip.Version{}), v(2000, "h3")), false},
		{"an older record is never applied", rec(file("/x", 2, 20, gossip.Version{}), v(2000, "h3")), a, false},
		{"not a file record", gossip.Record{Key: "job/1", Value: []byte{1}, Version: v(1, "h1")}, gossip.Record{Key: "job/1", Value: []byte{2}, Version: v(2, "h2")}, false},
		{"an unreadable record", a, gossip.Record{Key: fileKey("/x"), Value: []byte{0xc1}, Version: v(2000, "h3")}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := DetectConflict(c.old, c.cur)
			if ok != c.want {
				t.Fatalf("conflict %v, want %v", ok, c.want)
			}
			if ok && (got.Path != "/x" || got.LoserVersion != c.old.Version || got.WinnerVersion != c.cur.Version || got.Loser.Size != 10 || got.Winner.Size != 20) {
				t.Fatalf("conflict %+v", got)
			}
		})
	}
}

func TestConflictCopyPath(t *testing.T) {
	when := time.Date(2026, 12, 1, 21, 3, 4, 567e6, time.UTC)
	ver := gossip.Version{HLC: uint64(when.UnixMilli()) << 16, Node: "h1"}
	if got, want := ConflictCopyPath("/data/a.txt", ver), "/data/a.txt.conflict-h1-20261201T210304.567Z"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	long := "/d/" + strings.Repeat("n", MaxNameLen)
	got := ConflictCopyPath(long, ver)
	if !strings.HasPrefix(got, "/.conflicts/") || !strings.HasSuffix(got, "-h1-20261201T210304.567Z") {
		t.Fatalf("long name: %q", got)
	}
	if _, err := CleanPath(got, false); err != nil {
		t.Fatal(err)
	}
	// A path within the limits whose conflict key would not be.
	deep := strings.Repeat("/abcdefgh", 55)
	if got := ConflictCopyPath(deep, ver); !strings.HasPrefix(got, "/.conflicts/") || len(ConflictKeyPrefix)+len(got) > gossip.MaxKeyLen {
		t.Fatalf("deep path: %q", got)
	}
}

// TestWatchConflictsKeepsTheLoser drives the watcher with records merged
// into a real record store, as a healed partition's push/pull merges them:
// a concurrent write of /x leaves the local one as a conflict copy and a
// conflict record; an overwrite that knew the winner does not.
func TestWatchConflictsKeepsTheLoser(t *testing.T) {
	cfg := gossip.LocalConfig()
	cfg.Name = "h1"
	node, err := gossip.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Shutdown()
	recs := node.Records()
	fs := NewFS(FSConfig{Self: "h1", Records: recs})
	put := func(f FileInfo) gossip.Record {
		b, _ := encodeFileInfo(f)
		r, err := recs.Put(fileKey(f.Path), b)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	remote := func(f FileInfo, after gossip.Version, node string) gossip.Record {
		b, _ := encodeFileInfo(f)
		r := gossip.Record{Key: fileKey(f.Path), Value: b, Version: gossip.Version{HLC: after.HLC + 1<<16, Node: node}}
		if _, err := recs.Merge([]gossip.Record{r}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	mine := put(FileInfo{Path: "/x", Size: 10, Manifest: ID{1}, Replication: 3})
	changes, cancel := recs.Watch(FileKeyPrefix)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	w := fs.NewConflictWatcher(changes)
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { stop(); cancel(); <-done }()

	theirs := remote(FileInfo{Path: "/x", Size: 20, Manifest: ID{2}, Replication: 3}, mine.Version, "h3")
	waitConflicts(t, fs, 1)
	c := fs.Conflicts()[0]
	if c.Path != "/x" || c.WinnerVersion != theirs.Version || c.LoserVersion != mine.Version || c.DetectedBy != "h1" {
		t.Fatalf("conflict %+v", c)
	}
	kept, err := fs.Stat(c.Copy)
	if err != nil || kept.Manifest != (ID{1}) || kept.Size != 10 {
		t.Fatalf("copy %s: %+v %v", c.Copy, kept, err)
	}
	if now, _ := fs.Stat("/x"); now.Manifest != (ID{2}) {
		t.Fatalf("/x reads %+v, want the later write", now)
	}

	// An overwrite of the version held here is no conflict; the next
	// concurrent write of another path shows the watcher has seen it.
	remote(FileInfo{Path: "/x", Size: 30, Manifest: ID{3}, Prev: theirs.Version}, theirs.Version, "h4")
	y := put(FileInfo{Path: "/y", Size: 1, Manifest: ID{4}})
	remote(FileInfo{Path: "/y", Size: 2, Manifest: ID{5}}, y.Version, "h3")
	waitConflicts(t, fs, 2)
	if cs := fs.Conflicts(); cs[0].Path != "/x" || cs[1].Path != "/y" {
		t.Fatalf("conflicts %+v", cs)
	}
}

func waitConflicts(t *testing.T, fs *FS, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(fs.Conflicts()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d conflicts after 10s, want %d", len(fs.Conflicts()), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := len(fs.Conflicts()); got != n {
		t.Fatalf("%d conflicts, want %d", got, n)
	}
}
