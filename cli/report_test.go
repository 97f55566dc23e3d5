package cli

import (
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/client"
)

// countingWriter keeps what is written to it and how many writes it took.
type countingWriter struct {
	strings.Builder
	writes int
}

func (w *countingWriter) Write(b []byte) (int, error) {
	w.writes++
	return w.Builder.Write(b)
}

// TestJobReportIsOneWrite: `job run` prints an ended job's report (its
// result line, the counters, the output line) in one write, whatever the
// state; the counters of `job counters` and --local are one write too.
func TestJobReportIsOneWrite(t *testing.T) {
	for _, st := range []client.JobStatus{
		{ID: "job-1", State: client.StateSucceeded, Output: "/out", SubmittedAt: 1e9, EndedAt: 1.05e9, Counters: map[string]int64{"MAP_INPUT_RECORDS": 1, "MY_COUNTER": 7}},
		{ID: "job-2", State: client.StateFailed, Error: "map task m-000000 failed", SubmittedAt: 1e9, EndedAt: 2e9},
	} {
		var w countingWriter
		c := ucli.NewContext(&ucli.App{Writer: &w}, nil, nil)
		err := jobEnded(c, st)
		if (err != nil) != (st.State != client.StateSucceeded) {
			t.Fatalf("%s: error %v", st.State, err)
		}
		out := w.String()
		if w.writes != 1 {
			t.Errorf("%s: the report took %d writes, want 1:\n%s", st.State, w.writes, out)
		}
		if !strings.HasPrefix(out, "job "+st.ID+" "+st.State+" in ") || !strings.Contains(out, "  MAP_INPUT_RECORDS") {
			t.Errorf("%s: report:\n%s", st.State, out)
		}
		if succeeded := st.State == client.StateSucceeded; strings.Contains(out, "output: /out (shoal fs cat '/out/part-*')\n") != succeeded {
			t.Errorf("%s: the output line is there: %v, want %v:\n%s", st.State, !succeeded, succeeded, out)
		}
		if st.Counters["MY_COUNTER"] != 0 && !strings.Contains(out, "MY_COUNTER") {
			t.Errorf("%s: a job's own counter is missing:\n%s", st.State, out)
		}
	}
	var w countingWriter
	printCounters(&w, map[string]int64{"MAP_INPUT_RECORDS": 1})
	if w.writes != 1 {
		t.Errorf("counters took %d writes, want 1", w.writes)
	}
}
