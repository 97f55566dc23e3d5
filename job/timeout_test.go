package job

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// hangMapper blocks in Map until it is aborted, as a streaming mapper
// whose child sleeps does.
type hangMapper struct {
	abort chan struct{}
	once  atomic.Bool
}

func (h *hangMapper) Map(k, v []byte, out Emitter) error {
	<-h.abort
	return errors.New("aborted")
}

func (h *hangMapper) Abort() {
	if h.once.CompareAndSwap(false, true) {
		close(h.abort)
	}
}

func TestTaskTimeoutAbortsAHungTask(t *testing.T) {
	h := &hangMapper{abort: make(chan struct{})}
	j := &Job{NewMapper: func(TaskInfo) (Mapper, error) { return h, nil }}
	_, err := RunMapTask(context.Background(), Task{Job: j, Timeout: 100 * time.Millisecond}, records("a"), discard)
	var te *TimeoutError
	if !errors.As(err, &te) || !IsUserError(err) || errors.Is(err, context.Canceled) {
		t.Fatalf("hung map task: %v, want a *UserError holding a *TimeoutError, not context.Canceled", err)
	}
	if te.After != 100*time.Millisecond || err.Error() != "timed out after 100ms without progress (no record read or written, no status or counter line)" {
		t.Fatalf("timeout error: %q", err)
	}
	if !h.once.Load() {
		t.Fatal("the hung mapper was not aborted")
	}

	// The same for a reducer.
	hr := &hangMapper{abort: make(chan struct{})}
	jr := &Job{NewMapper: j.NewMapper, NewReducer: func(TaskInfo) (Reducer, error) { return hangReducer{hr}, nil }}
	_, err = RunReduceTask(context.Background(), Task{Job: jr, Timeout: 100 * time.Millisecond}, oneGroup("k", "v"), discard)
	if !errors.As(err, &te) || !hr.once.Load() {
		t.Fatalf("hung reduce task: %v (aborted %v)", err, hr.once.Load())
	}
}

type hangReducer struct{ *hangMapper }

func (h hangReducer) Reduce(k []byte, vs Values, out Emitter) error { return h.Map(nil, nil, out) }

// slowMapper takes a while per record but emits as it goes, and reports
// progress through ProgressSource while it emits nothing.
type slowMapper struct {
	quiet    bool // emit nothing; report progress instead
	progress atomic.Int64
}

func (s *slowMapper) Map(k, v []byte, out Emitter) error {
	for i := 0; i < 30; i++ {
		time.Sleep(10 * time.Millisecond) // the mapper's own work
		if s.quiet {
			s.progress.Add(1)
			continue
		}
		if err := out.Emit(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (s *slowMapper) Progress() int64 { return s.progress.Load() }
func (s *slowMapper) Abort()          {}

func TestTaskTimeoutResetByProgress(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		m := &slowMapper{quiet: quiet}
		j := &Job{NewMapper: func(TaskInfo) (Mapper, error) { return m, nil }}
		// 300 ms of work with progress every 10 ms stays under a 200 ms
		// timeout of no progress.
		if _, err := RunMapTask(context.Background(), Task{Job: j, Timeout: 200 * time.Millisecond}, records("a"), discard); err != nil {
			t.Fatalf("quiet=%v: a task making progress failed: %v", quiet, err)
		}
	}
}

func TestTaskTimeoutZeroDisables(t *testing.T) {
	w := startWatchdog(context.Background(), 0)
	select {
	case <-w.done:
	default:
		t.Fatal("a zero timeout started a watch")
	}
	if err := w.stop(nil); err != nil || w.ctx.Err() == nil {
		t.Fatalf("stop: %v, ctx %v", err, w.ctx.Err())
	}
}
