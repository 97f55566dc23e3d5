package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/disk"
	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/mesh/meshtest"
	"shoal.dev/shoal/ring"
)

// memRecords is a Records shared by every node of a test: replication is
// instant, which is what these tests want to factor out.
type memRecords struct {
	mu   sync.Mutex
	recs map[string][]byte
}

func (m *memRecords) Put(key string, value []byte) (gossip.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs[key] = value
	return gossip.Record{Key: key, Value: value}, nil
}

func (m *memRecords) Get(key string) (gossip.Record, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.recs[key]
	return gossip.Record{Key: key, Value: v}, ok
}

func (m *memRecords) Delete(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, key)
	return nil
}

func (m *memRecords) Scan(prefix string) []gossip.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []gossip.Record
	for k, v := range m.recs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, gossip.Record{Key: k, Value: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (m *memRecords) First(prefix, from string) (gossip.Record, bool) {
	from = max(from, prefix)
	var best gossip.Record
	found := false
	for _, r := range m.Scan(prefix) {
		if r.Key >= from && (!found || r.Key < best.Key) {
			best, found = r, true
		}
	}
	return best, found
}

// testCluster is N file systems over meshtest with one shared ring.
type testCluster struct {
	t     *testing.T
	net   *meshtest.Network
	recs  *memRecords
	mu    sync.Mutex
	alive []string
	nodes map[string]*testNode
}

type testNode struct {
	mesh *meshtest.Node
	fs   *FS
	rep  *Repairer
}

func newTestCluster(t *testing.T, n int) *testCluster {
	c := &testCluster{t: t, net: meshtest.New(), recs: &memRecords{recs: map[string][]byte{}}, nodes: map[string]*testNode{}}
	for i := 1; i <= n; i++ {
		c.add(fmt.Sprintf("n%d", i))
	}
	return c
}

func (c *testCluster) ring() *ring.Ring {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ring.New(ring.Config{}, c.alive...)
}

func (c *testCluster) add(name string) *testNode {
	return c.addWith(name, c.t.TempDir(), nil, nil)
}

// addWith adds a node storing its blocks in dir, writing through guard,
// and seeing members low on disk through low (both may be nil).
func (c *testCluster) addWith(name, dir string, guard *disk.Guard, low func(string) bool) *testNode {
	mn, err := c.net.Add(name)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(mn.Close)
	st, err := OpenStore(dir, guard)
	if err != nil {
		c.t.Fatal(err)
	}
	mn.Handle(Protocol, NewServer(st, quietLog()).Handle)
	fs := NewFS(FSConfig{Self: name, Store: st, Client: NewClient(mn), Records: c.recs, Ring: c.ring, Logger: quietLog(), Low: low})
	tn := &testNode{mesh: mn, fs: fs, rep: NewRepairer(fs, RepairConfig{GCGrace: time.Nanosecond})}
	c.mu.Lock()
	c.alive = append(c.alive, name)
	c.nodes[name] = tn
	c.mu.Unlock()
	return tn
}

func (c *testCluster) kill(name string) {
	c.nodes[name].mesh.SetDown(true)
	c.mu.Lock()
	c.alive = slices.DeleteFunc(c.alive, func(s string) bool { return s == name })
	c.mu.Unlock()
}

func (c *testCluster) repairAll(ctx context.Context) {
	c.t.Helper()
	for _, name := range c.ring().Members() {
		if err := c.nodes[name].rep.Pass(ctx); err != nil {
			c.t.Fatalf("repair on %s: %v", name, err)
		}
	}
}

// checkReplicas asserts every block of every file sits on exactly its R
// owners among the alive nodes.
func (c *testCluster) checkReplicas(ctx context.Context, via string) {
	c.t.Helper()
	fs := c.nodes[via].fs
	for _, f := range fs.Files() {
		locs, err := fs.Locate(ctx, f)
		if err != nil {
			c.t.Fatal(err)
		}
		for _, l := range locs {
			h, o := slices.Clone(l.Holders), slices.Clone(l.Owners)
			slices.Sort(h)
			slices.Sort(o)
			if !slices.Equal(h, o) {
				c.t.Fatalf("%s block %s: held by %v, owned by %v", f.Path, l.ID[:12], l.Holders, l.Owners)
			}
		}
	}
}

func textOf(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	words := []string{"alpha", "beta", "gamma", "delta", "shoal", "of", "fish", "the"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(8) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func readAll(t *testing.T, fs *FS, p string) []byte {
	t.Helper()
	f, err := fs.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := fs.WriteTo(context.Background(), f, &buf); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return buf.Bytes()
}

func TestFSSurvivesLossAndRepairs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newTestCluster(t, 5)
	files := map[string][]byte{
		"/empty":        {},
		"/one":          []byte("x"),
		"/dir/text":     textOf(1, 700<<10),
		"/dir/sub/bin":  bytes.Repeat([]byte{0, 1, 2}, 100<<10),
		"/dir/exact64k": bytes.Repeat([]byte("abcdefg\n"), 8<<10),
	}
	for p, data := range files {
		f, err := c.nodes["n1"].fs.Create(ctx, p, bytes.NewReader(data), CreateOptions{BlockSize: MinBlockSize})
		if err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
		if f.Size != int64(len(data)) || f.Replication != 3 {
			t.Fatalf("put %s: %+v", p, f)
		}
	}
	c.checkReplicas(ctx, "n2")
	for p, data := range files {
		if got := readAll(t, c.nodes["n3"].fs, p); !bytes.Equal(got, data) {
			t.Fatalf("%s read back %d bytes, want %d", p, len(got), len(data))
		}
	}

	// Two nodes die: every file still reads, and repair restores R = 3 on
	// the survivors.
	c.kill("n2")
	c.kill("n4")
	for p, data := range files {
		if got := readAll(t, c.nodes["n5"].fs, p); !bytes.Equal(got, data) {
			t.Fatalf("after loss, %s differs", p)
		}
	}
	c.repairAll(ctx)
	c.checkReplicas(ctx, "n1")

	// A corrupt copy is detected on read, the read still succeeds, and
	// repair replaces the copy.
	f, _ := c.nodes["n1"].fs.Stat("/dir/text")
	m, _ := c.nodes["n1"].fs.Manifest(ctx, f)
	victim := m.Blocks[3].ID
	var holder *testNode
	for _, name := range c.ring().Owners(victim.String(), 3) {
		holder = c.nodes[name]
		break
	}
	p := holder.fs.Store().path(victim)
	raw, _ := os.ReadFile(p)
	raw[10] ^= 0x20
	os.WriteFile(p, raw, 0o600)
	if got := readAll(t, holder.fs, "/dir/text"); !bytes.Equal(got, files["/dir/text"]) {
		t.Fatal("read through a corrupt copy returned wrong bytes")
	}
	if holder.fs.Store().Corrupt.Load() != 1 || holder.fs.Store().Has(victim) {
		t.Fatal("corrupt copy not quarantined and counted")
	}
	c.repairAll(ctx)
	c.checkReplicas(ctx, "n3")

	// A node joins: it receives what it now owns, and the old holders drop
	// their copies only once every owner has them.
	c.add("n6")
	c.repairAll(ctx)
	c.repairAll(ctx) // the second pass drops copies the first confirmed
	c.checkReplicas(ctx, "n6")
	for p, data := range files {
		if got := readAll(t, c.nodes["n6"].fs, p); !bytes.Equal(got, data) {
			t.Fatalf("after join, %s differs", p)
		}
	}

	// rm makes blocks unreferenced; repair collects them.
	if _, err := c.nodes["n1"].fs.Remove("/dir", true); err != nil {
		t.Fatal(err)
	}
	c.repairAll(ctx)
	total := 0
	for _, name := range c.ring().Members() {
		l, _ := c.nodes[name].fs.Store().List()
		total += len(l)
	}
	// Left: /empty's and /one's manifests and /one's block, 3 copies each.
	if total != 3*3 {
		t.Fatalf("%d blocks left after rm -r and collection, want 9", total)
	}
}

func TestFSErrors(t *testing.T) {
	ctx := context.Background()
	c := newTestCluster(t, 3)
	fs := c.nodes["n1"].fs
	put := func(p string, o CreateOptions) error {
		_, err := fs.Create(ctx, p, strings.NewReader("data\n"), o)
		return err
	}
	for _, p := range []string{"", "rel/path", "/a/../b", "/a//b", "/a/./b", "/" + strings.Repeat("x", 300), "/a\x00b", "/"} {
		if err := put(p, CreateOptions{}); !errors.Is(err, ErrBadPath) {
			t.Errorf("put %q: %v, want ErrBadPath", p, err)
		}
	}
	if err := put("/f", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := put("/f", CreateOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("put over existing: %v", err)
	}
	if err := put("/f", CreateOptions{Overwrite: true}); err != nil {
		t.Fatalf("put --force: %v", err)
	}
	if err := put("/g", CreateOptions{BlockSize: 1000}); err == nil {
		t.Fatal("tiny block size accepted")
	}
	if _, err := fs.Stat("/missing"); !errors.Is(err, ErrNoFile) {
		t.Fatalf("stat missing: %v", err)
	}
	if _, err := fs.Glob("/nothing*"); !errors.Is(err, ErrNoFile) {
		t.Fatalf("glob nothing: %v", err)
	}
	put("/d/x", CreateOptions{})
	if _, err := fs.Remove("/d", false); !errors.Is(err, ErrIsDir) {
		t.Fatalf("rm dir without -r: %v", err)
	}
	if err := put("/d", CreateOptions{}); !errors.Is(err, ErrIsDir) {
		t.Fatalf("put over a directory: %v", err)
	}
	if err := put("/f/under", CreateOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("put below a file: %v", err)
	}
	ls, err := fs.List("/")
	if err != nil || len(ls) != 2 {
		t.Fatalf("ls /: %+v %v", ls, err)
	}
	// Replication is capped at the cluster size.
	f, err := fs.Create(ctx, "/r5", strings.NewReader("x"), CreateOptions{Replication: 5})
	if err != nil || f.Replication != 3 {
		t.Fatalf("R=5 on 3 nodes: %+v %v", f, err)
	}
}

// TestRepairReadsEachManifestOnce: a repair pass reads only the manifests
// of files new since the last pass (it re-read every one every pass, half
// an agent's CPU at 10,000 files), and a removed file's blocks are still
// collected.
func TestRepairReadsEachManifestOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newTestCluster(t, 3)
	put := func(p string) FileInfo {
		f, err := c.nodes["n1"].fs.Create(ctx, p, bytes.NewReader([]byte(p+"\n")), CreateOptions{BlockSize: MinBlockSize})
		if err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
		return f
	}
	for i := range 5 {
		put(fmt.Sprintf("/f%d", i))
	}
	reads := func(want int64) {
		t.Helper()
		for _, name := range c.ring().Members() {
			if got := c.nodes[name].rep.Stats.ManifestReads.Load(); got != want {
				t.Fatalf("%s: %d manifests read, want %d", name, got, want)
			}
		}
	}
	c.repairAll(ctx)
	reads(5)
	c.repairAll(ctx)
	reads(5)
	gone, _ := c.nodes["n1"].fs.Stat("/f0")
	m, err := c.nodes["n1"].fs.Manifest(ctx, gone)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.nodes["n1"].fs.Remove("/f0", false); err != nil {
		t.Fatal(err)
	}
	put("/f5")
	c.repairAll(ctx)
	reads(6)
	c.checkReplicas(ctx, "n2")
	for _, name := range c.ring().Members() {
		for _, id := range []ID{gone.Manifest, m.Blocks[0].ID} {
			if c.nodes[name].fs.Store().Has(id) {
				t.Fatalf("%s still holds block %s of the removed file", name, id.Short())
			}
		}
	}
}
