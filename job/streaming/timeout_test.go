package streaming

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/job"
)

// bigInput is a map task's input of n lines.
func bigInput(n int) job.RecordSource {
	line := []byte(strings.Repeat("word ", 20))
	return func(fn func(k, v []byte) error) error {
		for i := 0; i < n; i++ {
			if err := fn(nil, line); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestTaskTimeoutKillsHungChild: a child that reads nothing times the
// task out; its process group is gone (checked by the harness). A child
// that works, and one that only writes reporter lines, do not time out.
func TestTaskTimeoutKillsHungChild(t *testing.T) {
	h := newHarness(t)
	run := func(mapper string, in job.RecordSource) (job.Counters, error) {
		j, filled := h.resolve(map[string]string{"mapper": mapper, "reducer": "NONE"})
		task := job.Task{Job: j, Info: job.TaskInfo{JobID: "j", TaskID: "m-000000", Params: filled}, Timeout: 500 * time.Millisecond}
		return job.RunMapTask(context.Background(), task, in, job.EmitterFunc(func(k, v []byte) error { return nil }))
	}
	_, err := run("sleep 987; cat", bigInput(100000))
	var te *job.TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("hung child: %v, want a timeout", err)
	}
	if len(h.started()) != 1 {
		t.Fatalf("started %d children", len(h.started()))
	}
	if _, err := run("cat", bigInput(100000)); err != nil {
		t.Fatalf("working child: %v", err)
	}
	// No input read or output for 1.5 s, but a status line every 100 ms.
	quiet := "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do echo reporter:status:at $i >&2; sleep 0.1; done; cat"
	if _, err := run(quiet, bigInput(100000)); err != nil {
		t.Fatalf("child reporting status: %v", err)
	}
}
