package blockstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"
)

// splitterCuts returns the block lengths the Splitter makes of data.
func splitterCuts(t *testing.T, st *Store, data []byte, bs int64) []int64 {
	t.Helper()
	sp := NewSplitter(st, bytes.NewReader(data), bs)
	defer sp.Close()
	var out []int64
	for {
		c, err := sp.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c.Size)
		c.Discard()
	}
}

func TestResumablePut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newTestCluster(t, 4)
	data := textOf(7, 500<<10)
	bs := int64(MinBlockSize)
	var refs []BlockRef
	// Blocks go through different agents, as after a failover.
	agents := []string{"n1", "n2", "n3"}
	st, err := OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cuts := splitterCuts(t, st, data, bs)
	for off, i := int64(0), 0; off < int64(len(data)); i++ {
		n := cuts[i]
		ack, err := c.nodes[agents[i%3]].fs.PutBlock(ctx, "/r", i, bytes.NewReader(data[off:off+n]), n, 3)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Copies != 3 || ack.Replication != 3 || ack.Size != n || ack.ID != Sum(data[off:off+n]) {
			t.Fatalf("ack %+v", ack)
		}
		refs = append(refs, BlockRef{ID: ack.ID, Size: ack.Size})
		off += n
	}
	req := CommitRequest{Path: "/r", BlockSize: bs, Replication: 3, Blocks: refs}

	// A block no member holds: the commit names it, nothing appears.
	bad := slices.Clone(refs)
	bad[2] = BlockRef{ID: Sum([]byte("never sent")), Size: 10}
	_, err = c.nodes["n4"].fs.Commit(ctx, CommitRequest{Path: "/r", BlockSize: bs, Replication: 3, Blocks: bad})
	var me *MissingBlocksError
	if !errors.As(err, &me) || !slices.Equal(me.Indexes, []int{2}) {
		t.Fatalf("commit with an unsent block: %v", err)
	}
	// A wrong length counts as missing too.
	bad[2] = BlockRef{ID: refs[2].ID, Size: refs[2].Size - 1}
	if _, err := c.nodes["n4"].fs.Commit(ctx, CommitRequest{Path: "/r", BlockSize: bs, Replication: 3, Blocks: bad}); !errors.As(err, &me) {
		t.Fatalf("commit with a wrong length: %v", err)
	}
	if _, err := c.nodes["n1"].fs.Stat("/r"); err == nil {
		t.Fatal("a refused commit left a file")
	}

	f, err := c.nodes["n4"].fs.Commit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != int64(len(data)) || f.Blocks != len(refs) {
		t.Fatalf("committed %+v", f)
	}
	// The same commit again (its answer lost with the agent): the same file.
	again, err := c.nodes["n2"].fs.Commit(ctx, req)
	if err != nil || again != f {
		t.Fatalf("second commit: %+v %v", again, err)
	}
	// Different blocks on the same path without force: refused.
	if _, err := c.nodes["n2"].fs.Commit(ctx, CommitRequest{Path: "/r", BlockSize: bs, Replication: 3, Blocks: refs[:1]}); !errors.Is(err, ErrExists) {
		t.Fatalf("commit over another file: %v", err)
	}
	// The file is the same as a Create of the same bytes.
	g, err := c.nodes["n1"].fs.Create(ctx, "/c", bytes.NewReader(data), CreateOptions{BlockSize: bs})
	if err != nil || g.Manifest != f.Manifest {
		t.Fatalf("Create of the same bytes: manifest %s, commit's %s (%v)", g.Manifest.Short(), f.Manifest.Short(), err)
	}
	c.checkReplicas(ctx, "n3")

	// Reads from any offset.
	for _, off := range []int64{0, 1, bs - 1, bs, 3*bs + 11, int64(len(data)) - 1, int64(len(data))} {
		var buf bytes.Buffer
		n, err := c.nodes["n3"].fs.WriteToFrom(ctx, f, off, &buf)
		if err != nil || n != int64(len(data))-off || !bytes.Equal(buf.Bytes(), data[off:]) {
			t.Fatalf("read from %d: %d bytes, %v", off, n, err)
		}
	}
	if _, err := c.nodes["n3"].fs.WriteToFrom(ctx, f, int64(len(data))+1, io.Discard); err == nil {
		t.Fatal("read past the end accepted")
	}

	// Bad requests.
	for _, r := range []CommitRequest{
		{Path: "rel", BlockSize: bs, Replication: 3},
		{Path: "/x", BlockSize: 1000, Replication: 3},
		{Path: "/x", BlockSize: bs, Replication: 0},
		{Path: "/x", BlockSize: bs, Replication: 3, Blocks: []BlockRef{{ID: refs[0].ID, Size: bs + 1}}},
		{Path: "/x", BlockSize: bs, Replication: 3, Blocks: []BlockRef{{ID: refs[0].ID, Size: 0}}},
	} {
		if _, err := c.nodes["n1"].fs.Commit(ctx, r); err == nil {
			t.Errorf("commit %+v accepted", r)
		}
	}
	if _, err := c.nodes["n1"].fs.PutBlock(ctx, "/x", 0, bytes.NewReader([]byte("abc")), 4, 3); err == nil {
		t.Error("a short block body accepted")
	}
	if _, err := c.nodes["n1"].fs.PutBlock(ctx, "/x", 0, bytes.NewReader(nil), 0, 3); err == nil {
		t.Error("an empty block accepted")
	}
}
