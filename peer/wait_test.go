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
	"shoal.dev/shoal/scheduler"
)

// TestJobWaitsForItsInput: a map task whose input block is on no alive
// member (its only holder is down, as the far side of a network partition
// is) waits instead of using up attempts, says so in the job's status,
// and runs when the holder is back: the job succeeds with the sequential
// run's output and no failed attempt. A job whose task timeout passes
// while it waits fails, saying why. Before the wait, each read counted as
// a failure outside the job's code and the first job failed after
// 2 × --max-attempts of them (here 2, a second or two).
func TestJobWaitsForItsInput(t *testing.T) {
	c := clustertest.Start(t, 4, clustertest.Options{})
	ctx := context.Background()
	var data bytes.Buffer
	for i := range 20_000 {
		fmt.Fprintf(&data, "w%d common x%d\n", i%101, i%7)
	}
	in := data.Bytes()
	if _, err := c.Node(0).FS().Create(ctx, "/in/r1.txt", bytes.NewReader(in), blockstore.CreateOptions{BlockSize: blockstore.MinBlockSize, Replication: 1}); err != nil {
		t.Fatal(err)
	}
	want := sequential(t, "wordcount", nil, map[string][]byte{"/in/r1.txt": in}, []string{"/in/r1.txt"}, 2)

	// The holder of some block, not node1 (which submits and watches).
	f, err := c.Node(0).FS().Stat("/in/r1.txt")
	if err != nil {
		t.Fatal(err)
	}
	locs, err := c.Node(0).FS().Locate(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	victim := -1
	for _, l := range locs[1:] {
		for i := 1; i < c.Len() && victim < 0; i++ {
			if slices.Contains(l.Holders, c.Node(i).Name()) {
				victim = i
			}
		}
	}
	if victim < 0 {
		t.Fatalf("no block of /in/r1.txt on node2..node4: %+v", locs)
	}
	name := c.Node(victim).Name()
	c.Kill(victim)
	clustertest.Eventually(t, 30*time.Second, func() error {
		for _, n := range c.Running() {
			for _, m := range n.Members() {
				if m.Name == name && m.State == "alive" {
					return fmt.Errorf("%s still sees %s alive", n.Name(), name)
				}
			}
		}
		return nil
	})

	waits, err := c.Node(0).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/in/r1.txt"}, Output: "/out/waits", Reducers: 2, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	bounded, err := c.Node(0).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/in/r1.txt"}, Output: "/out/bounded", Reducers: 2, MaxAttempts: 1, TaskTimeout: "3s"})
	if err != nil {
		t.Fatal(err)
	}

	// The bounded job fails once its task timeout has passed, saying why.
	st := waitJob(t, c.Node(0), bounded.ID, 60*time.Second)
	if st.State != scheduler.StateFailed || !strings.Contains(st.Error, "is on no alive member; waited 3s for a member holding it to come back") {
		t.Fatalf("job with a 3s task timeout: %s %q", st.State, st.Error)
	}
	t.Logf("bounded: %s", st.Error)

	// The other waits, and its status says so, with no failed attempt.
	clustertest.Eventually(t, 30*time.Second, func() error {
		st, err := c.Node(0).Scheduler().Status(waits.ID)
		if err != nil {
			return err
		}
		if st.State != scheduler.StateRunning {
			t.Fatalf("job %s while its input's holder is down: %s", st.State, st.Error)
		}
		for task, line := range st.TaskStatus {
			if strings.HasPrefix(line, "waiting for its input: ") && strings.Contains(line, "on no alive member") {
				t.Logf("%s: %s", task, line)
				return nil
			}
		}
		return fmt.Errorf("no task says it waits for its input: %v", st.TaskStatus)
	})

	c.Restart(victim)
	st = waitJob(t, c.Node(0), waits.ID, 60*time.Second)
	if st.State != scheduler.StateSucceeded {
		t.Fatalf("job %s after %s came back: %s", st.State, name, st.Error)
	}
	if n := st.Counters[job.NUM_FAILED_MAPS]; n != 0 {
		t.Errorf("%d failed map attempts: waiting for input counted as failures", n)
	}
	got, _ := readParts(t, c.Node(victim), "/out/waits")
	if !bytes.Equal(got, want) {
		t.Fatalf("output (%d bytes) differs from the sequential run (%d bytes)", len(got), len(want))
	}
	if len(st.TaskStatus) != 0 {
		t.Errorf("task status lines after the end: %v", st.TaskStatus)
	}
}
