package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/disk"
	"shoal.dev/shoal/mesh/meshtest"
)

// tmpfs mounts a tmpfs of size bytes on a new dir and removes it when the
// test ends. It skips the test when not root.
func tmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), fmt.Sprintf("shoaltest%d", os.Getpid()), dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("unmount the test's tmpfs at %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a ballast file into dir until only about left bytes are
// free there.
func fill(t *testing.T, dir string, left int64) {
	t.Helper()
	u, err := disk.SysStatfs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if u.Free <= left {
		return
	}
	f, err := os.CreateTemp(dir, "ballast-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, u.Free-left)); err != nil {
		t.Fatal(err)
	}
}

// tmpEmpty asserts the store keeps no half-written block.
func tmpEmpty(t *testing.T, st *Store) {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(st.Dir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != 0 {
		t.Errorf("%d files left in %s/tmp", len(des), st.Dir())
	}
}

// lowSet is the nodes that say they are low on disk, as gossip would.
type lowSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (l *lowSet) set(n string) { l.mu.Lock(); l.m[n] = true; l.mu.Unlock() }
func (l *lowSet) is(n string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[n]
}

// TestPutAroundENOSPC: one of four nodes runs out of space for real
// (a tmpfs, no reserve) in the middle of a put at R=3: the put succeeds,
// every block has three copies on nodes with room, the full node keeps no
// half-written file, and its refusal reads as Shoal's words.
func TestPutAroundENOSPC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	small := tmpfs(t, 4<<20)
	c := &testCluster{t: t, net: meshtest.New(), recs: &memRecords{recs: map[string][]byte{}}, nodes: map[string]*testNode{}}
	for _, n := range []string{"n1", "n2", "n3"} {
		c.add(n)
	}
	full := c.addWith("n4", small, disk.New(disk.Config{Node: "n4"}), nil)
	fill(t, small, 300<<10) // room for about four 64 KiB blocks
	data := textOf(7, 2<<20)
	fs := c.nodes["n1"].fs
	f, err := fs.Create(ctx, "/big", bytes.NewReader(data), CreateOptions{BlockSize: MinBlockSize})
	if err != nil {
		t.Fatalf("put with one node out of space: %v", err)
	}
	if got := readAll(t, c.nodes["n2"].fs, "/big"); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	onFull := 0
	for id, hs := range c.holders(t, ctx, "n1", "/big") {
		if len(hs) < 3 {
			t.Errorf("block %s on %v, want 3 copies", id.Short(), hs)
		}
		if slices.Contains(hs, "n4") {
			onFull++
		}
	}
	if fs.Writes.Substituted.Load() == 0 {
		t.Fatalf("no block was substituted: n4 never refused one (%d blocks of %d on it)", onFull, f.Blocks)
	}
	tmpEmpty(t, full.fs.Store())
	t.Logf("%d of %d blocks on the full node; %d substituted", onFull, f.Blocks+1, fs.Writes.Substituted.Load())

	// What a writer sees from the full node itself: a FullError naming it,
	// the path and the free space.
	err = full.fs.Store().Write(Sum(data[:1<<20]), bytes.NewReader(data[:1<<20]), 1<<20)
	var fe *disk.FullError
	if !errors.As(err, &fe) || !fe.ENOSPC || !strings.HasPrefix(err.Error(), "n4 ran out of disk space writing "+small) {
		t.Fatalf("write to the full store: %v", err)
	}
	tmpEmpty(t, full.fs.Store())
}

// TestRefusedAtTheDoor: a node whose free space is below its reserve
// refuses block writes before reading them, and says so over the wire;
// with every node refusing, the put fails with each one's reason and
// nothing is visible.
func TestRefusedAtTheDoor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := &testCluster{t: t, net: meshtest.New(), recs: &memRecords{recs: map[string][]byte{}}, nodes: map[string]*testNode{}}
	statfs := func(string) (disk.Usage, error) { return disk.Usage{Free: 10 << 20, Total: 100 << 30}, nil }
	for _, n := range []string{"n1", "n2", "n3"} {
		c.addWith(n, t.TempDir(), disk.New(disk.Config{Node: n, Reserve: disk.Reserve{Bytes: 64 << 20}, Statfs: statfs}), nil)
	}
	_, err := c.nodes["n1"].fs.Create(ctx, "/refused", strings.NewReader(strings.Repeat("line\n", 1000)), CreateOptions{BlockSize: MinBlockSize, Replication: 2})
	if !errors.Is(err, disk.ErrFull) {
		t.Fatalf("put onto full nodes: %v, want ErrFull", err)
	}
	// The writer's own spool is refused first, in its words.
	want := "put /refused: n1 is low on disk: 10 MiB free at "
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "keeps 64 MiB free (--reserve)") {
		t.Fatalf("error %q, want it to start %q", err, want)
	}
	if _, err := c.nodes["n2"].fs.Stat("/refused"); err == nil {
		t.Fatal("a refused put is visible")
	}
	// A remote node's refusal comes back as its own words, and the
	// pipeline names every node that had no room.
	data := []byte("one block\n")
	_, err = c.nodes["n1"].fs.writeBlock(ctx, blockWrite{file: "/x", index: 0, id: Sum(data), size: int64(len(data)), want: 2}, bytes.NewReader(data))
	var we *BlockWriteError
	if !errors.As(err, &we) || len(we.Full) != 3 {
		t.Fatalf("write to three full nodes: %v", err)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(err.Error(), n+" is low on disk: 10 MiB free") {
			t.Errorf("error does not give %s's reason: %s", n, err)
		}
	}
	if !strings.Contains(err.Error(), "no member has room for it") {
		t.Errorf("error: %s", err)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		tmpEmpty(t, c.nodes[n].fs.Store())
	}
}

// TestPlacementSkipsLowNodes: a node that says it is low on disk gets no
// new copy while others have room, and the repair loop does not make it
// fetch one; a substitute copy stays until the plain owner has room again.
func TestPlacementSkipsLowNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	low := &lowSet{m: map[string]bool{}}
	c := &testCluster{t: t, net: meshtest.New(), recs: &memRecords{recs: map[string][]byte{}}, nodes: map[string]*testNode{}}
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		c.addWith(n, t.TempDir(), nil, low.is)
	}
	low.set("n3")
	data := textOf(9, 1<<20)
	if _, err := c.nodes["n1"].fs.Create(ctx, "/f", bytes.NewReader(data), CreateOptions{BlockSize: MinBlockSize, Replication: 2}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		alive := c.ring().Members()
		for id, hs := range c.holders(t, ctx, "n1", "/f") {
			hs = slices.DeleteFunc(hs, func(n string) bool { return !slices.Contains(alive, n) })
			if len(hs) != 2 || slices.Contains(hs, "n3") {
				t.Fatalf("%s: block %s on %v, want 2 copies, none on the low n3", when, id.Short(), hs)
			}
		}
	}
	check("after the put")
	c.repairAll(ctx)
	check("after repair")
	// n2 dies: its copies go to the owners with room, never to n3.
	c.kill("n2")
	c.repairAll(ctx)
	check("after n2 died and repair ran")
	if got := readAll(t, c.nodes["n3"].fs, "/f"); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	// n3 has room again: it fetches what it owns, and the substitutes
	// drop their copies once it holds them.
	low.mu.Lock()
	delete(low.m, "n3")
	low.mu.Unlock()
	c.repairAll(ctx)
	c.repairAll(ctx)
	c.checkReplicas(ctx, "n1")
}

// TestOwnersSkipLow: the owners of a block are the first R ring members
// with room, fewer when fewer have room.
func TestOwnersSkipLow(t *testing.T) {
	low := &lowSet{m: map[string]bool{}}
	c := &testCluster{t: t, net: meshtest.New(), recs: &memRecords{recs: map[string][]byte{}}, nodes: map[string]*testNode{}}
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		c.addWith(n, t.TempDir(), nil, low.is)
	}
	fs := c.nodes["n1"].fs
	id := Sum([]byte("x"))
	plain := c.ring().Owners(id.String(), 4)
	if got := fs.owners(id, 2); !slices.Equal(got, plain[:2]) {
		t.Fatalf("no node low: owners %v, want %v", got, plain[:2])
	}
	low.set(plain[0])
	if got, want := fs.owners(id, 2), []string{plain[1], plain[2]}; !slices.Equal(got, want) {
		t.Fatalf("%s low: owners %v, want %v", plain[0], got, want)
	}
	low.set(plain[1])
	low.set(plain[2])
	if got, want := fs.owners(id, 2), []string{plain[3]}; !slices.Equal(got, want) {
		t.Fatalf("three low: owners %v, want %v", got, want)
	}
}

// BenchmarkStoreWrite measures a block write into the local store without
// a guard and through one with a reserve (a statfs per CheckEvery bytes).
func BenchmarkStoreWrite(b *testing.B) {
	data := textOf(5, 16<<20)
	id := Sum(data)
	for _, tc := range []struct {
		name  string
		guard *disk.Guard
	}{
		{"guard=none", nil},
		{"guard=reserve", disk.New(disk.Config{Node: "n1", Reserve: disk.Reserve{Bytes: 1 << 20}})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			st, err := OpenStore(b.TempDir(), tc.guard)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := st.Write(id, bytes.NewReader(data), int64(len(data))); err != nil {
					b.Fatal(err)
				}
				if err := st.Delete(id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
