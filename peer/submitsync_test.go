package peer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

// TestSubmitPullsItsFilesRecords: a submission sees the files under its
// inputs and its output that only another member knows of yet (as after a
// put through that member a moment ago): Submit pulls those records from
// every member first, and only those. The test plants a file record on
// node1 alone (merged as from a state exchange, which nodes do not pass
// on; anti-entropy is an hour away), once under an input directory and
// once under an output, and submits through node2.
func TestSubmitPullsItsFilesRecords(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		cfg.AntiEntropyInterval = time.Hour
	}})
	ctx := context.Background()
	text := []byte("the quick brown fox jumps over the lazy dog the end\n")
	put(t, c.Node(0), "/in/a.txt", text, blockstore.MinBlockSize)
	const key = blockstore.FileKeyPrefix + "/in/a.txt"
	clustertest.Eventually(t, 10*time.Second, func() error {
		for i := range c.Len() {
			if _, ok := c.Node(i).Records().Get(key); !ok {
				return errors.New(c.Node(i).Name() + " lacks /in/a.txt")
			}
		}
		return nil
	})
	plant := func(path string) {
		t.Helper()
		r, _ := c.Node(0).Records().Get(key)
		var f blockstore.FileInfo
		if err := msgpack.Unmarshal(r.Value, &f); err != nil {
			t.Fatal(err)
		}
		f.Path = path
		v, err := msgpack.Marshal(&f)
		if err != nil {
			t.Fatal(err)
		}
		v2 := gossip.Version{HLC: r.Version.HLC + 1, Node: r.Version.Node}
		if n, err := c.Node(0).Records().Merge([]gossip.Record{{Key: blockstore.FileKeyPrefix + path, Value: v, Version: v2}}); n != 1 || err != nil {
			t.Fatalf("plant %s: %d merged, %v", path, n, err)
		}
		if _, ok := c.Node(1).Records().Get(blockstore.FileKeyPrefix + path); ok {
			t.Fatalf("%s reached node2 before the submission", path)
		}
	}

	plant("/taken/part-r-00000")
	_, err := c.Node(1).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/in"}, Output: "/taken", Reducers: 1})
	if !errors.Is(err, scheduler.ErrBadRequest) {
		t.Fatalf("submit over an output only node1 knew of: %v, want it refused as existing", err)
	}

	plant("/only1/b.txt")
	rec, err := c.Node(1).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/only1"}, Output: "/out", Reducers: 1})
	if err != nil {
		t.Fatalf("submit of an input only node1 knew of: %v", err)
	}
	if st := waitJob(t, c.Node(1), rec.ID, time.Minute); st.State != scheduler.StateSucceeded {
		t.Fatalf("job %s: %s", st.State, st.Error)
	}
	got, _ := readParts(t, c.Node(1), "/out")
	want := sequential(t, "wordcount", nil, map[string][]byte{"/only1/b.txt": text}, []string{"/only1/b.txt"}, 1)
	if string(got) != string(want) {
		t.Fatalf("output %q, want the sequential run's %q", got, want)
	}
}
