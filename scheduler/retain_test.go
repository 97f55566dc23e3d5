package scheduler

import (
	"slices"
	"testing"

	"shoal.dev/shoal/ring"
)

// TestRetainPlan: the history keeps the newest jobs by end time (and, with
// a cutoff, only those that ended after it); leftover tasks records go
// only when their writer is not alive; one node (the job's ring owner)
// deletes each key.
func TestRetainPlan(t *testing.T) {
	alive := []string{"a", "b"}
	ended := []endedJob{
		{id: "job-1", at: 10, extra: []string{"tasks/job-1/c"}, writers: map[string]string{"tasks/job-1/c": "c"}},
		{id: "job-2", at: 30, extra: []string{"tasks/job-2/a", "tasks/job-2/c", "taskstatus/job-2/m-000000"},
			writers: map[string]string{"tasks/job-2/a": "a", "tasks/job-2/c": "c"}},
		{id: "job-3", at: 20},
	}
	owner := func(id string) string { return ring.New(ring.Config{}, alive...).Owner(id) }
	all := map[string][]string{}
	for _, self := range alive {
		for _, k := range retainPlan(slices.Clone(ended), alive, self, 2, 0) {
			all[k] = append(all[k], self)
		}
	}
	want := map[string]string{
		"job/job-1": owner("job-1"), "jobstate/job-1": owner("job-1"), "tasks/job-1/c": owner("job-1"), // beyond the newest 2
		"tasks/job-2/c": owner("job-2"), "taskstatus/job-2/m-000000": owner("job-2"), // kept job: leftovers of a dead node and status lines
	}
	for k, by := range all {
		if len(by) != 1 || want[k] != by[0] {
			t.Errorf("%s deleted by %v, want by %q", k, by, want[k])
		}
	}
	for k := range want {
		if _, ok := all[k]; !ok {
			t.Errorf("%s not deleted", k)
		}
	}
	// A cutoff also drops job-3 (ended at 20) but not job-2 (30).
	var got []string
	for _, self := range alive {
		got = append(got, retainPlan(slices.Clone(ended), alive, self, 10, 25)...)
	}
	if !slices.Contains(got, "job/job-3") || slices.Contains(got, "job/job-2") || !slices.Contains(got, "job/job-1") {
		t.Errorf("with a cutoff: %v", got)
	}
}
