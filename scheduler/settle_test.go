package scheduler

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"shoal.dev/shoal/gossip"
)

// TestSettleEnds: which of two ends of one job stands when the halves of a
// partitioned cluster meet (old was in this node's store, cur replaced it
// there by the store's last-writer rule).
func TestSettleEnds(t *testing.T) {
	succeeded := StateRecord{State: StateSucceeded, By: "node3", ReducesDone: 4}
	failed := StateRecord{State: StateFailed, By: "node1", Error: "map task m-000007 (input /in/x): … is on no alive member; waited 10m0s for a member holding it to come back"}
	killed := StateRecord{State: StateKilled, By: "node2", Error: "killed by request"}
	for _, tc := range []struct {
		name     string
		old, cur StateRecord
		restore  bool
		note     string // in the restored record's Note
	}{
		{"a failed end written later does not beat a success", succeeded, failed, true, "node1 ended this job failed without seeing it succeed on node3"},
		{"nor does a kill", succeeded, killed, true, "node2 ended this job killed without seeing it succeed on node3"},
		{"a success replacing a failure stands", failed, succeeded, false, ""},
		{"a success replacing a kill stands", killed, succeeded, false, ""},
		{"two successes: the store's choice", succeeded, StateRecord{State: StateSucceeded, By: "node1"}, false, ""},
		{"failed and killed: the store's choice", failed, killed, false, ""},
		{"killed and failed: the store's choice", killed, failed, false, ""},
		{"two failures: the store's choice", failed, StateRecord{State: StateFailed, By: "node4", Error: "boom"}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, restore := settleEnds(tc.old, tc.cur)
			if restore != tc.restore {
				t.Fatalf("restore %v, want %v", restore, tc.restore)
			}
			if !restore {
				return
			}
			if got.State != tc.old.State || got.By != tc.old.By || got.ReducesDone != tc.old.ReducesDone {
				t.Errorf("restored %+v, want the old end %+v", got, tc.old)
			}
			if !strings.Contains(got.Note, tc.note) || !strings.Contains(got.Note, tc.cur.Error) {
				t.Errorf("note %q, want %q and the other end's error %q", got.Note, tc.note, tc.cur.Error)
			}
		})
	}
	// Restoring twice does not repeat the note.
	once, _ := settleEnds(succeeded, failed)
	twice, _ := settleEnds(once, failed)
	if twice.Note != once.Note {
		t.Errorf("note grew on a second restore: %q", twice.Note)
	}
}

// TestStateWatchRestoresSuccess drives the watch over a sequence of
// changes as a node of the half that succeeded sees them after the heal:
// it writes its success back once, and stops there.
func TestStateWatchRestoresSuccess(t *testing.T) {
	mem := newMem()
	s := &Scheduler{cfg: Config{Records: mem}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	key := statePrefix + "job-1"
	mem.put(key, StateRecord{State: StateSucceeded, By: "node3"}, "node3")
	w := s.newStateWatch()

	// The other half's failed end arrives with a higher version.
	mem.put(key, StateRecord{State: StateFailed, By: "node1", Error: "input gone"}, "node1")
	failedRec := mem.recs[key]
	s.stateChanged(w, failedRec)
	restored := mem.recs[key]
	if restored.Version.Compare(failedRec.Version) <= 0 {
		t.Fatal("the success was not written back")
	}
	var st StateRecord
	if err := decode(restored.Value, &st); err != nil || st.State != StateSucceeded || !strings.Contains(st.Note, "input gone") {
		t.Fatalf("restored %+v (%v)", st, err)
	}
	// Its own write comes back through the watch: nothing more.
	s.stateChanged(w, restored)
	if mem.recs[key].Version != restored.Version {
		t.Fatal("the watch wrote again after its own restore")
	}
	// A stale change (the scan raced the watch) is ignored.
	s.stateChanged(w, failedRec)
	if mem.recs[key].Version != restored.Version {
		t.Fatal("a stale change made a write")
	}
	// Deleted by the history clean-up: nothing is restored.
	tomb := gossip.Record{Key: key, Deleted: true, Version: gossip.Version{HLC: restored.Version.HLC + 1}}
	s.stateChanged(w, tomb)
	if _, ok := w.seen[key]; ok {
		t.Fatal("a deleted state is still seen")
	}
}
