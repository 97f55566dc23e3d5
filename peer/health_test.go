package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"shoal.dev/shoal/client"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/scheduler"
)

// TestDeletedDataDir: a node whose data dir is deleted under it reports
// unhealthy on /v1/health with the reason, the others see it, and it takes
// no tasks: a job submitted then runs on the others and gives the
// sequential output.
func TestDeletedDataDir(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	ctx := context.Background()
	data := corpus(11, 300<<10)
	put(t, c.Node(0), "/in", data, blockstore.MinBlockSize)
	sick := c.Node(2)
	if err := os.RemoveAll(c.Config(2).DataDir); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(sick.HTTPURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Health(ctx)
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 503 || !strings.Contains(apiErr.Message, "meta.db is missing (was the data dir deleted?)") {
		t.Fatalf("health of a node without its data dir: %v", err)
	}
	t.Logf("health: %v", err)
	clustertest.Eventually(t, 20*time.Second, func() error {
		for _, m := range c.Node(0).Members() {
			if m.Name == sick.Name() && m.Unhealthy == "" {
				return errors.New("node1 does not see node3 unhealthy yet")
			}
		}
		return nil
	})
	rec, err := c.Node(0).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/in"}, Output: "/out", Reducers: 3})
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, c.Node(1), rec.ID, 60*time.Second)
	if st.State != scheduler.StateSucceeded {
		t.Fatalf("job %s: %s", st.State, st.Error)
	}
	for _, p := range st.Participants {
		if p == sick.Name() {
			t.Fatalf("the unhealthy node is a participant: %v", st.Participants)
		}
	}
	waitFiles(t, c.Node(0), "/out", 4)
	got, _ := readParts(t, c.Node(0), "/out")
	if want := sequential(t, "wordcount", nil, map[string][]byte{"/in": data}, []string{"/in"}, 3); !bytes.Equal(got, want) {
		t.Fatal("output differs from the sequential run")
	}
	if n := st.Counters[job.NUM_FAILED_MAPS] + st.Counters[job.NUM_FAILED_REDUCES]; n != 0 {
		t.Fatalf("%d failed attempts", n)
	}
}

// TestShuffleDiskFull: a node whose shuffle space is full (a 4 KiB tmpfs
// over its shuffle dir, default --reserve) refuses its spills at the door,
// says it is low on disk, and takes no more tasks: the job succeeds on the
// others with the sequential output. (Before --reserve, its attempts
// failed with "no space left on device" until the job failed.) Needs root.
func TestShuffleDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tiny tmpfs")
	}
	c := clustertest.Start(t, 3, clustertest.Options{})
	shuffleDir := filepath.Join(c.Config(2).DataDir, "shuffle")
	if err := os.MkdirAll(shuffleDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4k", fmt.Sprintf("shoaltest%d", os.Getpid()), shuffleDir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", shuffleDir).CombinedOutput(); err != nil {
			t.Errorf("unmount the test's tmpfs at %s: %v %s", shuffleDir, err, out)
		}
	})
	data := corpus(12, 1<<20)
	put(t, c.Node(0), "/in", data, blockstore.MinBlockSize)
	rec, err := c.Node(0).Submit(context.Background(), scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/in"}, Output: "/out", Reducers: 3, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, c.Node(1), rec.ID, 90*time.Second)
	if st.State != scheduler.StateSucceeded {
		t.Fatalf("job %s: %q", st.State, st.Error)
	}
	waitFiles(t, c.Node(0), "/out", 4)
	got, _ := readParts(t, c.Node(0), "/out")
	if want := sequential(t, "wordcount", nil, map[string][]byte{"/in": data}, []string{"/in"}, 3); !bytes.Equal(got, want) {
		t.Fatal("output differs from the sequential run")
	}
	m := waitLow(t, c.Node(0), "node3")
	h, err := mustClient(t, c.Node(2)).Health(context.Background())
	if err != nil || h.Status != "low_disk" || !strings.Contains(h.Error, shuffleDir) {
		t.Fatalf("health of node3: %+v, %v", h, err)
	}
	t.Logf("node3: %s (members: free %d, reserve %d); failed maps %d, reduces %d", h.Error, m.DiskFree, m.DiskReserve, st.Counters[job.NUM_FAILED_MAPS], st.Counters[job.NUM_FAILED_REDUCES])
}
