package scheduler

import (
	"slices"
	"strings"
	"time"
)

// Waiting for input. A task attempt that finds its input on no alive
// member (blockstore.ErrUnavailable: every alive member was asked, none
// holds the block) is not a failed attempt: the members that hold the
// block are down, or on the other side of a network partition, and may
// come back. The task waits, without running, until a member comes alive
// (the membership grew since the attempt) or inputRecheck has passed,
// then runs again with the same attempt number. Once it has waited
// maxInputWait in all, the job fails with the reason (decide, rule 2).
// The wait is this node's, in memory: a node that restarts waits afresh.

// inputRecheck is how often a waiting task tries its input again when
// the membership does not change.
const inputRecheck = 30 * time.Second

// inputWait is a task of this node waiting for its input. Guarded by
// Scheduler.mu.
type inputWait struct {
	k     taskKind
	i     int
	since time.Time // the first attempt that found the input on no alive member
	last  time.Time // the last such attempt
	alive []string  // the members alive at the last attempt
	err   string    // the last attempt's error
}

// maxInputWait bounds how long a task of the job may wait for its input:
// the job's task timeout (a task makes no progress while it waits), or
// DefaultTaskTimeout for a job whose timeout is off.
func maxInputWait(rec *JobRecord) time.Duration {
	if rec.TaskTimeout > 0 {
		return time.Duration(rec.TaskTimeout)
	}
	return DefaultTaskTimeout
}

// inputUnavailable records that an attempt of a task found its input on
// no alive member.
func (s *Scheduler) inputUnavailable(jobID string, k itemKey, err error) {
	now := time.Now()
	alive := s.alive()
	key := taskKey(jobID, k.k, k.i)
	s.mu.Lock()
	if s.cleaned[jobID] {
		s.mu.Unlock()
		return
	}
	s.ownOf(jobID).ended(k) // no longer running, and no failure
	w, ok := s.waits[key]
	if !ok {
		w = &inputWait{k: k.k, i: k.i, since: now}
		s.waits[key] = w
	}
	w.last, w.alive, w.err = now, alive, err.Error()
	since := w.since
	s.mu.Unlock()
	if !ok {
		s.log.Warn("task waits for its input, which is on no alive member", "job", jobID, "task", taskName(k.k, k.i), "err", err)
		// `job status` on any node shows it.
		s.cfg.Records.Put(keyJoin(taskStatusPrefix+jobID, taskName(k.k, k.i)), []byte(truncate(waitingStatus+err.Error(), 512)))
	} else {
		s.log.Info("task still waits for its input", "job", jobID, "task", taskName(k.k, k.i), "waited", now.Sub(since).Round(time.Second))
	}
}

// waitingStatus starts the status line of a task waiting for its input.
const waitingStatus = "waiting for its input: "

// inputArrived forgets a task's wait once an attempt got past its input.
func (s *Scheduler) inputArrived(jobID string, k itemKey) {
	key := taskKey(jobID, k.k, k.i)
	s.mu.Lock()
	_, waited := s.waits[key]
	delete(s.waits, key)
	s.mu.Unlock()
	if waited {
		st := keyJoin(taskStatusPrefix+jobID, taskName(k.k, k.i))
		if r, ok := s.cfg.Records.Get(st); ok && !r.Deleted && strings.HasPrefix(string(r.Value), waitingStatus) {
			s.cfg.Records.Delete(st)
		}
	}
}

// waitsOf lists the job's waiting tasks for decide, as of now: how long
// each has waited and whether it may run again (a member came alive since
// its last attempt, or the recheck is due). A task placement no longer
// gives this node stops waiting here.
func (s *Scheduler) waitsOf(jobID string, mappers, reducers, alive []string, now time.Time) []taskWait {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []taskWait
	for key, w := range s.waits {
		if key != taskKey(jobID, w.k, w.i) {
			continue // another job's
		}
		placed := mappers
		if w.k == kindReduce {
			placed = reducers
		}
		if w.i >= len(placed) || placed[w.i] != s.cfg.Self {
			delete(s.waits, key)
			continue
		}
		grew := slices.ContainsFunc(alive, func(m string) bool { return !slices.Contains(w.alive, m) })
		out = append(out, taskWait{k: w.k, i: w.i, waited: now.Sub(w.since), retry: grew || now.Sub(w.last) >= inputRecheck, err: w.err})
	}
	slices.SortFunc(out, func(a, b taskWait) int {
		if a.k != b.k {
			return int(a.k) - int(b.k)
		}
		return a.i - b.i
	})
	return out
}
