package job

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// The task driver: the one place that calls user code. RunSequential and
// the distributed scheduler both run every map and reduce task through
// RunMapTask and RunReduceTask, so the contracts written in the package
// comment hold the same way in both.

// RecordSource feeds a map task's input records to fn, in order, and
// returns fn's first error as it is (or its own error, reading the input).
// The slices passed to fn are valid only during the call.
type RecordSource func(fn func(key, value []byte) error) error

// GroupSource feeds a reduce task's key groups to fn in key order, each
// with its values in value order, and returns fn's first error as it is
// (or its own error, reading the input). key and values are valid only
// during the call.
type GroupSource func(fn func(key []byte, values Values) error) error

// GeneratorInput is the input of map task n of a generator job
// (Job.Generate): one record, key n in decimal ASCII and an empty value.
func GeneratorInput(n int) RecordSource {
	return func(fn func(key, value []byte) error) error {
		k := strconv.AppendInt(nil, int64(n), 10)
		return fn(k, k[len(k):])
	}
}

// Task is one task for the task driver.
type Task struct {
	// Job is the job the task belongs to.
	Job *Job
	// Info is what the task's Mapper, Reducer or combiner is built with.
	Info TaskInfo
	// Watch, if set, is called with the task's Mapper or Reducer once it
	// is built, before its first Map or Reduce call, and the func it
	// returns when the task has ended (the scheduler publishes a
	// StatusSource's status line meanwhile). Neither may block for long.
	Watch func(user any) (stop func())
	// Timeout, if positive, fails the task with a *TimeoutError (inside a
	// *UserError) when it makes no progress for that long: no record read,
	// no pair emitted, and no change of a ProgressSource's count. The
	// task's context is cancelled, so an Aborter is aborted (a streaming
	// child killed with its process group); a Mapper or Reducer that is
	// no Aborter and never returns from Map or Reduce is not interrupted.
	// Zero disables the check.
	Timeout time.Duration
}

// ProgressSource is implemented by a Mapper or Reducer that shows it is
// alive other than by records (Hadoop Streaming's reporter lines on
// stderr). Progress returns a count that grows with each sign of life; the
// task timeout calls it from another goroutine.
type ProgressSource interface {
	Progress() int64
}

// TimeoutError is a task attempt that made no progress for After.
type TimeoutError struct {
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timed out after %s without progress (no record read or written, no status or counter line)", e.After)
}

// watchdogPeriod bounds how often the task timeout checks progress: a
// tenth of the timeout, between 10 ms and 1 s.
func watchdogPeriod(timeout time.Duration) time.Duration {
	return min(max(timeout/10, 10*time.Millisecond), time.Second)
}

// watchdog cancels the context it returns with a *TimeoutError as cause
// when progress (the driver's count plus a ProgressSource's) stays the same
// for timeout. user may be set later, once built. stop ends the watch.
type watchdog struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	n      atomic.Int64 // records read and pairs emitted
	user   atomic.Pointer[ProgressSource]
	done   chan struct{}
	quit   chan struct{}
}

func startWatchdog(parent context.Context, timeout time.Duration) *watchdog {
	w := &watchdog{done: make(chan struct{}), quit: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancelCause(parent)
	if timeout <= 0 {
		close(w.done)
		return w
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(watchdogPeriod(timeout))
		defer t.Stop()
		last, since := w.progress(), time.Now()
		for {
			select {
			case <-w.quit:
				return
			case <-w.ctx.Done():
				return
			case now := <-t.C:
				if p := w.progress(); p != last {
					last, since = p, now
				} else if now.Sub(since) >= timeout {
					w.cancel(&TimeoutError{After: timeout})
					return
				}
			}
		}
	}()
	return w
}

func (w *watchdog) progress() int64 {
	n := w.n.Load()
	if u := w.user.Load(); u != nil {
		n += (*u).Progress()
	}
	return n
}

func (w *watchdog) watch(user any) {
	if ps, ok := user.(ProgressSource); ok {
		w.user.Store(&ps)
	}
}

// stop ends the watch and returns the task's error: a *UserError holding
// the *TimeoutError if the task timed out (whatever err the timeout made
// it end with), else err.
func (w *watchdog) stop(err error) error {
	close(w.quit)
	<-w.done
	var te *TimeoutError
	timedOut := errors.As(context.Cause(w.ctx), &te)
	w.cancel(nil)
	if timedOut && err != nil {
		return &UserError{Err: te}
	}
	return err
}

// ctxCheckEvery is how many records or groups a task handles between
// checks of its context.
const ctxCheckEvery = 1024

// RunMapTask builds t's Mapper with t.Job.NewMapper and runs it over in:
// Map once per record, then Close if the mapper is a Closer and every Map
// succeeded. Its output goes to out.
//
// The contracts it keeps, for every runner: user code is called through
// CallSafely, so a panic becomes a *PanicError; a constructor that returns
// neither a value nor an error is an error ("new mapper: returned no
// mapper"); a Mapper that is an Aborter is aborted as soon as ctx is done
// (and the task's error then matches ctx's), or once if the task fails;
// the counters of a CounterSource are added to the result when the task
// ends, failed or not; ctx is checked every 1024 records.
//
// It returns the task's counters — MAP_INPUT_RECORDS, MAP_OUTPUT_RECORDS,
// MAP_OUTPUT_BYTES and the user's own — also when it fails. A failure of
// user code is a *UserError; an error from in (reading the input) or from
// out (writing the output), even one Map passed on, is returned as it is.
func RunMapTask(ctx context.Context, t Task, in RecordSource, out Emitter) (Counters, error) {
	c := Counters{MAP_INPUT_RECORDS: 0, MAP_OUTPUT_RECORDS: 0, MAP_OUTPUT_BYTES: 0}
	if err := ctx.Err(); err != nil {
		return c, err
	}
	wd := startWatchdog(ctx, t.Timeout)
	ctx = wd.ctx
	c, err := runMapTask(ctx, t, in, out, wd)
	return c, wd.stop(err)
}

func runMapTask(ctx context.Context, t Task, in RecordSource, out Emitter, wd *watchdog) (Counters, error) {
	c := Counters{MAP_INPUT_RECORDS: 0, MAP_OUTPUT_RECORDS: 0, MAP_OUTPUT_BYTES: 0}
	var m Mapper
	if err := CallSafely(func() (err error) { m, err = t.Job.NewMapper(t.Info); return err }); err != nil {
		return c, userErrorf("new mapper: %w", err)
	}
	if m == nil {
		return c, &UserError{Err: errors.New("new mapper: returned no mapper")}
	}
	wd.watch(m)
	end := watchTask(ctx, t, m, c)
	em := &countingEmitter{out: out, progress: &wd.n}
	var inRecs int64
	var userErr error // the last error Map or Close returned
	inUser := false   // a panic now is user code's
	// One recover around the whole loop, not one per record: a panic is
	// user code's if it happened inside Map.
	err := CallSafely(func() error {
		return in(func(k, v []byte) error {
			wd.n.Add(1)
			if inRecs++; inRecs%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			inUser = true
			err := m.Map(k, v, em)
			inUser = false
			if err != nil {
				userErr = err
			}
			return err
		})
	})
	if inUser { // Map panicked
		userErr = err
	}
	if err == nil {
		if cl, ok := m.(Closer); ok {
			if err = CallSafely(func() error { return cl.Close(em) }); err != nil {
				userErr = err
			}
		}
	}
	c.Add(MAP_INPUT_RECORDS, inRecs)
	c.Add(MAP_OUTPUT_RECORDS, em.records)
	c.Add(MAP_OUTPUT_BYTES, em.bytes)
	return c, end(classify(err, userErr, em.err))
}

// RunReduceTask builds t's Reducer with t.Job.NewReducer and runs it over
// groups: Reduce once per key group, then Close if the reducer is a Closer
// and every Reduce succeeded. Its output goes to out. It keeps RunMapTask's
// contracts ("new reducer: returned no reducer"; ctx checked every 1024
// groups).
//
// It returns the task's counters — REDUCE_INPUT_GROUPS,
// REDUCE_OUTPUT_RECORDS and the user's own — also when it fails; the
// caller, which knows how many values it fed, adds REDUCE_INPUT_RECORDS.
// Errors are classified as RunMapTask's are.
func RunReduceTask(ctx context.Context, t Task, groups GroupSource, out Emitter) (Counters, error) {
	c := Counters{REDUCE_INPUT_GROUPS: 0, REDUCE_OUTPUT_RECORDS: 0}
	if err := ctx.Err(); err != nil {
		return c, err
	}
	if t.Job.NewReducer == nil {
		return c, errors.New("a map-only job has no reduce tasks")
	}
	wd := startWatchdog(ctx, t.Timeout)
	ctx = wd.ctx
	c, err := runReduceTask(ctx, t, groups, out, wd)
	return c, wd.stop(err)
}

func runReduceTask(ctx context.Context, t Task, groups GroupSource, out Emitter, wd *watchdog) (Counters, error) {
	c := Counters{REDUCE_INPUT_GROUPS: 0, REDUCE_OUTPUT_RECORDS: 0}
	var r Reducer
	if err := CallSafely(func() (err error) { r, err = t.Job.NewReducer(t.Info); return err }); err != nil {
		return c, userErrorf("new reducer: %w", err)
	}
	if r == nil {
		return c, &UserError{Err: errors.New("new reducer: returned no reducer")}
	}
	wd.watch(r)
	end := watchTask(ctx, t, r, c)
	em := &countingEmitter{out: out, progress: &wd.n}
	var nGroups int64
	var userErr error
	inUser := false
	err := CallSafely(func() error {
		return groups(func(key []byte, values Values) error {
			wd.n.Add(1)
			if nGroups++; nGroups%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			inUser = true
			err := r.Reduce(key, values, em)
			inUser = false
			if err != nil {
				userErr = err
			}
			return err
		})
	})
	if inUser { // Reduce panicked
		userErr = err
	}
	if err == nil {
		if cl, ok := r.(Closer); ok {
			if err = CallSafely(func() error { return cl.Close(em) }); err != nil {
				userErr = err
			}
		}
	}
	c.Add(REDUCE_INPUT_GROUPS, nGroups)
	c.Add(REDUCE_OUTPUT_RECORDS, em.records)
	return c, end(classify(err, userErr, em.err))
}

// BuildCombiner builds the combiner of map task t, or returns nil if the
// job has none. The Reducer it returns calls the user's Reduce through
// CallSafely and returns its failures as *UserErrors, as does a failing
// constructor. Combiners are not Closed (they may run many times per
// task, on parts of its output).
func BuildCombiner(t Task) (Reducer, error) {
	if t.Job.NewCombiner == nil {
		return nil, nil
	}
	var r Reducer
	if err := CallSafely(func() (err error) { r, err = t.Job.NewCombiner(t.Info); return err }); err != nil {
		return nil, userErrorf("new combiner: %w", err)
	}
	if r == nil {
		return nil, &UserError{Err: errors.New("new combiner: returned no combiner")}
	}
	return ReducerFunc(func(key []byte, values Values, out Emitter) error {
		em := &countingEmitter{out: out}
		err := CallSafely(func() error { return r.Reduce(key, values, em) })
		if err != nil && (em.err == nil || !errors.Is(err, em.err)) {
			return userErrorf("combiner: %w", err)
		}
		return err
	}), nil
}

// classify turns the error a task loop ended with into the task's error:
// a failure of user code (userErr, the error Map, Reduce or Close returned)
// becomes a *UserError, unless it is, or wraps, the error the output
// returned (outErr): a full disk is not the user's fault, even when the
// user's code passed it on. Errors of the input source are returned as
// they are.
func classify(err, userErr, outErr error) error {
	switch {
	case err == nil:
		return nil
	case userErr == nil || !errors.Is(err, userErr):
		return err // the source's, or ctx's
	case outErr != nil && errors.Is(err, outErr):
		return err
	}
	return &UserError{Err: err}
}

// countingEmitter counts what it passes to out and keeps out's first error.
type countingEmitter struct {
	out      Emitter
	records  int64
	bytes    int64
	err      error
	progress *atomic.Int64 // if set, counts the pairs too, for the task timeout
}

func (e *countingEmitter) Emit(key, value []byte) error {
	if e.progress != nil {
		e.progress.Add(1)
	}
	e.records++
	e.bytes += int64(len(key) + len(value))
	err := e.out.Emit(key, value)
	if err != nil && e.err == nil {
		e.err = err
	}
	return err
}

// watchTask watches user, the task's Mapper or Reducer, while it runs: if
// user is an Aborter, it is aborted as soon as ctx is done; t.Watch, if
// set, is started. The returned end is called once, with the task's
// error, when the task has ended, and returns the task's final error: it
// waits for an abort under way, aborts a failed task (once), stops
// t.Watch, and adds the counters of a CounterSource to c. The error of a
// task aborted because ctx was done also matches ctx's error. Panics in
// Abort and Counters are recovered and ignored: the task's result stands.
func watchTask(ctx context.Context, t Task, user any, c Counters) (end func(error) error) {
	a, _ := user.(Aborter)
	abort := func() { _ = CallSafely(func() error { a.Abort(); return nil }) }
	stop := func() bool { return true }
	aborted := make(chan struct{})
	if a != nil {
		stop = context.AfterFunc(ctx, func() {
			defer close(aborted)
			abort()
		})
	}
	stopWatch := func() {}
	if t.Watch != nil {
		stopWatch = t.Watch(user)
	}
	return func(err error) error {
		if !stop() {
			<-aborted // ctx was done: Abort ran, or is running
			if cerr := ctx.Err(); err != nil && !errors.Is(err, cerr) {
				err = fmt.Errorf("%w: %w", cerr, err)
			}
		} else if err != nil && a != nil {
			abort()
		}
		stopWatch()
		if cs, ok := user.(CounterSource); ok {
			var uc Counters
			_ = CallSafely(func() error { uc = cs.Counters(); return nil })
			c.Merge(uc)
		}
		return err
	}
}
