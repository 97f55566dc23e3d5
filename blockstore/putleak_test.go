package blockstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// cancelAfter yields lines forever and cancels its context once it has
// yielded n bytes: a client that goes away in the middle of a put.
type cancelAfter struct {
	n, done int
	cancel  context.CancelFunc
}

func (r *cancelAfter) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
		if i%64 == 63 {
			p[i] = '\n'
		}
	}
	r.done += len(p)
	if r.done >= r.n {
		r.cancel()
	}
	return len(p), nil
}

// TestFailedPutLeavesNoSpool: a put cut short, whatever block it is at,
// removes every spool file it made (each held a descriptor too).
func TestFailedPutLeavesNoSpool(t *testing.T) {
	c := newTestCluster(t, 1)
	fs := c.nodes["n1"].fs
	tmp := filepath.Join(fs.cfg.Store.dir, "tmp")
	for i := range 60 {
		ctx, cancel := context.WithCancel(context.Background())
		r := &cancelAfter{n: (2 + i%5) * MinBlockSize, cancel: cancel}
		if _, err := fs.Create(ctx, "/f", r, CreateOptions{BlockSize: MinBlockSize, Replication: 1}); err == nil {
			t.Fatal("a canceled put succeeded")
		}
		cancel()
		if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
			t.Fatalf("after failed put %d: %d spool files left in %s", i, len(ents), tmp)
		}
	}
}
