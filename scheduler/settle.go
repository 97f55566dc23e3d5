package scheduler

import (
	"fmt"
	"strings"

	"shoal.dev/shoal/gossip"
)

// Two ends of one job. The metadata is AP: while the network is split each
// half runs the job on its own, and both may end it. A half that holds no
// copy of some input waits for it (see wait.go), but for no longer than
// the job's task timeout, then fails the job; a user may kill it on one
// side while the other finishes. When the halves meet, the two state
// records meet at one key, and the store keeps the later writer's.
//
// settleEnds is the rule that overrides the store there: a succeeded end
// beats a failed or killed one, whichever was written later. The half
// that succeeded mapped every split and committed every partition and
// wrote _SUCCESS: the output is complete, and the other half's end was
// written without seeing it. The failed or killed end is not dropped
// without a trace: the record that stands carries it in Note, which
// `shoal job status` shows. Between two ends of the same kind, or a failed
// and a killed one, the store's choice stands.
//
// Every node that sees a succeeded record replaced by a failed or killed
// one writes the succeeded one back (a newer version, with the note);
// no write ever replaces a succeeded record with a failed one in turn, so
// the rewrites stop once every node holds a succeeded end.

// settleEnds decides, when the state record cur replaced old at the same
// key in this node's store, whether old must be written back: it returns
// the record to write and true if so.
func settleEnds(old, cur StateRecord) (StateRecord, bool) {
	if old.State != StateSucceeded || (cur.State != StateFailed && cur.State != StateKilled) {
		return StateRecord{}, false
	}
	keep := old
	note := fmt.Sprintf("%s ended this job %s without seeing it succeed on %s (both ended it at once, as across a network partition): %s", cur.By, cur.State, old.By, cur.Error)
	if keep.Note == "" {
		keep.Note = note
	} else if !strings.Contains(keep.Note, note) {
		keep.Note += "; " + note
	}
	keep.Note = truncate(keep.Note, maxErrorLen)
	return keep, true
}

// stateWatch applies settleEnds to the changes of the state records. It
// keeps the last state record it saw of every job. Owned by the Run
// goroutine.
type stateWatch struct {
	seen map[string]gossip.Record
}

func (s *Scheduler) newStateWatch() *stateWatch {
	w := &stateWatch{seen: map[string]gossip.Record{}}
	for _, r := range s.cfg.Records.Scan(statePrefix) {
		w.seen[r.Key] = r
	}
	return w
}

// stateChanged handles one change of a record under statePrefix.
func (s *Scheduler) stateChanged(w *stateWatch, r gossip.Record) {
	old, had := w.seen[r.Key]
	if had && old.Version.Compare(r.Version) >= 0 {
		return // seen already (the first scan raced the watch)
	}
	if r.Deleted {
		delete(w.seen, r.Key)
		return
	}
	w.seen[r.Key] = r
	if !had || old.Deleted {
		return
	}
	var o, c StateRecord
	if decode(old.Value, &o) != nil || decode(r.Value, &c) != nil {
		return
	}
	keep, ok := settleEnds(o, c)
	if !ok {
		return
	}
	id := strings.TrimPrefix(r.Key, statePrefix)
	s.log.Warn("a job ended differently on two sides of a network partition: its complete output stands",
		"job", id, "state", keep.State, "by", keep.By, "other_state", c.State, "other_by", c.By, "other_error", c.Error)
	if _, err := s.cfg.Records.Put(r.Key, fitState(keep)); err != nil {
		s.log.Error("cannot restore a job's end", "job", id, "err", err)
	}
}
