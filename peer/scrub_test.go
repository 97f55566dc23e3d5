package peer_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
)

// TestScrubFindsBitRot: a flipped byte in one node's copy of a block that
// no one reads is found by that node's background scrub, quarantined and
// counted as a read would, and the repair loop restores the copy, so the
// block is back at R = 3 good copies. The repair loop alone never looks
// inside a copy: with the scrub off the rot stays.
func TestScrubFindsBitRot(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(_ int, cfg *peer.Config) {
		cfg.RepairInterval = time.Second
	}})
	ctx := context.Background()
	data := corpus(11, 4*blockstore.MinBlockSize)
	put(t, c.Node(0), "/cold/data.bin", data, blockstore.MinBlockSize)
	f, err := c.Node(0).FS().Stat("/cold/data.bin")
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Node(0).FS().Manifest(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	victim := m.Blocks[2].ID
	holder := c.Node(1)
	st := holder.LocalBlocks()
	if !st.Has(victim) {
		t.Fatalf("%s holds no copy of block %s at R=3", holder.Name(), victim.Short())
	}
	// Bit rot: one byte flipped in place, the file's time as it was long
	// ago (so the scrub does not take it for a block being written).
	h := victim.String()
	p := filepath.Join(st.Dir(), h[:2], h)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/3] ^= 0x10
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)

	if holder.Scrubber() == nil {
		t.Fatal("no scrub running with the default configuration")
	}
	// The scrub counts a corrupt copy after the store has quarantined and
	// counted it: wait for the scrub's count.
	clustertest.Eventually(t, 60*time.Second, func() error {
		if n := holder.Scrubber().Stats.Corrupt.Load(); n != 1 {
			return fmt.Errorf("%s: the scrub found %d corrupt copies, want 1", holder.Name(), n)
		}
		return nil
	})
	if n := st.Corrupt.Load(); n != 1 {
		t.Fatalf("%s: %d corrupt copies counted by the store, want 1", holder.Name(), n)
	}
	clustertest.Eventually(t, 60*time.Second, func() error {
		for i := range 3 {
			s := c.Node(i).LocalBlocks()
			if !s.Has(victim) {
				return fmt.Errorf("%s holds no copy of block %s", c.Node(i).Name(), victim.Short())
			}
		}
		return nil
	})
	for i := range 3 {
		if err := c.Node(i).LocalBlocks().Verify(victim); err != nil {
			t.Fatalf("%s: %v", c.Node(i).Name(), err)
		}
	}
	if st.Corrupt.Load() != 1 {
		t.Fatalf("%d corrupt copies counted, want 1 (the restored copy is good)", st.Corrupt.Load())
	}
	var got bytes.Buffer
	if _, err := holder.FS().WriteTo(ctx, f, &got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("read back after repair: %v, equal %v", err, bytes.Equal(got.Bytes(), data))
	}
	if v := series(scrape(t, holder), "shoal_blocks_scrubbed_bytes_total"); v < float64(len(raw)) {
		t.Fatalf("shoal_blocks_scrubbed_bytes_total %v, want at least the %d bytes of the rotten block", v, len(raw))
	}
}
