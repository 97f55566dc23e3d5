package peer_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

// shortGC shortens the GC grace and the repair interval (test-only
// settings), so that a node that would collect blocks does so at once.
func shortGC(cfg *peer.Config) {
	cfg.GCGrace = 200 * time.Millisecond
	cfg.RepairInterval = 50 * time.Millisecond
	cfg.AntiEntropyInterval = 200 * time.Millisecond
}

func metaPath(c *clustertest.Cluster, i int) string {
	return filepath.Join(c.Config(i).DataDir, "meta.db")
}

func blockCount(t *testing.T, n *peer.Node) int {
	return len(blockSet(t, n))
}

func blockSet(t *testing.T, n *peer.Node) map[blockstore.ID]bool {
	t.Helper()
	bs, err := n.FS().Store().List()
	if err != nil {
		t.Fatal(err)
	}
	out := map[blockstore.ID]bool{}
	for _, b := range bs {
		out[b.ID] = true
	}
	return out
}

// missingBlocks lists the blocks of before that n no longer holds.
func missingBlocks(t *testing.T, n *peer.Node, before map[blockstore.ID]bool) []string {
	t.Helper()
	now := blockSet(t, n)
	var out []string
	for id := range before {
		if !now[id] {
			out = append(out, id.Short())
		}
	}
	return out
}

// waitPasses waits until n's repair loop has run k more passes, the GC
// grace having passed since start, so that any collection it would do is
// done.
func waitPasses(t *testing.T, n *peer.Node, k int64) {
	t.Helper()
	p0 := n.Repairer().Stats.Passes.Load()
	start := time.Now()
	clustertest.Eventually(t, 20*time.Second, func() error {
		if got := n.Repairer().Stats.Passes.Load(); got < p0+k || time.Since(start) < 300*time.Millisecond {
			return fmt.Errorf("%d repair passes of %d", got-p0, k)
		}
		return nil
	})
}

// TestEmptyMetaRefusedThenRecovered: a node restarted on a 0-byte or
// garbled meta.db refuses to start with a one-line error naming the file
// and --recover-meta; with --recover-meta it moves the file aside, serves
// the whole namespace within seconds and deletes no block.
func TestEmptyMetaRefusedThenRecovered(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(_ int, cfg *peer.Config) { shortGC(cfg) }})
	const files = 6
	for i := range files {
		put(t, c.Node(0), fmt.Sprintf("/data/f%d", i), []byte(strings.Repeat(fmt.Sprintf("line %d\n", i), 5000)), blockstore.MinBlockSize)
	}
	var before map[blockstore.ID]bool
	clustertest.Eventually(t, 20*time.Second, func() error {
		if got := len(c.Node(2).FS().Files()); got != files {
			return fmt.Errorf("node3 sees %d files", got)
		}
		before = blockSet(t, c.Node(2))
		if want := blockCount(t, c.Node(0)); len(before) < files || len(before) != want {
			return fmt.Errorf("node3 holds %d blocks, node1 %d", len(before), want)
		}
		return nil
	})
	c.Kill(2)

	for _, bad := range []struct {
		name, data, want string
	}{
		{"empty", "", "is empty (0 bytes)"},
		{"garbled", strings.Repeat("\xde\xad\xbe\xef", 4096), "is corrupt"},
	} {
		if err := os.WriteFile(metaPath(c, 2), []byte(bad.data), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := c.TryRestart(2, nil)
		if err == nil {
			t.Fatalf("%s meta.db: node started", bad.name)
		}
		msg := err.Error()
		if !strings.Contains(msg, metaPath(c, 2)) || !strings.Contains(msg, bad.want) || !strings.Contains(msg, "--recover-meta") || strings.Contains(msg, "\n") {
			t.Fatalf("%s meta.db: error %q; want one line naming the file, the cause and --recover-meta", bad.name, msg)
		}
	}

	start := time.Now()
	n3, err := c.TryRestart(2, func(cfg *peer.Config) { cfg.RecoverMeta = true })
	if err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func() error {
		if n3.Recovering() {
			return fmt.Errorf("still recovering")
		}
		if got := len(n3.FS().Files()); got != files {
			return fmt.Errorf("recovered node sees %d files", got)
		}
		return nil
	})
	t.Logf("recovered the namespace in %v", time.Since(start).Round(time.Millisecond))
	aside, _ := filepath.Glob(metaPath(c, 2) + ".bad-*")
	if len(aside) != 1 {
		t.Fatalf("moved-aside files: %v", aside)
	}
	waitPasses(t, n3, 5)
	if got := n3.Repairer().Stats.Collected.Load(); got != 0 {
		t.Fatalf("recovered node collected %d blocks", got)
	}
	if gone := missingBlocks(t, n3, before); len(gone) > 0 {
		t.Fatalf("recovered node lost blocks %v", gone)
	}
	for i := range files {
		if _, err := n3.FS().Stat(fmt.Sprintf("/data/f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestResetMetaAloneNeverCollects: a node whose metadata was reset and
// that has no peer to re-sync from stays in recovery (the API answers 503)
// and collects no block, however long it runs: its empty namespace is no
// evidence that the blocks are unreferenced.
func TestResetMetaAloneNeverCollects(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Configure: func(_ int, cfg *peer.Config) { shortGC(cfg) }})
	for i := range 3 {
		put(t, c.Node(0), fmt.Sprintf("/f%d", i), []byte(strings.Repeat("x\n", 1000)), blockstore.MinBlockSize)
	}
	before := blockSet(t, c.Node(0))
	c.Kill(0)
	if err := os.Truncate(metaPath(c, 0), 0); err != nil {
		t.Fatal(err)
	}
	n, err := c.TryRestart(0, func(cfg *peer.Config) { cfg.RecoverMeta = true })
	if err != nil {
		t.Fatal(err)
	}
	waitPasses(t, n, 10)
	if got, gone := n.Repairer().Stats.Collected.Load(), missingBlocks(t, n, before); got != 0 || len(gone) > 0 {
		t.Fatalf("collected %d blocks; lost %v", got, gone)
	}
	if !n.Recovering() {
		t.Fatal("a reset node alone left recovery")
	}
	resp, err := http.Get(n.HTTPURL() + "/v1/fs/list?path=/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "recovering metadata") {
		t.Fatalf("API while recovering: %d %s", resp.StatusCode, body)
	}
}

// TestAwayLongerThanTombstoneTTL: a node stopped while a file and a job's
// records are deleted, and away until the others have collected the
// tombstones (TTL shortened), comes back without resurrecting them on any
// node.
func TestAwayLongerThanTombstoneTTL(t *testing.T) {
	const ttl = 1500 * time.Millisecond
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(_ int, cfg *peer.Config) {
		cfg.TombstoneTTL = ttl
		cfg.AntiEntropyInterval = 100 * time.Millisecond
	}})
	ctx := context.Background()
	put(t, c.Node(0), "/keep", []byte("a b\n"), blockstore.MinBlockSize)
	put(t, c.Node(0), "/gone", []byte("c d\n"), blockstore.MinBlockSize)
	rec, err := c.Node(0).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/keep"}, Output: "/out", Reducers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c.Node(0), rec.ID, 30*time.Second); st.State != scheduler.StateSucceeded {
		t.Fatalf("job %s: %s", st.State, st.Error)
	}
	jobKeys := func(n *peer.Node) []string {
		var ks []string
		for _, r := range n.Records().Scan("") {
			if strings.Contains(r.Key, rec.ID) {
				ks = append(ks, r.Key)
			}
		}
		return ks
	}
	// Once the job's task records are folded into its summary (retention),
	// its records are the same on every node.
	var want []string
	clustertest.Eventually(t, 20*time.Second, func() error {
		want = jobKeys(c.Node(0))
		for _, k := range want {
			if !strings.HasPrefix(k, "job/") && !strings.HasPrefix(k, "jobstate/") {
				return fmt.Errorf("job records not yet folded: %v", want)
			}
		}
		if len(want) == 0 {
			return fmt.Errorf("no job records")
		}
		n3 := c.Node(2)
		if _, err := n3.FS().Stat("/gone"); err != nil {
			return err
		}
		if got := jobKeys(n3); strings.Join(got, " ") != strings.Join(want, " ") {
			return fmt.Errorf("node3 holds job records %v, node1 %v", got, want)
		}
		if !n3.Synced() {
			return fmt.Errorf("node3 not in sync")
		}
		return nil
	})
	c.Kill(2)

	if _, err := c.Node(0).FS().Remove("/gone", false); err != nil {
		t.Fatal(err)
	}
	for _, k := range want {
		if err := c.Node(1).Records().Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	// The others collect the tombstones.
	clustertest.Eventually(t, 20*time.Second, func() error {
		for _, n := range c.Running() {
			for _, k := range want {
				if _, ok := n.Records().Lookup(k); ok {
					return fmt.Errorf("%s still holds %s or its tombstone", n.Name(), k)
				}
			}
		}
		return nil
	})

	n3 := c.Restart(2)
	// Recovering() itself may already be over: a re-sync can be quick.
	if !n3.StartedRecovering() {
		t.Fatal("node3 came back stale but does not re-sync before serving")
	}
	clustertest.Eventually(t, 10*time.Second, func() error {
		if n3.Recovering() {
			return fmt.Errorf("node3 still recovering")
		}
		return nil
	})
	// Several more rounds everywhere, then nothing deleted is back.
	rounds := map[string]int64{}
	for _, n := range c.Running() {
		rounds[n.Name()] = n.AntiEntropyStats().Rounds
	}
	clustertest.Eventually(t, 20*time.Second, func() error {
		for _, n := range c.Running() {
			if got := n.AntiEntropyStats().Rounds; got < rounds[n.Name()]+3 {
				return fmt.Errorf("%s ran %d rounds", n.Name(), got-rounds[n.Name()])
			}
		}
		return nil
	})
	for _, n := range c.Running() {
		if _, err := n.FS().Stat("/gone"); err == nil {
			t.Errorf("%s: deleted /gone is back", n.Name())
		}
		if _, err := n.FS().Stat("/keep"); err != nil {
			t.Errorf("%s lost /keep: %v", n.Name(), err)
		}
		if ks := jobKeys(n); len(ks) != 0 {
			t.Errorf("%s: deleted job records are back: %v", n.Name(), ks)
		}
		if _, err := n.Scheduler().Status(rec.ID); err == nil {
			t.Errorf("%s: deleted job %s is back", n.Name(), rec.ID)
		}
	}
}

// TestNewNodeJoinsLargeMetadata: a new node (empty data dir) joins a
// cluster whose metadata is larger than memberlist's 20 MB push/pull limit
// and gets all of it over the data plane.
func TestNewNodeJoinsLargeMetadata(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	c.Kill(2)
	if err := os.RemoveAll(c.Config(2).DataDir); err != nil {
		t.Fatal(err)
	}
	const n = 400
	val := []byte(strings.Repeat("v", 64<<10-1))
	for i := range n {
		if _, err := c.Node(0).Records().Put(fmt.Sprintf("test/big/%04d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	if total := n * len(val); total <= 20<<20 {
		t.Fatalf("%d bytes of metadata is not above 20 MB", total)
	}
	start := time.Now()
	n3 := c.Restart(2)
	clustertest.Eventually(t, 60*time.Second, func() error {
		if got := len(n3.Records().Scan("test/big/")); got != n {
			return fmt.Errorf("the new node holds %d of %d records", got, n)
		}
		if !n3.Synced() {
			return fmt.Errorf("the new node is not in sync")
		}
		return nil
	})
	t.Logf("a new node took %d MB of metadata in %v (%d anti-entropy bytes)",
		n*len(val)>>20, time.Since(start).Round(time.Millisecond), n3.AntiEntropyStats().Bytes)
}
