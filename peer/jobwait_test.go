package peer_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/client"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
	"shoal.dev/shoal/scheduler"
)

// TestJobWaitHoldsTheAnswer: GET /v1/jobs/ID?wait=D holds the answer of a
// running job for D, and answers as soon as the job ends, with its final
// status, on a node that neither submitted nor ended it. Before, a
// client learned of the end only at its next poll (the CLI's every
// 300 ms). A bad wait is a 400.
func TestJobWaitHoldsTheAnswer(t *testing.T) {
	release := make(chan struct{})
	reg := job.NewRegistry()
	builtin.Register(reg)
	wrapWordcount(t, reg, "held", func(_ job.TaskInfo, inner job.Mapper) job.Mapper {
		return job.MapperFunc(func(k, v []byte, out job.Emitter) error {
			<-release // the test says when the map may go on
			return inner.Map(k, v, out)
		})
	})
	c := clustertest.Start(t, 3, clustertest.Options{Registry: reg})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the cluster closes: a failed test must not leave the map blocked
	ctx := context.Background()
	in := []byte("one two three two\n")
	if _, err := c.Node(0).FS().Create(ctx, "/in", bytes.NewReader(in), blockstore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec, err := c.Node(0).Submit(ctx, scheduler.SubmitRequest{Name: "held", Inputs: []string{"/in"}, Output: "/out"})
	if err != nil {
		t.Fatal(err)
	}
	// Ask a node that is not the ender (the ring owner of the job's ID).
	asked := c.Node(1)
	if ender := asked.Ring().Owner(rec.ID); ender == asked.Name() {
		asked = c.Node(2)
	}
	cl, err := client.New(asked.HTTPURL(), c.Config(0).Secret.APIToken())
	if err != nil {
		t.Fatal(err)
	}

	// Running, held for the whole wait (the map is blocked).
	const wait = 200 * time.Millisecond
	start := time.Now()
	st, err := cl.JobWait(ctx, rec.ID, wait)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); st.State != scheduler.StateRunning || took < wait {
		t.Fatalf("wait %s on a running job: %s after %s, want running after at least %s", wait, st.State, took, wait)
	}

	// Ended while held: the answer is the final status, long before the wait.
	done := make(chan error, 1)
	go func() {
		st, err = cl.JobWait(ctx, rec.ID, client.MaxJobWait)
		done <- err
	}()
	unblock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(client.MaxJobWait + 10*time.Second):
		t.Fatal("the held answer never came")
	}
	if st.State != scheduler.StateSucceeded {
		t.Fatalf("held answer: %s %q, want succeeded", st.State, st.Error)
	}
	got, _ := readParts(t, asked, "/out")
	if want := sequential(t, "wordcount", nil, map[string][]byte{"/in": in}, []string{"/in"}, 1); !bytes.Equal(got, want) {
		t.Fatalf("output %q, want the sequential run's %q", got, want)
	}

	for _, bad := range []string{"-1s", "61s", "soon"} {
		req, err := http.NewRequest("GET", asked.HTTPURL()+"/v1/jobs/"+rec.ID+"?wait="+bad, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+c.Config(0).Secret.APIToken())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "wait") {
			t.Errorf("wait=%s: %d %s, want a 400 naming the wait", bad, resp.StatusCode, body)
		}
	}
}
