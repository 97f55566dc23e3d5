package scheduler

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/job"
)

// ownTasks is this node's tasks record of one job as the loop keeps it,
// with the counters of every item it finished (which the record only holds
// as sums). The item counters are also appended to a local log in the
// job's work directory, so a restarted node can still move an item's
// counters in or out of its sums. Guarded by Scheduler.mu.
type ownTasks struct {
	t     *NodeTasks
	items map[itemKey]job.Counters
	dirty bool
	// tooLarge is set when the record no longer fits a metadata value;
	// the loop then fails the job (its progress cannot be published).
	tooLarge int
	log      *os.File // nil until the first item
	dir      string
	// big is set for a job of more than bigJob tasks, whose record is
	// written at most every flushGap: flushed is the last write, pending
	// says a pass is asked for when the gap ends.
	big     bool
	flushed time.Time
	pending bool
}

type itemKey struct {
	k taskKind
	i int
}

// itemEntry is one line of the local item log.
type itemEntry struct {
	K taskKind     `msgpack:"k"`
	I int          `msgpack:"i"`
	C job.Counters `msgpack:"c"`
}

// ownOf returns this node's tasks state of a job, loading it from its
// record and its item log the first time. Called with s.mu held.
func (s *Scheduler) ownOf(id string) *ownTasks {
	if o, ok := s.own[id]; ok {
		return o
	}
	o := &ownTasks{t: &NodeTasks{Node: s.cfg.Self}, items: map[itemKey]job.Counters{}, dir: filepath.Join(s.cfg.WorkDir, id)}
	s.own[id] = o
	r, ok := s.cfg.Records.Get(keyJoin(tasksPrefix+id, s.cfg.Self))
	if !ok {
		return o
	}
	var t NodeTasks
	if decode(r.Value, &t) != nil || t.Node != s.cfg.Self {
		o.dirty = true // rewrite it
		return o
	}
	o.t = &t
	if len(t.Running) > 0 {
		// Attempts of a previous run of this node: nothing runs them now.
		o.t.Running = nil
		o.dirty = true
	}
	if validJobID(id) {
		o.readLog()
	}
	// Items whose counters were lost with the log are withdrawn: they are
	// done again (a map) or their count moves to another record.
	for _, k := range []taskKind{kindMap, kindReduce} {
		var lost []int
		o.t.done(k).Each(func(i int) {
			if _, ok := o.items[itemKey{k, i}]; !ok {
				lost = append(lost, i)
			}
		})
		for _, i := range lost {
			o.t.done(k).Remove(i)
			o.t.counted(k).Remove(i)
			o.dirty = true
		}
		sum := job.Counters{}
		o.t.counted(k).Each(func(i int) { sum.Merge(o.items[itemKey{k, i}]) })
		*o.t.sum(k) = sum
	}
	return o
}

func (o *ownTasks) readLog() {
	f, err := os.Open(filepath.Join(o.dir, "items.log"))
	if err != nil {
		return
	}
	defer f.Close()
	dec := msgpack.NewDecoder(bufio.NewReader(f))
	for {
		var e itemEntry
		if err := dec.Decode(&e); err != nil {
			return // the end, or a torn last entry
		}
		o.items[itemKey{e.K, e.I}] = e.C
	}
}

// appendLog records an item's counters in the local log.
func (o *ownTasks) appendLog(k itemKey, c job.Counters) error {
	if o.log == nil {
		if err := os.MkdirAll(o.dir, 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(o.dir, "items.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		o.log = f
	}
	b, err := msgpack.Marshal(itemEntry{K: k.k, I: k.i, C: c})
	if err != nil {
		return err
	}
	_, err = o.log.Write(b)
	return err
}

func (o *ownTasks) close() {
	if o.log != nil {
		o.log.Close()
		o.log = nil
	}
}

// started records that this node took attempt number attempt of item k
// at now (Unix ms); backup marks a speculative attempt.
func (o *ownTasks) started(k itemKey, now int64, attempt int, backup bool) {
	t := o.t
	if r := t.runningOf(k.k, k.i); r != nil {
		r.Start, r.Attempt, r.Backup = now, attempt, backup
	} else {
		t.Running = append(t.Running, runningTask{Kind: k.k, Index: k.i, Start: now, Attempt: attempt, Backup: backup})
	}
	if backup {
		if k.k == kindReduce {
			t.SpecReduces++
		} else {
			t.SpecMaps++
		}
	}
	o.dirty = true
}

// ended drops item k's running attempt and returns when it started (0 if
// it was not running).
func (o *ownTasks) ended(k itemKey) int64 {
	t := o.t
	for n, r := range t.Running {
		if r.Kind == k.k && r.Index == k.i {
			t.Running = append(t.Running[:n], t.Running[n+1:]...)
			o.dirty = true
			return r.Start
		}
	}
	return 0
}

// killed records an attempt stopped because another node's attempt of the
// same task finished first; launched says whether it had begun to compute
// (an attempt still waiting for a slot was never launched).
func (o *ownTasks) killed(k itemKey, launched bool) {
	o.ended(k)
	if !launched {
		return
	}
	t := o.t
	if k.k == kindReduce {
		t.LaunchedReduces++
		t.KilledReduces++
	} else {
		t.LaunchedMaps++
		t.KilledMaps++
	}
	o.dirty = true
}

// finished records a finished attempt of item k with its counters, ending
// at now (Unix ms): the item is done here and, until the counting rule
// says another record wins it, counted here.
func (o *ownTasks) finished(k itemKey, c job.Counters, now int64) error {
	if err := o.appendLog(k, c); err != nil {
		return fmt.Errorf("item log: %w", err)
	}
	t := o.t
	if start := o.ended(k); start > 0 && now >= start {
		if k.k == kindReduce {
			t.RedTime += now - start
			t.RedTimed++
		} else {
			t.MapTime += now - start
			t.MapTimed++
		}
	}
	if k.k == kindReduce {
		t.LaunchedReduces++
	} else {
		t.LaunchedMaps++
	}
	if t.counted(k.k).Has(k.i) { // ran twice here: the first run's count stands
		subtract(*t.sum(k.k), o.items[k])
		t.counted(k.k).Remove(k.i)
	}
	o.items[k] = c
	t.done(k.k).Add(k.i)
	o.count(k)
	o.dirty = true
	return nil
}

// failed records a failed attempt of the given kind.
func (o *ownTasks) failed(k itemKey, kind failKind, msg string) {
	o.ended(k)
	t := o.t
	if k.k == kindReduce {
		t.LaunchedReduces++
		t.FailedReduces++
	} else {
		t.LaunchedMaps++
		t.FailedMaps++
	}
	f := t.failsOf(k.k, k.i)
	if f == nil {
		t.Fails = append(t.Fails, taskFails{Kind: k.k, Index: k.i})
		f = &t.Fails[len(t.Fails)-1]
	}
	switch kind {
	case failInfra:
		f.Infra++
	case failPermanent:
		f.N++
		f.Permanent = truncate(msg, maxFailError)
	default:
		f.N++
	}
	f.Last = truncate(msg, maxFailError)
	o.dirty = true
}

func (o *ownTasks) count(k itemKey) {
	t := o.t
	if t.counted(k.k).Has(k.i) || !t.done(k.k).Has(k.i) {
		return
	}
	t.counted(k.k).Add(k.i)
	if *t.sum(k.k) == nil {
		*t.sum(k.k) = job.Counters{}
	}
	t.sum(k.k).Merge(o.items[k])
	o.dirty = true
}

func (o *ownTasks) uncount(k itemKey) {
	t := o.t
	if !t.counted(k.k).Has(k.i) {
		return
	}
	t.counted(k.k).Remove(k.i)
	subtract(*t.sum(k.k), o.items[k])
	o.dirty = true
}

// withdraw forgets an item this node can no longer stand for (its map
// output is gone).
func (o *ownTasks) withdraw(k itemKey) {
	o.uncount(k)
	if o.t.done(k.k).Has(k.i) {
		o.t.done(k.k).Remove(k.i)
		o.dirty = true
	}
}

func (o *ownTasks) forget(k itemKey) {
	for n, f := range o.t.Fails {
		if f.Kind == k.k && f.Index == k.i {
			o.t.Fails = append(o.t.Fails[:n], o.t.Fails[n+1:]...)
			o.dirty = true
			return
		}
	}
}

// bigJob is the number of tasks above which a job's tasks record is
// published at most every flushGap: each write is an fsync on this node
// and a record of up to kilobytes for every other node, and a large job's
// tasks finish faster than that.
const (
	bigJob   = 1000
	flushGap = 250 * time.Millisecond
)

// flushOwn writes this node's tasks record of a job if it changed; unless
// forced, a large job's record at most every flushGap (a pass comes
// back for the rest).
func (s *Scheduler) flushOwn(id string, force bool) {
	s.mu.Lock()
	o, ok := s.own[id]
	if !ok || !o.dirty {
		s.mu.Unlock()
		return
	}
	if wait := flushGap - time.Since(o.flushed); !force && o.big && wait > 0 {
		if !o.pending {
			o.pending = true
			time.AfterFunc(wait, s.Kick)
		}
		s.mu.Unlock()
		return
	}
	o.pending = false
	o.flushed = time.Now()
	b := encode(o.t)
	o.dirty = false
	s.mu.Unlock()
	if len(b) > gossip.MaxValueLen {
		s.mu.Lock()
		o.tooLarge = len(b)
		s.mu.Unlock()
		s.Kick()
		return
	}
	if _, err := s.cfg.Records.Put(keyJoin(tasksPrefix+id, s.cfg.Self), b); err != nil {
		s.log.Warn("publish task progress", "job", id, "err", err)
		s.mu.Lock()
		o.dirty = true
		s.mu.Unlock()
	}
}

// taskStopped is called by a task goroutine whose attempt was stopped
// before it ended: killed because another node finished the task first, or
// interrupted (the job ended, the node is stopping), which counts nothing.
func (s *Scheduler) taskStopped(id string, k itemKey, killed, launched bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cleaned[id] {
		return
	}
	o := s.ownOf(id)
	if killed {
		o.killed(k, launched)
	} else {
		o.ended(k)
	}
}

// taskDone is called by a task goroutine when an attempt ends: it folds the
// result into this node's record of the job, which the loop publishes.
func (s *Scheduler) taskDone(id string, k itemKey, c job.Counters, err error) {
	s.inputArrived(id, k)
	kind := failUser
	if err != nil {
		kind = failureKind(err)
	}
	s.mu.Lock()
	if s.cleaned[id] {
		s.mu.Unlock()
		return
	}
	o := s.ownOf(id)
	if err != nil {
		o.failed(k, kind, err.Error())
	} else if lerr := o.finished(k, c, time.Now().UnixMilli()); lerr != nil {
		// Without its counters on disk the item could not be counted
		// safely after a restart: the attempt fails, outside the code.
		o.failed(k, failInfra, taskName(k.k, k.i)+": record the finished task: "+lerr.Error())
	}
	s.mu.Unlock()
}
