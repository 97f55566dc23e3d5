package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
)

// TestDrain drains one of four nodes holding files of replication 1, 2
// and 3. While it drains, a watcher checks every block over and over: the
// drained node first, then the others, so that a copy handed over between
// the two looks is never missed (copies are only added elsewhere during a
// drain). No block ever has fewer copies than its file asks for; the
// drained node then says it is done and leaves, the three others hold
// every block R times, and every file reads back the same.
func TestDrain(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	c := clustertest.Start(t, 4, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		cfg.RepairInterval = 300 * time.Millisecond
	}})
	ctx := context.Background()

	type file struct {
		path string
		data []byte
		repl int
	}
	var files []file
	for i := range 9 {
		data := make([]byte, 100_000+rng.IntN(300_000))
		for j := range data {
			data[j] = byte('a' + rng.IntN(26))
			if rng.IntN(60) == 0 {
				data[j] = '\n'
			}
		}
		f := file{path: fmt.Sprintf("/d/f%d", i), data: data, repl: 1 + i%3}
		if _, err := c.Node(i%4).FS().Create(ctx, f.path, bytes.NewReader(data), blockstore.CreateOptions{BlockSize: blockstore.MinBlockSize, Replication: f.repl, Overwrite: true}); err != nil {
			t.Fatalf("put %s: %v", f.path, err)
		}
		files = append(files, f)
	}
	// A file of replication 4 cannot keep its copies on three nodes: the
	// drain is refused, naming it, until it is gone.
	if _, err := c.Node(0).FS().Create(ctx, "/d/r4", strings.NewReader("four\n"), blockstore.CreateOptions{Replication: 4, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	drainer := c.Node(3)
	clustertest.Eventually(t, 10*time.Second, func() error {
		_, err := drainer.FS().Stat("/d/r4")
		return err
	})
	_, err := drainer.StartDrain(false)
	if !errors.Is(err, peer.ErrDrain) || !strings.Contains(err.Error(), "/d/r4 asks for 4 copies and 3 members would remain") {
		t.Fatalf("drain with a file of replication 4: %v", err)
	}
	if _, err := c.Node(0).FS().Remove("/d/r4", false); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func() error {
		if _, err := drainer.FS().Stat("/d/r4"); err == nil {
			return errors.New("the drained node still sees /d/r4")
		}
		return nil
	})

	// Every block (manifests too) and the replication its file asks for.
	type block struct {
		id   blockstore.ID
		repl int
		file string
	}
	var blocks []block
	for _, f := range files {
		fi, err := c.Node(0).FS().Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.Node(0).FS().Manifest(ctx, fi)
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, block{fi.Manifest, f.repl, f.path})
		for _, b := range m.Blocks {
			blocks = append(blocks, block{b.ID, f.repl, f.path})
		}
	}
	others := []*peer.Node{c.Node(0), c.Node(1), c.Node(2)}
	copies := func(b block, withDrainer bool) int {
		n := 0
		if withDrainer && drainer.LocalBlocks().Has(b.id) {
			n++
		}
		for _, o := range others {
			if o.LocalBlocks().Has(b.id) {
				n++
			}
		}
		return n
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		for _, b := range blocks {
			if n := copies(b, true); n < b.repl {
				return fmt.Errorf("%s block %s: %d copies of %d before the drain", b.file, b.id.Short(), n, b.repl)
			}
		}
		return nil
	})
	held := 0
	for _, b := range blocks {
		if drainer.LocalBlocks().Has(b.id) {
			held++
		}
	}
	if held == 0 {
		t.Fatal("the node to drain holds no block: nothing would be tested")
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var violation error
	var looks int
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, b := range blocks {
				if n := copies(b, true); n < b.repl && violation == nil {
					violation = fmt.Errorf("%s block %s had %d copies of %d during the drain", b.file, b.id.Short(), n, b.repl)
				}
			}
			looks++
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	info, err := drainer.StartDrain(false)
	if err != nil || !info.Draining || info.Done {
		t.Fatalf("start drain: %+v, %v", info, err)
	}
	// Others see it draining and leave it out of their rings.
	clustertest.Eventually(t, 10*time.Second, func() error {
		for _, o := range others {
			if o.Ring().Len() != 3 {
				return fmt.Errorf("%s's ring has %d members", o.Name(), o.Ring().Len())
			}
			for _, m := range o.Members() {
				if m.Name == drainer.Name() && !m.Draining {
					return fmt.Errorf("%s does not see %s draining", o.Name(), m.Name)
				}
			}
		}
		return nil
	})
	// A file written now gets no copy on the draining node.
	if _, err := c.Node(0).FS().Create(ctx, "/d/during", strings.NewReader(strings.Repeat("x\n", 50_000)), blockstore.CreateOptions{BlockSize: blockstore.MinBlockSize, Replication: 3, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	fi, _ := c.Node(0).FS().Stat("/d/during")
	if m, err := c.Node(0).FS().Manifest(ctx, fi); err != nil {
		t.Fatal(err)
	} else {
		for _, b := range m.Blocks {
			if drainer.LocalBlocks().Has(b.ID) {
				t.Errorf("block %s of a file written during the drain was stored on the draining node", b.ID.Short())
			}
		}
	}

	select {
	case <-drainer.Drained():
	case <-time.After(90 * time.Second):
		t.Fatalf("drain not done after 90s: %+v", drainer.DrainStatus())
	}
	if st := drainer.DrainStatus(); !st.Done || st.BlocksLeft != 0 {
		t.Errorf("status when drained: %+v", st)
	}
	close(stop)
	wg.Wait()
	if violation != nil {
		t.Fatal(violation)
	}
	t.Logf("%d blocks, %d held by the drained node, checked %d times during the drain", len(blocks), held, looks)
	c.Leave(3)

	for _, b := range blocks {
		if n := copies(b, false); n < b.repl {
			t.Errorf("%s block %s: %d copies of %d on the remaining nodes", b.file, b.id.Short(), n, b.repl)
		}
	}
	for _, f := range files {
		fi, err := c.Node(1).FS().Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := c.Node(1).FS().WriteTo(ctx, fi, &buf); err != nil || !bytes.Equal(buf.Bytes(), f.data) {
			t.Errorf("read %s after the drain: %d bytes, %v; want %d", f.path, buf.Len(), err, len(f.data))
		}
	}
}
