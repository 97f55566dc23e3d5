package scheduler

import (
	"context"
	"slices"
	"strings"
	"time"

	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/ring"
)

// DefaultJobHistory is how many ended jobs the cluster remembers.
const DefaultJobHistory = 1000

// summary folds a job's records into its final state record.
func (v *view) summary(state, msg, by string, now time.Time, live []string) StateRecord {
	st := StateRecord{State: state, Error: msg, By: by, At: now.UnixNano(), Counters: v.counters(live), Nodes: map[string]NodeSummary{}}
	maps, commits := v.mapsAccepted(live), v.commitsAll()
	st.MapsDone, st.ReducesDone = maps.countBelow(v.rec.NumSplits), commits.countBelow(v.rec.Reducers)
	for n, t := range v.nodes {
		st.Nodes[n] = NodeSummary{Maps: t.Maps.Len(), Reduces: t.Commits.Len(), Failed: t.FailedMaps + t.FailedReduces}
	}
	return st
}

// endedJob is one ended job as the clean-up sees it.
type endedJob struct {
	id    string
	at    int64    // end time
	extra []string // leftover per-node and status keys
	// writers maps each leftover tasks key to its node.
	writers map[string]string
}

// retainPlan decides which keys of ended jobs to delete: a job's leftover
// tasks records of nodes that are not alive (alive nodes delete their own
// when they see the end) and its task status lines; and every record of a
// job beyond the newest keep ended jobs or that ended before cutoff (if
// non-zero). Only the job's owner on the ring of alive members deletes, so
// one node writes each tombstone.
func retainPlan(ended []endedJob, alive []string, self string, keep int, cutoff int64) []string {
	slices.SortFunc(ended, func(a, b endedJob) int {
		if a.at != b.at {
			if a.at > b.at {
				return -1
			}
			return 1
		}
		return strings.Compare(b.id, a.id)
	})
	rg := ring.New(ring.Config{}, alive...)
	var out []string
	for n, j := range ended {
		if rg.Owner(j.id) != self {
			continue
		}
		if n >= keep || cutoff != 0 && j.at < cutoff {
			out = append(out, jobPrefix+j.id, statePrefix+j.id)
			out = append(out, j.extra...)
			continue
		}
		for _, k := range j.extra {
			if w, ok := j.writers[k]; ok && slices.Contains(alive, w) {
				continue // its writer deletes it
			}
			out = append(out, k)
		}
	}
	return out
}

// retain applies retainPlan, and forgets local state of jobs the records
// no longer hold.
func (s *Scheduler) retain(ctx context.Context, now time.Time) {
	byJob := map[string]*endedJob{}
	var ended []*endedJob
	ats := make(map[string]stateAt, len(s.stateAts))
	for _, r := range s.cfg.Records.Scan(statePrefix) {
		id := strings.TrimPrefix(r.Key, statePrefix)
		// A summary is decoded once per version, not once per pass.
		at, ok := s.stateAts[id]
		if !ok || at.v != r.Version {
			var st StateRecord
			if decode(r.Value, &st) != nil {
				continue
			}
			at = stateAt{v: r.Version, at: st.At}
		}
		ats[id] = at
		j := &endedJob{id: id, at: at.at, writers: map[string]string{}}
		byJob[id] = j
		ended = append(ended, j)
	}
	s.stateAts = ats
	for _, prefix := range []string{tasksPrefix, taskStatusPrefix} {
		for _, r := range s.cfg.Records.Scan(prefix) {
			id, rest, ok := strings.Cut(strings.TrimPrefix(r.Key, prefix), "/")
			j := byJob[id]
			if !ok || j == nil {
				continue
			}
			j.extra = append(j.extra, r.Key)
			if prefix == tasksPrefix {
				j.writers[r.Key] = rest
			}
		}
	}
	var cutoff int64
	if s.cfg.JobHistoryAge > 0 {
		cutoff = now.Add(-s.cfg.JobHistoryAge).UnixNano()
	}
	list := make([]endedJob, len(ended))
	for i, j := range ended {
		list[i] = *j
	}
	// One commit for a pass's keys, not one each: a job's status lines
	// may number in the thousands.
	if del := retainPlan(list, s.alive(), s.cfg.Self, s.cfg.JobHistory, cutoff); len(del) > 0 {
		if err := s.cfg.Records.DeleteAll(del); err != nil {
			s.log.Warn("job history clean-up", "keys", len(del), "err", err)
		}
	}
	known := map[string]bool{}
	for _, id := range s.jobIDs() {
		known[id] = true
	}
	s.mu.Lock()
	for id := range s.cleaned {
		if !known[id] && !s.busy(id) {
			delete(s.cleaned, id)
			delete(s.checked, id)
		}
	}
	s.mu.Unlock()
	s.collectBinaries(now)
	s.pruneBinCache(ctx, now)
	// Task logs go with the job's history.
	if s.cfg.Logs != nil {
		ids, err := s.cfg.Logs.Jobs()
		if err != nil {
			s.log.Warn("task logs", "err", err)
		}
		for _, id := range ids {
			if !known[id] && byJob[id] == nil {
				if err := s.cfg.Logs.RemoveJob(id); err != nil {
					s.log.Warn("remove task logs", "job", id, "err", err)
				}
			}
		}
	}
}

// stateAt is a job's end time as its summary version says.
type stateAt struct {
	v  gossip.Version
	at int64
}

// busy reports whether a task of the job is registered. Called with s.mu
// held.
func (s *Scheduler) busy(id string) bool {
	for k := range s.tasks {
		if strings.HasPrefix(k, id+"/") {
			return true
		}
	}
	return false
}
