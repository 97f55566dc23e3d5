package blockstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// TestRepairKeepsThePutsCopies: a file's bytes stored at R = 1, then put
// again at R = 3 (the same blocks). Until the second put commits, a repair
// pass sees its blocks needed at R = 1 only; the copies the put has just
// written on the other nodes must stay, and so must an old copy the put
// counted as one of its own. Before, the passes dropped them as copies no
// longer owned, the put was acknowledged at R = 3 with one copy of some
// blocks, and after the commit the repair loop fetched them back over the
// data plane (what slowed BenchmarkFS's get at R = 3).
func TestRepairKeepsThePutsCopies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := repairingCluster(t)
	data := textOf(21, 400<<10)
	fs := c.nodes["n1"].fs
	f, err := fs.Create(ctx, "/r1", bytes.NewReader(data), CreateOptions{BlockSize: MinBlockSize, Replication: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := fs.Manifest(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	// The put at R = 3, block by block, not committed.
	var off int64
	for i, b := range m.Blocks {
		ack, err := fs.PutBlock(ctx, "/r3", i, bytes.NewReader(data[off:off+b.Size]), b.Size, 3)
		if err != nil || ack.ID != b.ID || ack.Copies != 3 {
			t.Fatalf("block %d: %+v %v", i, ack, err)
		}
		off += b.Size
	}
	c.repairAll(ctx)
	c.repairAll(ctx)
	for i, b := range m.Blocks {
		for name, n := range c.nodes {
			if !n.fs.Store().Has(b.ID) {
				t.Fatalf("block %d (%s) of the put at R = 3 was dropped from %s before its commit", i, b.ID.Short(), name)
			}
		}
	}

	// Once the put commits, the copies are its file's; a node that joins
	// then gets what it owns, and the old holders drop what they no
	// longer own at once, though the put was recent: the put asked for
	// no more than its file does.
	if _, err := fs.Commit(ctx, CommitRequest{Path: "/r3", BlockSize: MinBlockSize, Replication: 3, Blocks: m.Blocks}); err != nil {
		t.Fatal(err)
	}
	c.add("n4").rep.started = time.Now().Add(-2 * time.Hour)
	c.nodes["n4"].rep = NewRepairer(c.nodes["n4"].fs, RepairConfig{GCGrace: time.Hour})
	c.repairAll(ctx)
	c.repairAll(ctx)
	if err := heldByOwners(ctx, fs, "/r3"); err != nil {
		t.Fatalf("after n4 joined: %v", err)
	}

	// A block stored long ago by a put that never committed, put again:
	// the new put's copies are kept while it has not committed, as
	// every fresh block's are. Before, its old time stood and the pass
	// collected it under the new put.
	lone := textOf(22, 100<<10)
	ack, err := fs.PutBlock(ctx, "/lone", 0, bytes.NewReader(lone), int64(len(lone)), 3)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	holders := map[string]*testNode{}
	for name, n := range c.nodes {
		if n.fs.Store().Has(ack.ID) {
			holders[name] = n
			os.Chtimes(n.fs.Store().path(ack.ID), old, old)
		}
	}
	if _, err := fs.PutBlock(ctx, "/lone", 0, bytes.NewReader(lone), int64(len(lone)), 3); err != nil {
		t.Fatal(err)
	}
	c.repairAll(ctx)
	for name, n := range holders {
		if !n.fs.Store().Has(ack.ID) {
			t.Fatalf("the block put again was collected from %s before its put committed", name)
		}
	}
}

// TestRepairDropsCopiesOfAPutThatCommittedFewer: a put's blocks ask for R
// of the members alive when each is written, its commit for R of those
// alive when it commits. A put that wrote three copies and committed at
// R = 2 (a member died meanwhile, or a partition cut the ring) leaves one
// copy no owner needs: it is dropped at once, not kept for the put's grace
// as if the put had not committed (a partition's healed cluster stayed at
// 3 copies of 2 for the whole grace).
func TestRepairDropsCopiesOfAPutThatCommittedFewer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := repairingCluster(t)
	fs := c.nodes["n1"].fs
	data := textOf(23, 60<<10)
	ack, err := fs.PutBlock(ctx, "/shrunk", 0, bytes.NewReader(data), int64(len(data)), 3)
	if err != nil || ack.Copies != 3 {
		t.Fatalf("put: %+v %v", ack, err)
	}
	if _, err := fs.Commit(ctx, CommitRequest{Path: "/shrunk", BlockSize: MinBlockSize, Replication: 2, Blocks: []BlockRef{{ID: ack.ID, Size: ack.Size}}}); err != nil {
		t.Fatal(err)
	}
	c.repairAll(ctx)
	c.repairAll(ctx)
	if err := heldByOwners(ctx, fs, "/shrunk"); err != nil {
		t.Fatal(err)
	}
}

// heldByOwners checks that every block of file p is held by exactly its
// owners.
func heldByOwners(ctx context.Context, fs *FS, p string) error {
	f, err := fs.Stat(p)
	if err != nil {
		return err
	}
	locs, err := fs.Locate(ctx, f)
	if err != nil {
		return err
	}
	for _, l := range locs {
		h, o := slices.Clone(l.Holders), slices.Clone(l.Owners)
		slices.Sort(h)
		slices.Sort(o)
		if !slices.Equal(h, o) {
			return fmt.Errorf("%s block %s: held by %v, owned by %v", p, l.ID[:12], l.Holders, l.Owners)
		}
	}
	return nil
}

// repairingCluster is a 3-node test cluster whose repairers have a 1-hour
// grace and started 2 hours ago, past it.
func repairingCluster(t *testing.T) *testCluster {
	c := newTestCluster(t, 3)
	for _, n := range c.nodes {
		n.rep = NewRepairer(n.fs, RepairConfig{GCGrace: time.Hour})
		n.rep.started = time.Now().Add(-2 * time.Hour)
	}
	return c
}
