package peer_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

func runJob(t *testing.T, n *peer.Node, req scheduler.SubmitRequest) scheduler.Status {
	t.Helper()
	rec, err := n.Submit(context.Background(), req)
	if err != nil {
		t.Fatalf("submit %s: %v", req.Name, err)
	}
	return waitJob(t, n, rec.ID, 90*time.Second)
}

func waitFiles(t testing.TB, n *peer.Node, dir string, count int) {
	t.Helper()
	clustertest.Eventually(t, 10*time.Second, func() error {
		if es, _ := n.FS().List(dir); len(es) != count {
			return fmt.Errorf("%d files in %s, want %d", len(es), dir, count)
		}
		return nil
	})
}

// TestTeraSortPipeline runs teragen, terasort and teravalidate on 3 nodes
// whose reducers take their fetched segments three ways: node1 spools
// every one to disk, node2 holds what fits in 200 KB in memory and spools
// the rest, node3 holds them all in memory; each reads its own node's map
// outputs in place.
func TestTeraSortPipeline(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		cfg.ShuffleMemory = []int64{-1, 200 << 10, 0}[i]
	}})
	n := c.Node(0)
	const rows = 30000
	gen := runJob(t, n, scheduler.SubmitRequest{Name: "teragen", Params: map[string]string{"rows": fmt.Sprint(rows), "tasks": "5"}, Output: "/tera/gen"})
	if gen.State != scheduler.StateSucceeded {
		t.Fatalf("teragen %s: %s", gen.State, gen.Error)
	}
	waitFiles(t, n, "/tera/gen", 6)
	input, _ := readParts(t, n, "/tera/gen")
	if len(input) != rows*builtin.TeraRecordLen {
		t.Fatalf("teragen wrote %d bytes, want %d", len(input), rows*builtin.TeraRecordLen)
	}
	// Spread over the nodes: the 5 generator tasks did not all run on one.
	sorted := runJob(t, c.Node(1), scheduler.SubmitRequest{Name: "terasort", Inputs: []string{"/tera/gen"}, Output: "/tera/sorted", Reducers: 4})
	if sorted.State != scheduler.StateSucceeded {
		t.Fatalf("terasort %s: %s", sorted.State, sorted.Error)
	}
	waitFiles(t, n, "/tera/sorted", 5)
	for i := range 3 {
		st := &c.Node(i).Scheduler().Stats
		held, fetched := st.ShuffleHeldBytes.Load(), st.ShuffleFetchedBytes.Load()
		t.Logf("node%d held %d of the %d bytes its reducers fetched", i+1, held, fetched)
		if fetched == 0 {
			continue // it ran no reduce
		}
		if i == 0 && held != 0 || i == 1 && (held == 0 || fetched > 200<<10 && held >= fetched) || i == 2 && held != fetched {
			t.Errorf("node%d held %d of its %d fetched bytes in memory", i+1, held, fetched)
		}
	}
	got, _ := readParts(t, n, "/tera/sorted")
	lines := strings.SplitAfter(string(input), "\n")
	lines = lines[:len(lines)-1]
	slices.Sort(lines)
	if want := strings.Join(lines, ""); string(got) != want {
		t.Fatalf("terasort output (%d bytes) is not the sorted input (%d bytes)", len(got), len(want))
	}
	// Range partitioning is balanced on uniform keys.
	es, _ := n.FS().List("/tera/sorted")
	var sizes []int64
	for _, e := range es {
		if strings.HasPrefix(e.Name, "part-") {
			sizes = append(sizes, e.Size)
		}
	}
	mean := float64(len(got)) / float64(len(sizes))
	for i, sz := range sizes {
		if float64(sz) > 1.3*mean {
			t.Fatalf("part %d holds %d bytes, more than 1.3x the mean %.0f: %v", i, sz, mean, sizes)
		}
	}

	sum := fmt.Sprintf("%x", uint64(gen.Counters[builtin.CounterChecksum]))
	val := runJob(t, c.Node(2), scheduler.SubmitRequest{Name: "teravalidate", Params: map[string]string{"checksum": sum}, Inputs: []string{"/tera/sorted"}, Output: "/tera/valid"})
	if val.State != scheduler.StateSucceeded {
		t.Fatalf("teravalidate %s: %s", val.State, val.Error)
	}
	// A wrong checksum no retry can change: the job fails after one
	// attempt (job.Permanent), with the default --max-attempts.
	wrong := fmt.Sprintf("%x", uint64(gen.Counters[builtin.CounterChecksum])+1)
	val = runJob(t, c.Node(2), scheduler.SubmitRequest{Name: "teravalidate", Params: map[string]string{"checksum": wrong}, Inputs: []string{"/tera/sorted"}, Output: "/tera/wrongsum"})
	if val.State != scheduler.StateFailed || !strings.Contains(val.Error, "checksum "+sum+", want "+wrong) || val.Counters[job.NUM_FAILED_REDUCES] != 1 {
		t.Fatalf("teravalidate with a wrong checksum: %s %q after %d failed reduce attempts, want failed after 1", val.State, val.Error, val.Counters[job.NUM_FAILED_REDUCES])
	}
	t.Logf("wrong checksum: %s", val.Error)

	// Deliberately broken inputs fail validation, with the reason.
	swapped := []byte(strings.Join(lines, ""))
	a, b := 100*builtin.TeraRecordLen, 200*builtin.TeraRecordLen
	tmp := append([]byte(nil), swapped[a:a+builtin.TeraRecordLen]...)
	copy(swapped[a:], swapped[b:b+builtin.TeraRecordLen])
	copy(swapped[b:], tmp)
	put(t, n, "/bad/unsorted/part-r-00000", swapped, blockstore.MinBlockSize)
	sortedBytes := []byte(strings.Join(lines, ""))
	put(t, n, "/bad/truncated/part-r-00000", sortedBytes[:len(sortedBytes)-37], blockstore.MinBlockSize)
	for _, dir := range []string{"/bad/unsorted", "/bad/truncated"} {
		st := runJob(t, n, scheduler.SubmitRequest{Name: "teravalidate", Inputs: []string{dir}, Output: dir + "-report"})
		if st.State != scheduler.StateFailed || st.Error == "" || st.Counters[job.NUM_FAILED_REDUCES] != 1 {
			t.Fatalf("teravalidate of %s: %s %q after %d failed reduce attempts, want failed after 1", dir, st.State, st.Error, st.Counters[job.NUM_FAILED_REDUCES])
		}
		t.Logf("teravalidate %s: %s", dir, st.Error)
	}
	if bytes.Contains(got, []byte("\t")) {
		t.Fatal("terasort output carries a tab: raw output lost")
	}
}
