package scheduler

import (
	"fmt"
	"slices"
)

// actionKind is what one step of the reconcile loop may do.
type actionKind uint8

const (
	actRun     actionKind = iota + 1 // start a task attempt on this node
	actCount                         // add a finished item to this node's counted set
	actUncount                       // withdraw this node's count of an item another record wins
	actForget                        // drop this node's failure entry of a task that is done
	actEnd                           // end the job (succeeded or failed)
	actWait                          // nothing to do until more records arrive (says why)
)

// action is one decision of decide.
type action struct {
	kind    actionKind
	task    taskKind
	index   int
	attempt int
	state   string // actEnd
	msg     string // actEnd: the job's error; actWait: why
}

func (a action) String() string {
	switch a.kind {
	case actRun:
		return fmt.Sprintf("run %s %d attempt %d", a.task, a.index, a.attempt)
	case actCount:
		return fmt.Sprintf("count %s %d", a.task, a.index)
	case actUncount:
		return fmt.Sprintf("uncount %s %d", a.task, a.index)
	case actForget:
		return fmt.Sprintf("forget %s %d", a.task, a.index)
	case actEnd:
		if a.msg == "" {
			return "end " + a.state
		}
		return fmt.Sprintf("end %s: %s", a.state, a.msg)
	case actWait:
		return "wait: " + a.msg
	}
	return fmt.Sprintf("action %d", a.kind)
}

// decideInput is everything one reconcile step of one job depends on.
type decideInput struct {
	v    *view
	self string
	// live is the job's participants that are alive, in participant order.
	live []string
	// mappers[i] is the node that should map split i now, reducers[p] the
	// node that should reduce partition p (placement on the live ring).
	mappers  []string
	reducers []string
	// running reports whether this node runs the task already.
	running func(k taskKind, i int) bool
}

// decide is the scheduler's decision step: a pure function of the view.
// The loop around it only applies the actions, in order. Its rules:
//
//  1. An ended job needs nothing (the loop cleans up locally).
//  2. A task not yet done whose failed attempts, summed over every node's
//     record, end the job by failVerdict (a permanent failure, max attempts
//     of the job's code, or twice that outside it) fails the job.
//  3. This node settles its counts: it counts every item it finished that
//     no record counts, and withdraws its count of an item whose count
//     another record wins (countWinner); it forgets its failures of tasks
//     that are done.
//  4. When every partition is committed (map-only: every split written)
//     the job succeeds, but only once the counts are settled — every item
//     counted by exactly one record as far as the live records go —
//     otherwise it waits for the records on their way.
//  5. Otherwise this node starts the tasks placement gives it that no
//     valid record covers and it does not already run: a split with no
//     map output on a live node (map-only: no output at all), a partition
//     with no commit. The attempt number is this node's failed attempts + 1.
func decide(in decideInput) []action {
	v := in.v
	if v.state != nil {
		return nil
	}
	own := v.nodes[in.self]
	if own == nil {
		own = &NodeTasks{Node: in.self}
	}
	taskDone := func(k taskKind, i int) bool {
		if k == kindReduce {
			return v.committed(i)
		}
		_, ok := v.acceptedMap(i, in.live)
		return ok
	}

	// 2. Failures.
	type taskRef struct {
		k taskKind
		i int
	}
	var failing []taskRef
	for _, p := range v.rec.Participants {
		if t, ok := v.nodes[p]; ok {
			for _, f := range t.Fails {
				r := taskRef{f.Kind, f.Index}
				if !slices.Contains(failing, r) {
					failing = append(failing, r)
				}
			}
		}
	}
	slices.SortFunc(failing, func(a, b taskRef) int {
		if a.k != b.k {
			return int(a.k) - int(b.k)
		}
		return a.i - b.i
	})
	for _, r := range failing {
		if taskDone(r.k, r.i) {
			continue
		}
		if msg, failed := failVerdict(fmt.Sprintf("%s task %s", r.k, taskName(r.k, r.i)), v.failures(r.k, r.i), v.rec.MaxAttempts); failed {
			return []action{{kind: actEnd, state: StateFailed, msg: msg}}
		}
	}

	// 3. Settle this node's counts and failures.
	var acts []action
	for _, k := range []taskKind{kindMap, kindReduce} {
		own.done(k).Each(func(i int) {
			switch w := v.countWinner(k, i, in.live); {
			case w == "":
				acts = append(acts, action{kind: actCount, task: k, index: i})
			case w != in.self && own.counted(k).Has(i):
				acts = append(acts, action{kind: actUncount, task: k, index: i})
			}
		})
		own.counted(k).Each(func(i int) {
			if !own.done(k).Has(i) {
				acts = append(acts, action{kind: actUncount, task: k, index: i})
			}
		})
	}
	for _, f := range own.Fails {
		if taskDone(f.Kind, f.Index) {
			acts = append(acts, action{kind: actForget, task: f.Kind, index: f.Index})
		}
	}

	// 4. The end.
	if v.done() {
		if len(acts) == 0 && v.countsSettled(in.live) {
			return []action{{kind: actEnd, state: StateSucceeded}}
		}
		return append(acts, action{kind: actWait, msg: "every task is done; counts are settling"})
	}

	// 5. Tasks to start.
	attempt := func(k taskKind, i int) int {
		if f := own.failsOf(k, i); f != nil {
			return f.attempts() + 1
		}
		return 1
	}
	for i := 0; i < v.rec.NumSplits && i < len(in.mappers); i++ {
		if in.mappers[i] != in.self || taskDone(kindMap, i) || in.running(kindMap, i) {
			continue
		}
		acts = append(acts, action{kind: actRun, task: kindMap, index: i, attempt: attempt(kindMap, i)})
	}
	if !v.rec.MapOnly {
		for p := 0; p < v.rec.Reducers && p < len(in.reducers); p++ {
			if in.reducers[p] != in.self || v.committed(p) || in.running(kindReduce, p) {
				continue
			}
			acts = append(acts, action{kind: actRun, task: kindReduce, index: p, attempt: attempt(kindReduce, p)})
		}
	}
	return acts
}

func taskName(k taskKind, i int) string {
	if k == kindReduce {
		return reduceTaskID(i)
	}
	return mapTaskID(i)
}
