package scheduler

import (
	"fmt"
	"slices"
	"time"
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
	actKill                          // stop this node's attempt of a task another node finished
)

// action is one decision of decide.
type action struct {
	kind    actionKind
	task    taskKind
	index   int
	attempt int
	backup  bool   // actRun: a speculative attempt
	state   string // actEnd
	msg     string // actEnd: the job's error; actWait: why
}

func (a action) String() string {
	switch a.kind {
	case actRun:
		if a.backup {
			return fmt.Sprintf("run %s %d attempt %d backup", a.task, a.index, a.attempt)
		}
		return fmt.Sprintf("run %s %d attempt %d", a.task, a.index, a.attempt)
	case actKill:
		return fmt.Sprintf("kill %s %d", a.task, a.index)
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

	// now is the time of this step, Unix milliseconds.
	now int64
	// spec is the speculation rule's settings.
	spec Speculation
	// idle is how many of this node's compute slots no task holds or
	// waits for.
	idle int
	// backups lists, in order of preference, the nodes that may run a
	// backup attempt of a task (for a map, the holders of its input block
	// first). Nil: the participants in order.
	backups func(k taskKind, i int) []string
	// mapBudget, if positive, is how many map attempts this step may
	// start (the node's queue of map tasks is short, so a job of 100,000
	// splits holds a few goroutines, not one per split); negative starts
	// none; 0 starts all.
	mapBudget int
	// ender is the live participant that ends a job that succeeded (the
	// job's owner on the live ring); "" lets any node end it.
	ender string

	// waits lists this node's tasks whose last attempt here found their
	// input on no alive member (blockstore.ErrUnavailable). Such an
	// attempt is not a failure: the task waits for a member that holds
	// its input, for at most maxWait in all.
	waits   []taskWait
	maxWait time.Duration
}

// taskWait is a task of this node waiting for its input.
type taskWait struct {
	k taskKind
	i int
	// waited is how long since its first attempt found the input on no
	// alive member.
	waited time.Duration
	// retry: a member came alive since the last attempt, or a recheck is
	// due; the task may run again.
	retry bool
	// err is the last attempt's error.
	err string
}

// decide is the scheduler's decision step: a pure function of the view.
// The loop around it only applies the actions, in order. Its rules:
//
//  1. An ended job needs nothing (the loop cleans up locally).
//  2. A task not yet done whose failed attempts, summed over every node's
//     record, end the job by failVerdict (a permanent failure, max attempts
//     of the job's code, or twice that outside it) fails the job.
//     A task placement gives this node, not done, that has waited for
//     its input (on no alive member) for maxWait or longer also fails the
//     job: its input is lost, or away for longer than the job may wait.
//  3. This node settles its counts: it counts every item it finished that
//     no record counts, and withdraws its count of an item whose count
//     another record wins (countWinner); it forgets its failures of tasks
//     that are done.
//  4. When every partition is committed (map-only: every split written)
//     the job succeeds, but only once the counts are settled — every item
//     counted by exactly one record as far as the live records go —
//     otherwise it waits for the records on their way. Only the ender
//     ends it: it writes _SUCCESS, and a second writer racing it could
//     bring that file back after the user removed the output.
//  5. Otherwise this node starts the tasks placement gives it that no
//     valid record covers and it does not already run: a split with no
//     map output on a live node (map-only: no output at all), a partition
//     with no commit. The attempt number is this node's failed attempts + 1.
//     A task done but counted only by a void record (voidRecords: two
//     dead nodes counted the same task) runs again to be counted, even
//     after every partition is committed.
//     A task waiting for its input starts again only when its wait says
//     retry (a member came alive, or a recheck is due); else it waits.
//  6. This node kills its attempts of tasks another node finished first
//     (a map output on a live node, a commit). They are not failures.
//  7. Speculation (see speculate): this node starts a backup attempt of a
//     straggler when it is the task's backup node and has an idle slot.
func decide(in decideInput) []action {
	v := in.v
	if v.state != nil {
		return nil
	}
	own := v.nodes[in.self]
	if own == nil {
		own = &NodeTasks{Node: in.self}
	}
	mapsDone, commits := v.mapsAccepted(in.live), v.commitsAll()
	taskDone := func(k taskKind, i int) bool {
		if k == kindReduce {
			return commits.Has(i)
		}
		return mapsDone.Has(i)
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
		if msg, failed := failVerdict(fmt.Sprintf("%s task %s", r.k, taskName(r.k, r.i)), logHint(v.rec.ID, r.k, r.i), v.failures(r.k, r.i), v.rec.MaxAttempts); failed {
			return []action{{kind: actEnd, state: StateFailed, msg: msg}}
		}
	}

	placedHere := func(k taskKind, i int) bool {
		if k == kindReduce {
			return i < len(in.reducers) && in.reducers[i] == in.self
		}
		return i < len(in.mappers) && in.mappers[i] == in.self
	}
	waiting := map[itemKey]taskWait{}
	for _, w := range in.waits {
		if !placedHere(w.k, w.i) || taskDone(w.k, w.i) {
			continue
		}
		if w.waited >= in.maxWait {
			return []action{{kind: actEnd, state: StateFailed, msg: fmt.Sprintf("%s; waited %s for a member holding it to come back", w.err, in.maxWait)}}
		}
		waiting[itemKey{w.k, w.i}] = w
	}

	// 3. Settle this node's counts and failures.
	void := v.voidRecords(in.live)
	var acts []action
	for _, k := range []taskKind{kindMap, kindReduce} {
		// By countWinner, as set operations (a job has up to 400,000
		// items): an item this node did is counted here when no record
		// that stands counts it (anyone), and withdrawn when a dead
		// record that stands, or a live one before this node in
		// participant order, counts it (beats).
		var anyone, beats itemSet
		before := true
		for _, p := range v.rec.Participants {
			if p == in.self {
				before = false
			}
			t, ok := v.nodes[p]
			if !ok || void[p] {
				continue
			}
			anyone.or(t.counted(k))
			if p != in.self && (before || !slices.Contains(in.live, p)) {
				beats.or(t.counted(k))
			}
		}
		toCount := own.done(k).andNot(&anyone)
		mine := own.done(k).and(own.counted(k))
		toUncount := mine.and(&beats)
		act := toCount.clone()
		act.or(&toUncount)
		act.Each(func(i int) {
			if toCount.Has(i) {
				acts = append(acts, action{kind: actCount, task: k, index: i})
			} else {
				acts = append(acts, action{kind: actUncount, task: k, index: i})
			}
		})
		stale := own.counted(k).andNot(own.done(k))
		stale.Each(func(i int) {
			acts = append(acts, action{kind: actUncount, task: k, index: i})
		})
	}
	for _, f := range own.Fails {
		if taskDone(f.Kind, f.Index) {
			acts = append(acts, action{kind: actForget, task: f.Kind, index: f.Index})
		}
	}

	// 4. The end.
	recountMaps, recountReds := v.recounts(in.live, void)
	done := v.done()
	if done && len(recountMaps)+len(recountReds) == 0 {
		if len(acts) == 0 && v.countsSettled(in.live) {
			if in.ender != "" && in.ender != in.self {
				return []action{{kind: actWait, msg: "every task is done; " + in.ender + " ends the job"}}
			}
			return []action{{kind: actEnd, state: StateSucceeded}}
		}
		acts = append(acts, kills(in, own)...)
		return append(acts, action{kind: actWait, msg: "every task is done; counts are settling"})
	}
	acts = append(acts, kills(in, own)...)

	// 5. Tasks to start: those not done, and those only a void record
	// counted (a partition's rerun needs every map output on a live node).
	attempt := func(k taskKind, i int) int {
		if f := own.failsOf(k, i); f != nil {
			return f.attempts() + 1
		}
		return 1
	}
	// start runs a task, or says why it waits; it reports whether it ran.
	start := func(k taskKind, i int) bool {
		if w, ok := waiting[itemKey{k, i}]; ok && !w.retry {
			acts = append(acts, action{kind: actWait, msg: fmt.Sprintf("%s %d: its input has been on no alive member for %s", k, i, w.waited)})
			return false
		}
		acts = append(acts, action{kind: actRun, task: k, index: i, attempt: attempt(k, i)})
		return true
	}
	started := 0
	for i := 0; i < v.rec.NumSplits && i < len(in.mappers); i++ {
		if in.mapBudget != 0 && started >= max(in.mapBudget, 0) {
			acts = append(acts, action{kind: actWait, msg: "this node's map tasks are queued"})
			break
		}
		need := !taskDone(kindMap, i) && (!done || len(recountReds) > 0) || recountMaps[i]
		if in.mappers[i] != in.self || !need || in.running(kindMap, i) {
			continue
		}
		if start(kindMap, i) {
			started++
		}
	}
	if !v.rec.MapOnly {
		for p := 0; p < v.rec.Reducers && p < len(in.reducers); p++ {
			if in.reducers[p] != in.self || commits.Has(p) && !recountReds[p] || in.running(kindReduce, p) {
				continue
			}
			start(kindReduce, p)
		}
	}
	idle := in.idle
	for _, a := range acts {
		if a.kind == actRun {
			idle--
		}
	}
	return append(acts, speculate(in, idle)...)
}

// finishedElsewhere reports whether a node other than self finished task
// i of kind k in a way that stands: a map output on a live node (a
// map-only job's part on any node), a commit on any.
func finishedElsewhere(in decideInput, k taskKind, i int) bool {
	v := in.v
	onlyLive := k == kindMap && !v.rec.MapOnly
	for _, n := range v.rec.Participants {
		t, ok := v.nodes[n]
		if n == in.self || !ok || !t.done(k).Has(i) || onlyLive && !slices.Contains(in.live, n) {
			continue
		}
		return true
	}
	return false
}

// kills lists this node's running attempts of tasks another node has
// finished: the first attempt to finish wins, the others are stopped and
// their output discarded.
func kills(in decideInput, own *NodeTasks) []action {
	var out []action
	for _, r := range own.Running {
		if finishedElsewhere(in, r.Kind, r.Index) {
			out = append(out, action{kind: actKill, task: r.Kind, index: r.Index})
		}
	}
	return out
}

// attemptAt is one running attempt of a task, as a record lists it.
type attemptAt struct {
	node    string
	start   int64
	attempt int
	backup  bool
}

// speculate is the straggler rule. For each kind of task the job lets
// speculate (maps; reduces once every map is done), when at least MinDone
// of the kind's tasks are done and at least one is not, the threshold is
// Slowdown times the mean wall time of the finished attempts (as the
// records' sums give it), and at least MinRuntime. A task that is not done,
// that some live node runs, whose oldest attempt has run longer than the
// threshold and that has no backup yet, is a straggler. Its backup node is
// the first node of in.backups that is live and runs no attempt of it; when
// that is this node and it has an idle slot, it starts the backup. Oldest
// stragglers first; at most idle backups per step. A backup is numbered
// after every attempt of the task the records know — the running one and
// every failed one on any node — so that code which behaves by attempt
// number (Hadoop's attempt IDs) sees a later attempt, as in Hadoop.
func speculate(in decideInput, idle int) []action {
	v := in.v
	if in.spec.Off || idle <= 0 {
		return nil
	}
	var out []action
	for _, k := range []taskKind{kindMap, kindReduce} {
		n := v.rec.NumSplits
		if k == kindReduce {
			if v.rec.MapOnly || v.rec.NoSpeculativeReduces {
				continue
			}
			n = v.rec.Reducers
			if !v.mapsDone(in.live) {
				continue
			}
		} else if v.rec.NoSpeculativeMaps {
			continue
		}
		done := 0
		for i := 0; i < n; i++ {
			if v.finished(k, i, in.live) {
				done++
			}
		}
		if done == n || float64(done) < in.spec.MinDone*float64(n) {
			continue
		}
		var total int64
		var timed int
		running := map[int][]attemptAt{}
		for _, p := range in.live {
			t, ok := v.nodes[p]
			if !ok {
				continue
			}
			if k == kindReduce {
				total, timed = total+t.RedTime, timed+t.RedTimed
			} else {
				total, timed = total+t.MapTime, timed+t.MapTimed
			}
			for _, r := range t.Running {
				if r.Kind == k {
					running[r.Index] = append(running[r.Index], attemptAt{node: p, start: r.Start, attempt: r.Attempt, backup: r.Backup})
				}
			}
		}
		if timed == 0 {
			continue
		}
		threshold := max(in.spec.MinRuntime, int64(in.spec.Slowdown*float64(total)/float64(timed)))
		type straggler struct {
			i     int
			start int64
		}
		var cands []straggler
		for i, as := range running {
			if v.finished(k, i, in.live) {
				continue
			}
			oldest, backedUp := as[0].start, false
			for _, a := range as {
				oldest = min(oldest, a.start)
				backedUp = backedUp || a.backup
			}
			if backedUp || len(as) > 1 || in.now-oldest <= threshold {
				continue
			}
			cands = append(cands, straggler{i, oldest})
		}
		slices.SortFunc(cands, func(a, b straggler) int {
			if a.start != b.start {
				if a.start < b.start {
					return -1
				}
				return 1
			}
			return a.i - b.i
		})
		for _, c := range cands {
			if idle <= 0 {
				return out
			}
			if backupNode(in, k, c.i, running[c.i]) != in.self || in.running(k, c.i) {
				continue
			}
			n := v.failures(k, c.i)
			num := n.user + n.infra
			for _, a := range running[c.i] {
				num = max(num, a.attempt)
			}
			out = append(out, action{kind: actRun, task: k, index: c.i, attempt: num + 1, backup: true})
			idle--
		}
	}
	return out
}

// backupNode is the node that should run a backup of task i: the first of
// its backup candidates that is live and runs no attempt of it.
func backupNode(in decideInput, k taskKind, i int, running []attemptAt) string {
	cands := in.v.rec.Participants
	if in.backups != nil {
		cands = in.backups(k, i)
	}
	for _, c := range cands {
		if !slices.Contains(in.live, c) || slices.ContainsFunc(running, func(a attemptAt) bool { return a.node == c }) {
			continue
		}
		return c
	}
	return ""
}

func taskName(k taskKind, i int) string {
	if k == kindReduce {
		return reduceTaskID(i)
	}
	return mapTaskID(i)
}
