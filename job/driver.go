package job

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	var m Mapper
	if err := CallSafely(func() (err error) { m, err = t.Job.NewMapper(t.Info); return err }); err != nil {
		return c, userErrorf("new mapper: %w", err)
	}
	if m == nil {
		return c, &UserError{Err: errors.New("new mapper: returned no mapper")}
	}
	end := watchTask(ctx, t, m, c)
	em := &countingEmitter{out: out}
	var inRecs int64
	var userErr error // the last error Map or Close returned
	inUser := false   // a panic now is user code's
	// One recover around the whole loop, not one per record: a panic is
	// user code's if it happened inside Map.
	err := CallSafely(func() error {
		return in(func(k, v []byte) error {
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
	var r Reducer
	if err := CallSafely(func() (err error) { r, err = t.Job.NewReducer(t.Info); return err }); err != nil {
		return c, userErrorf("new reducer: %w", err)
	}
	if r == nil {
		return c, &UserError{Err: errors.New("new reducer: returned no reducer")}
	}
	end := watchTask(ctx, t, r, c)
	em := &countingEmitter{out: out}
	var nGroups int64
	var userErr error
	inUser := false
	err := CallSafely(func() error {
		return groups(func(key []byte, values Values) error {
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
	out     Emitter
	records int64
	bytes   int64
	err     error
}

func (e *countingEmitter) Emit(key, value []byte) error {
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
