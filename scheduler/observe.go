package scheduler

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/tasklog"
)

// Attempt describes one task attempt that ended on this node, for
// OnAttempt.
type Attempt struct {
	Job     string
	Task    string // m-000003, r-00001
	Kind    string // "map" or "reduce"
	Attempt int    // from 1
	// Result is "succeeded", "failed", "killed" (stopped because its
	// job ended or the node shut down) or "waiting" (its input was on no
	// alive member: no failure, the task waits for a holder).
	Result   string
	Start    time.Time
	Duration time.Duration
	Err      error // the failure, for "failed"
}

// Stats counts what this node's tasks did since start; read by /metrics.
type Stats struct {
	// ShuffleFetchedBytes: map output bytes reducers here fetched from
	// other nodes.
	ShuffleFetchedBytes atomic.Int64
	// ShuffleHeldBytes: of those, the bytes held in memory for the merge
	// rather than spooled to disk (see Config.ShuffleMemory).
	ShuffleHeldBytes atomic.Int64
	// SpilledBytes: bytes map tasks here wrote to spill and output files.
	SpilledBytes atomic.Int64
	// RunningJobs: jobs without a final state at the last reconcile pass.
	RunningJobs atomic.Int64
	// ProgramWaits: task attempts here that found their shipped program
	// not stored in the cluster and waited for a node to store it again
	// (taskBinary).
	ProgramWaits atomic.Int64
}

// openLog starts an attempt's log; nil when logs are not kept or it
// cannot be created (the attempt runs without one).
func (s *Scheduler) openLog(jobID string, k itemKey, attempt int, start time.Time) *tasklog.Writer {
	if s.cfg.Logs == nil {
		return nil
	}
	w, err := s.cfg.Logs.Create(jobID, taskName(k.k, k.i), start)
	if err != nil {
		s.log.Warn("task log", "job", jobID, "task", taskName(k.k, k.i), "attempt", attempt, "err", err)
		return nil
	}
	return w
}

// attemptEnded finishes the attempt's log, with what it read and wrote,
// and reports the attempt to
// OnAttempt.
func (s *Scheduler) attemptEnded(jobID string, k itemKey, attempt int, start time.Time, err error, killed bool, tl *tasklog.Writer, aio tasklog.IO) {
	a := Attempt{Job: jobID, Task: taskName(k.k, k.i), Kind: "map", Attempt: attempt, Result: "succeeded", Start: start, Duration: time.Since(start)}
	if k.k == kindReduce {
		a.Kind = "reduce"
	}
	switch {
	case killed || errors.Is(err, context.Canceled):
		a.Result = "killed"
	case errors.Is(err, blockstore.ErrUnavailable):
		a.Result, a.Err = "waiting", err
	case err != nil:
		a.Result, a.Err = "failed", err
	}
	if tl != nil {
		tl.SetIO(aio)
		tl.Finish(a.Result, a.Err)
	}
	if s.cfg.OnAttempt != nil {
		s.cfg.OnAttempt(a)
	}
}

// RunningTasks is the number of this node's tasks registered now (waiting
// for a slot or for map outputs, or computing).
func (s *Scheduler) RunningTasks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tasks)
}
