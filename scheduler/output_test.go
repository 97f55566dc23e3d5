package scheduler

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
)

// outputScheduler holds n ended jobs writing /out/i and the running jobs
// given (ID → output), in an in-memory record store.
func outputScheduler(ended int, running map[string]string) *Scheduler {
	mem := newMem()
	for i := range ended {
		id := fmt.Sprintf("ended-%04d", i)
		mem.put(jobPrefix+id, JobRecord{ID: id, Output: fmt.Sprintf("/out/%d", i)}, "node1")
		mem.put(statePrefix+id, StateRecord{State: StateSucceeded, By: "node1"}, "node1")
	}
	for id, out := range running {
		mem.put(jobPrefix+id, JobRecord{ID: id, Output: out}, "node1")
	}
	return &Scheduler{cfg: Config{Records: mem}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestOutputWriter(t *testing.T) {
	s := outputScheduler(50, map[string]string{"run-1": "/busy", "run-2": "/other"})
	for _, tc := range []struct {
		dir, want string
	}{
		{"/busy", "run-1"},
		{"/other", "run-2"},
		{"/out/7", ""}, // its job ended: the directory is free of writers
		{"/nobody", ""},
	} {
		id, ok := s.OutputWriter(tc.dir)
		if id != tc.want || ok != (tc.want != "") {
			t.Errorf("OutputWriter(%s) = %q, %v; want %q", tc.dir, id, ok, tc.want)
		}
	}
}

// BenchmarkOutputWriter: the check every output reservation and commit
// runs under the create primary's lock, with a full job history.
func BenchmarkOutputWriter(b *testing.B) {
	s := outputScheduler(1000, map[string]string{"run-1": "/busy"})
	for b.Loop() {
		if _, ok := s.OutputWriter("/free"); ok {
			b.Fatal("a writer of /free")
		}
	}
}
