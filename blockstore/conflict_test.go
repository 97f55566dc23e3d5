package blockstore

import (
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
