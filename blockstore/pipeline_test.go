package blockstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"shoal.dev/shoal/mesh"
	"shoal.dev/shoal/ring"
)

func TestNextTargets(t *testing.T) {
	pref := []string{"a", "b", "c", "d", "e"}
	none := func(string) bool { return false }
	sus := func(names ...string) func(string) bool {
		return func(n string) bool { return slices.Contains(names, n) }
	}
	for _, tc := range []struct {
		name               string
		want               int
		done, busy, failed []string
		suspect            func(string) bool
		expect             []string
	}{
		{name: "start: the R owners", want: 3, suspect: none, expect: []string{"a", "b", "c"}},
		{name: "R=1", want: 1, suspect: none, expect: []string{"a"}},
		{name: "one owner failed: the next on the ring", want: 3, done: []string{"a"}, busy: []string{"c"}, failed: []string{"b"}, suspect: none, expect: []string{"d"}},
		{name: "the substitute failed too", want: 3, done: []string{"a", "c"}, failed: []string{"b", "d"}, suspect: none, expect: []string{"e"}},
		{name: "two failed at once", want: 3, done: []string{"c"}, failed: []string{"a", "b"}, suspect: none, expect: []string{"d", "e"}},
		{name: "no candidate left: fewer copies", want: 3, done: []string{"a", "b"}, failed: []string{"c", "d", "e"}, suspect: none, expect: nil},
		{name: "everything failed", want: 3, failed: pref, suspect: none, expect: nil},
		{name: "enough copies", want: 3, done: []string{"a", "b", "c"}, suspect: none, expect: nil},
		{name: "enough in flight", want: 3, done: []string{"a"}, busy: []string{"b", "c"}, suspect: none, expect: nil},
		{name: "a suspect owner goes last", want: 3, suspect: sus("b"), expect: []string{"a", "c", "d"}},
		{name: "suspects only when no one else is left", want: 3, done: []string{"a"}, failed: []string{"c", "d", "e"}, suspect: sus("b"), expect: []string{"b"}},
		{name: "every candidate suspect: ring order", want: 2, suspect: sus(pref...), expect: []string{"a", "b"}},
		{name: "want above the candidates", want: 7, suspect: none, expect: pref},
		{name: "nil suspect", want: 2, expect: []string{"a", "b"}},
		{name: "no candidates", want: 3, suspect: none, expect: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pref
			if tc.name == "no candidates" {
				p = nil
			}
			got := nextTargets(p, tc.want, tc.done, tc.busy, tc.failed, tc.suspect)
			if !slices.Equal(got, tc.expect) {
				t.Fatalf("nextTargets = %v, want %v", got, tc.expect)
			}
		})
	}
}

// cutStream fails its writes once more than limit bytes went through, as a
// peer killed in the middle of a block does.
type cutStream struct {
	mesh.Stream
	left int
}

func (c *cutStream) Write(p []byte) (int, error) {
	if len(p) > c.left {
		c.Stream.Reset()
		return 0, errors.New("connection reset by peer")
	}
	c.left -= len(p)
	return c.Stream.Write(p)
}

// holders counts, for every block of p, the nodes that store it.
func (c *testCluster) holders(t *testing.T, ctx context.Context, via, p string) map[ID][]string {
	t.Helper()
	fs := c.nodes[via].fs
	f, err := fs.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	m, err := fs.Manifest(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[ID][]string{}
	for _, b := range append(m.Blocks, BlockRef{ID: f.Manifest}) {
		for name, n := range c.nodes {
			if n.fs.Store().Has(b.ID) {
				out[b.ID] = append(out[b.ID], name)
			}
		}
	}
	return out
}

func TestWriteSubstitutesFailedTargets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newTestCluster(t, 5)
	data := textOf(3, 2<<20)

	// n3 is down but still in the ring (gossip has not noticed yet), and
	// every stream to n4 is cut 100 KB into a block.
	c.nodes["n3"].mesh.SetDown(true)
	var cuts atomic.Int64
	n1 := c.nodes["n1"]
	dial := mesh.DialerFunc(func(ctx context.Context, node mesh.NodeName, proto string) (mesh.Stream, error) {
		st, err := n1.mesh.Dial(ctx, node, proto)
		if err != nil || node != "n4" {
			return st, err
		}
		cuts.Add(1)
		return &cutStream{Stream: st, left: 100 << 10}, nil
	})
	fs := NewFS(FSConfig{Self: "n1", Store: n1.fs.Store(), Client: NewClient(dial), Records: c.recs, Ring: c.ring, Logger: quietLog()})
	f, err := fs.Create(ctx, "/sub", bytes.NewReader(data), CreateOptions{BlockSize: 256 << 10})
	if err != nil {
		t.Fatalf("put with a dead and a failing target: %v", err)
	}
	if got := readAll(t, c.nodes["n2"].fs, "/sub"); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	for id, hs := range c.holders(t, ctx, "n1", "/sub") {
		if len(hs) != 3 || slices.Contains(hs, "n3") || slices.Contains(hs, "n4") {
			t.Errorf("block %s on %v, want 3 copies on n1, n2, n5", id.Short(), hs)
		}
	}
	if cuts.Load() == 0 {
		t.Fatal("no write went to n4: the test did not exercise a cut stream")
	}
	if fs.Writes.Substituted.Load() == 0 || fs.Writes.Under.Load() != 0 || fs.Writes.Failed.Load() != 0 {
		t.Fatalf("stats: substituted %d under %d failed %d", fs.Writes.Substituted.Load(), fs.Writes.Under.Load(), fs.Writes.Failed.Load())
	}
	if fs.Writes.Blocks.Load() != int64(f.Blocks+1) {
		t.Fatalf("%d blocks written, want %d", fs.Writes.Blocks.Load(), f.Blocks+1)
	}
	// Once gossip drops n3 and n4 from the ring, the copies sit exactly on
	// the owners: the substitutes were the next owners.
	c.kill("n3")
	c.kill("n4")
	c.checkReplicas(ctx, "n2")
}

func TestWriteBelowReplication(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newTestCluster(t, 3)
	data := textOf(4, 600<<10)
	c.nodes["n3"].mesh.SetDown(true) // in the ring, not answering
	fs := c.nodes["n1"].fs
	f, err := fs.Create(ctx, "/under", bytes.NewReader(data), CreateOptions{BlockSize: MinBlockSize})
	if err != nil {
		t.Fatalf("put with one of 3 nodes down at R=3: %v", err)
	}
	if f.Replication != 3 {
		t.Fatalf("recorded replication %d, want 3 (the repair target)", f.Replication)
	}
	hs := c.holders(t, ctx, "n1", "/under")
	for id, h := range hs {
		if len(h) != 2 {
			t.Errorf("block %s on %v, want n1 and n2", id.Short(), h)
		}
	}
	if got := fs.Writes.Under.Load(); got != int64(len(hs)) {
		t.Fatalf("%d blocks counted under-replicated, want %d", got, len(hs))
	}
	// n3 comes back: repair brings every block to R.
	c.nodes["n3"].mesh.SetDown(false)
	c.repairAll(ctx)
	c.checkReplicas(ctx, "n3")
	if got := readAll(t, c.nodes["n3"].fs, "/under"); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
}

func TestWriteFailsOnlyWithNoCopy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newTestCluster(t, 3)
	c.nodes["n2"].mesh.SetDown(true)
	c.nodes["n3"].mesh.SetDown(true)
	// A writer outside the ring of n2 and n3 (as when its own store is not
	// a candidate): nowhere to put a copy.
	n1 := c.nodes["n1"]
	fs := NewFS(FSConfig{Self: "n1", Store: n1.fs.Store(), Client: NewClient(n1.mesh), Records: c.recs,
		Ring: func() *ring.Ring { return ring.New(ring.Config{}, "n2", "n3") }, Logger: quietLog()})
	_, err := fs.Create(ctx, "/lost", strings.NewReader("some data\n"), CreateOptions{})
	var we *BlockWriteError
	if !errors.As(err, &we) {
		t.Fatalf("put with every target down: %v, want a BlockWriteError", err)
	}
	msg := err.Error()
	for _, want := range []string{"/lost", "block 0", "n2 and n3 failed", "shoal members"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	for _, bad := range []string{"meshtest", "refused", "reset", "EOF"} {
		if strings.Contains(msg, bad) {
			t.Errorf("error %q carries transport text %q", msg, bad)
		}
	}
	if _, err := c.nodes["n1"].fs.Stat("/lost"); err == nil {
		t.Fatal("a failed put left a file")
	}
	if fs.Writes.Failed.Load() != 1 {
		t.Fatalf("failed writes %d, want 1", fs.Writes.Failed.Load())
	}
}

// TestOwnerLinksItsSpool: a writer that is itself one of a block's targets
// stores its spool file as its copy (one inode, no second write), while
// the other targets get the same bytes over the wire; the block reads back
// verified from each.
func TestOwnerLinksItsSpool(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newTestCluster(t, 3)
	n1 := c.nodes["n1"]
	st := n1.fs.Store()
	data := textOf(5, 300<<10)
	id := Sum(data)
	f := spoolOf(t, st, data)
	b := blockWrite{file: "/linked", index: 0, id: id, size: int64(len(data)), want: 3, spool: f}
	if n, err := n1.fs.writeBlock(ctx, b, f); err != nil || n != 3 {
		t.Fatalf("write: %d copies, %v", n, err)
	}
	spool, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	stored, err := os.Stat(st.path(id))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(spool, stored) {
		t.Fatal("the writer's copy is a second file, not its spool")
	}
	if st.Written.Load() != 1 {
		t.Fatalf("%d blocks counted written here, want 1", st.Written.Load())
	}
	// A second write of the same block stores nothing new.
	if _, err := n1.fs.writeBlock(ctx, b, f); err != nil || st.Written.Load() != 1 {
		t.Fatalf("second write: %v, %d counted", err, st.Written.Load())
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		var got bytes.Buffer
		if err := c.nodes[n].fs.Store().Verify(id); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if err := c.nodes[n].fs.readBlock(ctx, BlockRef{ID: id, Size: int64(len(data))}, 3, &got); err != nil || !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("read via %s: %v", n, err)
		}
	}
}

// spoolOf is a temporary file of st holding data, as a put's spool; it is
// closed and removed when the test ends.
func spoolOf(t *testing.T, st *Store, data []byte) *os.File {
	t.Helper()
	f, err := st.TempFile()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(); removeFile(f) })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return f
}
