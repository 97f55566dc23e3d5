package peer_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

// putMany stores n small text files below dir, from the given nodes in
// turn, and returns their contents by path and the paths in order.
func putMany(t *testing.T, c *clustertest.Cluster, dir string, n int) (map[string][]byte, []string) {
	t.Helper()
	inputs := map[string][]byte{}
	var order []string
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("%s/f%05d.txt", dir, i)
		data := fmt.Appendf(nil, "w%d common\nw%d x%d\n", i%97, i%13, i%7)
		if _, err := c.Node(i%c.Len()).FS().Create(context.Background(), p, bytes.NewReader(data), blockstore.CreateOptions{BlockSize: blockstore.MinBlockSize, Replication: 1}); err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
		inputs[p] = data
		order = append(order, p)
	}
	return inputs, order
}

// manyFiles is how many input files TestManyInputFiles uses:
// SHOAL_TEST_FILES, default 1,200 (a job of that many files used to fail at
// submission with a job record over the 64 KiB value limit).
func manyFiles(t *testing.T) int {
	if s := os.Getenv("SHOAL_TEST_FILES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("SHOAL_TEST_FILES=%q", s)
		}
		return n
	}
	return 1200
}

// TestManyInputFiles runs wordcount over a directory of many small files
// on 3 nodes: the job record stays small (the file list is in the spec
// block) and the output equals the sequential run's.
func TestManyInputFiles(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	n := manyFiles(t)
	t0 := time.Now()
	inputs, order := putMany(t, c, "/many", n)
	t.Logf("put %d files in %v", n, time.Since(t0))
	// Every node must know every file before it can be an input anywhere.
	clustertest.Eventually(t, 30*time.Second, func() error {
		for _, nd := range c.Running() {
			if got := len(nd.FS().Files()); got < n {
				return fmt.Errorf("a node knows %d of %d files", got, n)
			}
		}
		return nil
	})
	ctx := context.Background()
	rec, err := c.Node(1).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/many"}, Output: "/many-out", Reducers: 3, NoSpeculativeMaps: true})
	if err != nil {
		t.Fatal(err)
	}
	// Small files are packed into splits of up to 128 MiB, by the node
	// that holds them: one per node here.
	if rec.Splits() > 3 {
		t.Fatalf("job has %d splits of %d small files, want at most 3 (one per node)", rec.Splits(), n)
	}
	r, ok := c.Node(1).Records().Get("job/" + rec.ID)
	if !ok {
		t.Fatal("no job record")
	}
	if len(r.Value) > 1024 {
		t.Fatalf("job record of %d bytes, want at most 1 KiB", len(r.Value))
	}
	t0 = time.Now()
	st := waitJob(t, c.Node(2), rec.ID, 5*time.Minute)
	t.Logf("job ran in %v", time.Since(t0))
	if st.State != scheduler.StateSucceeded {
		t.Fatalf("job %s: %s", st.State, st.Error)
	}
	if cs := st.Counters; cs[job.TOTAL_LAUNCHED_MAPS] != int64(rec.Splits()) || cs[job.DATA_LOCAL_MAPS] != cs[job.TOTAL_LAUNCHED_MAPS] {
		t.Fatalf("maps: %d launched, %d data-local, %d splits", cs[job.TOTAL_LAUNCHED_MAPS], cs[job.DATA_LOCAL_MAPS], rec.Splits())
	}
	waitFiles(t, c.Node(0), "/many-out", 4)
	got, _ := readParts(t, c.Node(0), "/many-out")
	want := sequential(t, "wordcount", nil, inputs, order, 3)
	if string(got) != string(want) {
		t.Fatalf("distributed output (%d bytes) differs from sequential (%d bytes)", len(got), len(want))
	}
	t.Logf("%d files: %d map tasks, job record %d bytes, spec block %d bytes", n, rec.Splits(), len(r.Value), rec.SpecBytes)
}

// TestJobHistory: an ended job's tasks records are folded into its summary
// and deleted; only the newest JobHistory jobs are remembered, and status
// and list keep working from their summaries.
func TestJobHistory(t *testing.T) {
	const keep = 3
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(i int, cfg *peer.Config) { cfg.JobHistory = keep }})
	data := []byte("a b a\nc a\n")
	put(t, c.Node(0), "/h/in.txt", data, blockstore.MinBlockSize)
	want := sequential(t, "wordcount", nil, map[string][]byte{"/h/in.txt": data}, []string{"/h/in.txt"}, 2)
	ctx := context.Background()
	var ids []string
	for i := 0; i < keep+3; i++ {
		out := fmt.Sprintf("/h/out%d", i)
		rec, err := c.Node(i%3).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/h/in.txt"}, Output: out, Reducers: 2})
		if err != nil {
			t.Fatal(err)
		}
		st := waitJob(t, c.Node((i+1)%3), rec.ID, 60*time.Second)
		if st.State != scheduler.StateSucceeded {
			t.Fatalf("job %s: %s", st.State, st.Error)
		}
		waitFiles(t, c.Node(0), out, 3)
		if got, _ := readParts(t, c.Node(0), out); string(got) != string(want) {
			t.Fatalf("job %d: output %q, want %q", i, got, want)
		}
		ids = append(ids, rec.ID)
	}
	// Every node ends with the summaries of the newest keep jobs only, and
	// no task record of any job.
	for _, n := range c.Running() {
		clustertest.Eventually(t, 30*time.Second, func() error {
			recs := n.Records()
			if k := len(recs.Scan("tasks/")); k != 0 {
				return fmt.Errorf("%s: %d tasks records left", n.Name(), k)
			}
			if k, s := len(recs.Scan("job/")), len(recs.Scan("jobstate/")); k != keep || s != keep {
				return fmt.Errorf("%s: %d job and %d state records, want %d", n.Name(), k, s, keep)
			}
			return nil
		})
	}
	// The task attempts' logs go with the history: the kept jobs' are
	// there (one succeeded attempt per task), the others' are gone.
	clustertest.Eventually(t, 30*time.Second, func() error {
		for i, id := range ids {
			ls := c.Node(1).TaskLogs(ctx, id, "")
			if len(ls.Missing) > 0 {
				return fmt.Errorf("%v did not list their logs", ls.Missing)
			}
			st, _ := c.Node(1).Scheduler().Status(id)
			switch kept := i >= len(ids)-keep; {
			case kept && len(ls.Attempts) != st.Maps+st.Reducers:
				return fmt.Errorf("job %s: %d attempt logs, want %d", id, len(ls.Attempts), st.Maps+st.Reducers)
			case !kept && len(ls.Attempts) != 0:
				return fmt.Errorf("job %s beyond the history: %d attempt logs left", id, len(ls.Attempts))
			}
			for _, a := range ls.Attempts {
				if a.Result != "succeeded" || a.Attempt != 1 || a.Size == 0 {
					return fmt.Errorf("job %s: attempt %+v", id, a)
				}
			}
		}
		return nil
	})
	list := c.Node(2).Scheduler().List()
	if len(list) != keep {
		t.Fatalf("list has %d jobs, want %d", len(list), keep)
	}
	for i, st := range list {
		if !slices.Contains(ids[len(ids)-keep:], st.ID) || st.State != scheduler.StateSucceeded || st.MapsDone != st.Maps || st.ReducesDone != 2 {
			t.Fatalf("list[%d] = %s %s maps %d/%d reduces %d", i, st.ID, st.State, st.MapsDone, st.Maps, st.ReducesDone)
		}
		// Reduces launched: 2, plus any backups (speculation on a loaded
		// machine) and the attempts they killed.
		extra := st.Counters[job.TOTAL_LAUNCHED_REDUCES] - 2 - st.Counters[job.NUM_KILLED_REDUCES]
		if st.Counters[job.MAP_INPUT_RECORDS] != 2 || extra < 0 || extra > st.Counters[job.NUM_SPECULATIVE_REDUCES] || len(st.Nodes) == 0 {
			t.Fatalf("summary of %s: counters %v, nodes %v", st.ID, st.Counters, st.Nodes)
		}
	}
	if _, err := c.Node(1).Scheduler().Status(ids[0]); err == nil {
		t.Fatalf("job %s beyond the history still known", ids[0])
	}
}
