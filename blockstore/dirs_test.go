package blockstore

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func names(es []Entry) []string {
	var out []string
	for _, e := range es {
		n := e.Name
		if e.Dir {
			n += "/"
		}
		out = append(out, n)
	}
	return out
}

func TestDirMarkers(t *testing.T) {
	ctx := context.Background()
	c := newTestCluster(t, 2)
	fs := c.nodes["n1"].fs
	if err := fs.MakeDir("/a/empty"); err != nil {
		t.Fatal(err)
	}
	if err := fs.MakeDir("/a/empty/"); err != nil {
		t.Fatalf("mkdir twice: %v", err)
	}
	if !fs.IsDir("/a") || !fs.IsDir("/a/empty") || fs.IsDir("/a/em") {
		t.Fatal("IsDir wrong around a marker")
	}
	if ls, err := fs.List("/a/empty"); err != nil || len(ls) != 0 {
		t.Fatalf("ls of an empty dir: %v %v", ls, err)
	}
	if ls, err := fs.List("/"); err != nil || !slices.Equal(names(ls), []string{"a/"}) {
		t.Fatalf("ls /: %v %v", names(ls), err)
	}
	if _, err := fs.Stat("/a/empty"); !errors.Is(err, ErrIsDir) {
		t.Fatalf("stat of a marked dir: %v", err)
	}
	if _, err := fs.Create(ctx, "/a/empty", strings.NewReader("x"), CreateOptions{}); !errors.Is(err, ErrIsDir) {
		t.Fatalf("put over a marked dir: %v", err)
	}
	if _, err := fs.Create(ctx, "/a/f", strings.NewReader("x"), CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := fs.MakeDir("/a/f/below"); !errors.Is(err, ErrExists) {
		t.Fatalf("mkdir below a file: %v", err)
	}
	if err := fs.MakeDir("/a/f"); !errors.Is(err, ErrExists) {
		t.Fatalf("mkdir over a file: %v", err)
	}
	if ls, err := fs.List("/a"); err != nil || !slices.Equal(names(ls), []string{"empty/", "f"}) {
		t.Fatalf("ls /a: %v %v", names(ls), err)
	}
	// An empty directory goes without -r; one with files does not.
	if _, err := fs.Remove("/a", false); !errors.Is(err, ErrIsDir) {
		t.Fatalf("rm /a without -r: %v", err)
	}
	if rm, err := fs.Remove("/a/empty", false); err != nil || !slices.Equal(rm, []string{"/a/empty"}) {
		t.Fatalf("rm empty dir: %v %v", rm, err)
	}
	if fs.IsDir("/a/empty") {
		t.Fatal("removed dir still there")
	}
	fs.MakeDir("/a/x/y")
	if rm, err := fs.Remove("/a", true); err != nil || len(rm) != 2 {
		t.Fatalf("rm -r /a: %v %v", rm, err)
	}
	if fs.IsDir("/a") || len(fs.cfg.Records.Scan(DirKeyPrefix)) != 0 {
		t.Fatalf("rm -r left markers: %v", fs.cfg.Records.Scan(DirKeyPrefix))
	}
}

func TestRename(t *testing.T) {
	ctx := context.Background()
	c := newTestCluster(t, 2)
	fs := c.nodes["n1"].fs
	put := func(p, data string) {
		t.Helper()
		if _, err := fs.Create(ctx, p, strings.NewReader(data), CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put("/src/f", "one\n")
	put("/src/sub/g", "two\n")
	fs.MakeDir("/src/sub/empty")
	put("/other", "three\n")

	if dst, err := fs.Rename(context.Background(), "/other", "/moved"); err != nil || dst != "/moved" {
		t.Fatalf("rename file: %q %v", dst, err)
	}
	if _, err := fs.Stat("/other"); !errors.Is(err, ErrNoFile) {
		t.Fatalf("old name still there: %v", err)
	}
	if got := readAll(t, fs, "/moved"); string(got) != "three\n" {
		t.Fatalf("moved file reads %q", got)
	}
	// Into an existing directory.
	if dst, err := fs.Rename(context.Background(), "/moved", "/src/sub"); err != nil || dst != "/src/sub/moved" {
		t.Fatalf("rename into a dir: %q %v", dst, err)
	}
	// A whole directory, markers and all.
	if dst, err := fs.Rename(context.Background(), "/src", "/dst/here"); err != nil || dst != "/dst/here" {
		t.Fatalf("rename dir: %q %v", dst, err)
	}
	var paths []string
	for _, f := range fs.Files() {
		paths = append(paths, f.Path)
	}
	if want := []string{"/dst/here/f", "/dst/here/sub/g", "/dst/here/sub/moved"}; !slices.Equal(paths, want) {
		t.Fatalf("after moving a dir: %v, want %v", paths, want)
	}
	if !fs.IsDir("/dst/here/sub/empty") || fs.IsDir("/src") {
		t.Fatal("markers did not move with their directory")
	}
	if got := readAll(t, fs, "/dst/here/sub/g"); string(got) != "two\n" {
		t.Fatalf("moved file reads %q", got)
	}

	put("/taken", "x")
	for _, tc := range []struct {
		src, dst string
		want     error
	}{
		{"/missing", "/x", ErrNoFile},
		{"/taken", "/dst/here/f", ErrExists},
		{"/dst", "/dst/here/deeper", ErrExists},
		{"/dst/here/f", "/taken/below", ErrExists},
		{"/", "/x", ErrBadPath},
		{"/taken", "rel", ErrBadPath},
	} {
		if _, err := fs.Rename(context.Background(), tc.src, tc.dst); !errors.Is(err, tc.want) {
			t.Errorf("rename %s %s: %v, want %v", tc.src, tc.dst, err, tc.want)
		}
	}
	if dst, err := fs.Rename(context.Background(), "/taken", "/taken"); err != nil || dst != "/taken" {
		t.Fatalf("rename onto itself: %q %v", dst, err)
	}
}

func TestAppendReusesBlocks(t *testing.T) {
	ctx := context.Background()
	c := newTestCluster(t, 3)
	fs := c.nodes["n2"].fs
	first := textOf(1, 300<<10)
	f, err := fs.Create(ctx, "/log", bytes.NewReader(first), CreateOptions{BlockSize: MinBlockSize, Replication: 2})
	if err != nil {
		t.Fatal(err)
	}
	before, err := fs.Manifest(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(first)
	for i := range 3 {
		more := textOf(uint64(10+i), 100<<10+i)
		g, err := fs.Append(ctx, "/log", bytes.NewReader(more))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		want = append(want, more...)
		if g.Size != int64(len(want)) || g.Replication != 2 || g.BlockSize != MinBlockSize {
			t.Fatalf("after append %d: %+v", i, g)
		}
	}
	if got := readAll(t, fs, "/log"); !bytes.Equal(got, want) {
		t.Fatalf("appended file differs: %d bytes, want %d", len(got), len(want))
	}
	g, _ := fs.Stat("/log")
	after, err := fs.Manifest(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(after.Blocks[:len(before.Blocks)], before.Blocks) {
		t.Fatal("append did not keep the file's existing blocks")
	}
	// The old version stays readable by its manifest (files are immutable).
	var old bytes.Buffer
	if _, err := fs.WriteTo(ctx, f, &old); err != nil || !bytes.Equal(old.Bytes(), first) {
		t.Fatalf("old version: %v", err)
	}
	if h, err := fs.Append(ctx, "/log", strings.NewReader("")); err != nil || h.Manifest != g.Manifest {
		t.Fatalf("empty append changed the file: %v", err)
	}
	// An empty file grows by appends (fsspec's CREATE then APPENDs).
	if _, err := fs.Create(ctx, "/empty", strings.NewReader(""), CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Append(ctx, "/empty", strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, fs, "/empty"); string(got) != "abc" {
		t.Fatalf("append to empty file: %q", got)
	}
	if _, err := fs.Append(ctx, "/nope", strings.NewReader("x")); !errors.Is(err, ErrNoFile) {
		t.Fatalf("append to a missing file: %v", err)
	}
}

// TestListPage: paging through a directory with every page size gives
// List's entries once each (marked empty directories included, a
// directory whose name is a prefix of a file's), at most limit a page,
// in key order; a file pages as itself, a missing directory is
// ErrNoFile, and pages past the end are empty.
func TestListPage(t *testing.T) {
	ctx := context.Background()
	c := newTestCluster(t, 1)
	fs := c.nodes["n1"].fs
	for _, p := range []string{"/d/a", "/d/a-b", "/d/b/x", "/d/b/y/z", "/d/b-c", "/d/c-1", "/d/zz", "/other/q"} {
		if _, err := fs.Create(ctx, p, strings.NewReader(p), CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"/d/c", "/d/0", "/d/b/m", "/d/zzz/e"} {
		if err := fs.MakeDir(d); err != nil {
			t.Fatal(err)
		}
	}
	all, err := fs.List("/d")
	if err != nil {
		t.Fatal(err)
	}
	want := names(all)
	slices.SortFunc(want, func(a, b string) int { return strings.Compare(a, b) })
	for limit := 1; limit <= len(want)+1; limit++ {
		var got []string
		from := ""
		for pages := 0; ; pages++ {
			es, next, err := fs.ListPage("/d", from, limit)
			if err != nil || len(es) > limit || pages > len(want) {
				t.Fatalf("limit %d, from %q: %d entries, %v", limit, from, len(es), err)
			}
			for _, e := range es {
				if !e.Dir && (e.File == nil || e.Size != int64(len(e.Path))) {
					t.Fatalf("limit %d: file entry %+v", limit, e)
				}
			}
			got = append(got, names(es)...)
			if next == "" {
				break
			}
			from = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: pages %v, want %v", limit, got, want)
		}
	}
	if es, next, err := fs.ListPage("/d/a-b", "", 10); err != nil || next != "" || len(es) != 1 || es[0].Path != "/d/a-b" {
		t.Fatalf("a file's page: %v %q %v", es, next, err)
	}
	if _, _, err := fs.ListPage("/nope", "", 10); !errors.Is(err, ErrNoFile) {
		t.Fatalf("a missing directory: %v", err)
	}
	if es, next, err := fs.ListPage("/d", "zzzz", 10); err != nil || len(es) != 0 || next != "" {
		t.Fatalf("past the end: %v %q %v", es, next, err)
	}
	if es, _, err := fs.ListPage("/", "", 10); err != nil || !slices.Equal(names(es), []string{"d/", "other/"}) {
		t.Fatalf("the root: %v %v", names(es), err)
	}
}
