package job

import (
	"context"
	"errors"
	"testing"
)

// The task driver's contract, tested once for every runner: RunSequential
// and the scheduler both run their tasks through RunMapTask and
// RunReduceTask.

func records(recs ...string) RecordSource {
	return func(fn func(k, v []byte) error) error {
		for _, r := range recs {
			if err := fn(nil, []byte(r)); err != nil {
				return err
			}
		}
		return nil
	}
}

func oneGroup(key string, vals ...string) GroupSource {
	return func(fn func(key []byte, values Values) error) error {
		return fn([]byte(key), &sliceValues{vals: vals})
	}
}

type sliceValues struct{ vals []string }

func (s *sliceValues) Next() ([]byte, bool) {
	if len(s.vals) == 0 {
		return nil, false
	}
	v := s.vals[0]
	s.vals = s.vals[1:]
	return []byte(v), true
}

var discard = EmitterFunc(func(k, v []byte) error { return nil })

func TestDriverNilUserCode(t *testing.T) {
	j := &Job{
		NewMapper:   func(TaskInfo) (Mapper, error) { return nil, nil },
		NewReducer:  func(TaskInfo) (Reducer, error) { return nil, nil },
		NewCombiner: func(TaskInfo) (Reducer, error) { return nil, nil },
	}
	_, err := RunMapTask(context.Background(), Task{Job: j}, records("a"), discard)
	if !IsUserError(err) || err.Error() != "new mapper: returned no mapper" {
		t.Errorf("nil mapper: %v", err)
	}
	_, err = RunReduceTask(context.Background(), Task{Job: j}, oneGroup("k", "v"), discard)
	if !IsUserError(err) || err.Error() != "new reducer: returned no reducer" {
		t.Errorf("nil reducer: %v", err)
	}
	_, err = BuildCombiner(Task{Job: j})
	if !IsUserError(err) || err.Error() != "new combiner: returned no combiner" {
		t.Errorf("nil combiner: %v", err)
	}
	boom := errors.New("boom")
	j.NewMapper = func(TaskInfo) (Mapper, error) { return nil, boom }
	_, err = RunMapTask(context.Background(), Task{Job: j}, records("a"), discard)
	if !IsUserError(err) || !errors.Is(err, boom) || err.Error() != "new mapper: boom" {
		t.Errorf("failing constructor: %v", err)
	}
}

func TestDriverClassifiesFailures(t *testing.T) {
	diskFull := errors.New("no space left on device")
	readErr := errors.New("input block unreadable")
	passOn := MapperFunc(func(k, v []byte, out Emitter) error { return out.Emit(v, v) })
	failing := EmitterFunc(func(k, v []byte) error { return diskFull })
	cases := []struct {
		name      string
		mapper    Mapper
		in        RecordSource
		out       Emitter
		user      bool
		permanent bool
		is        error
		msg       string
	}{
		{name: "map error", mapper: MapperFunc(func(k, v []byte, out Emitter) error { return errors.New("bad record") }),
			in: records("a"), out: discard, user: true, msg: "bad record"},
		{name: "panic", mapper: MapperFunc(func(k, v []byte, out Emitter) error { panic("oops") }),
			in: records("a"), out: discard, user: true, msg: "panic: oops"},
		{name: "permanent", mapper: MapperFunc(func(k, v []byte, out Emitter) error { return Permanent(errors.New("misorder")) }),
			in: records("a"), out: discard, user: true, permanent: true, msg: "misorder"},
		{name: "output error passed on by Map", mapper: passOn, in: records("a"), out: failing, is: diskFull, msg: diskFull.Error()},
		{name: "output error wrapped by Map", mapper: MapperFunc(func(k, v []byte, out Emitter) error {
			if err := out.Emit(v, v); err != nil {
				return errors.Join(errors.New("emit"), err)
			}
			return nil
		}), in: records("a"), out: failing, is: diskFull, msg: "emit\n" + diskFull.Error()},
		{name: "input error", mapper: passOn, in: func(fn func(k, v []byte) error) error { return readErr }, out: discard, is: readErr, msg: readErr.Error()},
	}
	for _, tc := range cases {
		j := &Job{NewMapper: func(TaskInfo) (Mapper, error) { return tc.mapper, nil }}
		_, err := RunMapTask(context.Background(), Task{Job: j}, tc.in, tc.out)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if IsUserError(err) != tc.user || IsPermanent(err) != tc.permanent || err.Error() != tc.msg {
			t.Errorf("%s: %q user=%v permanent=%v, want %q user=%v permanent=%v", tc.name, err, IsUserError(err), IsPermanent(err), tc.msg, tc.user, tc.permanent)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v does not match %v", tc.name, err, tc.is)
		}
	}

	// The same for a reducer and a combiner.
	j := &Job{NewReducer: func(TaskInfo) (Reducer, error) {
		return ReducerFunc(func(k []byte, vs Values, out Emitter) error { return out.Emit(k, k) }), nil
	}}
	if _, err := RunReduceTask(context.Background(), Task{Job: j}, oneGroup("k"), failing); IsUserError(err) || !errors.Is(err, diskFull) {
		t.Errorf("reduce output error: %v user=%v", err, IsUserError(err))
	}
	j.NewCombiner = func(TaskInfo) (Reducer, error) {
		return ReducerFunc(func(k []byte, vs Values, out Emitter) error {
			if string(k) == "bad" {
				return errors.New("combine failed")
			}
			return out.Emit(k, k)
		}), nil
	}
	comb, err := BuildCombiner(Task{Job: j})
	if err != nil {
		t.Fatal(err)
	}
	if err := comb.Reduce([]byte("bad"), &sliceValues{}, discard); !IsUserError(err) || err.Error() != "combiner: combine failed" {
		t.Errorf("combiner error: %v", err)
	}
	if err := comb.Reduce([]byte("k"), &sliceValues{}, failing); IsUserError(err) || !errors.Is(err, diskFull) {
		t.Errorf("combiner output error: %v", err)
	}
}

// driverTask is a Mapper and Reducer with every optional interface.
type driverTask struct {
	failAt   string
	closed   int
	aborts   int
	reduced  int
	counters Counters
}

func (d *driverTask) Map(k, v []byte, out Emitter) error {
	d.counters.Add("user:seen", 1)
	if string(v) == d.failAt {
		return errors.New("failed at " + d.failAt)
	}
	return out.Emit(v, v)
}

func (d *driverTask) Reduce(k []byte, vs Values, out Emitter) error {
	d.reduced++
	return d.Map(nil, k, out)
}

func (d *driverTask) Close(out Emitter) error { d.closed++; return out.Emit([]byte("c"), []byte("c")) }
func (d *driverTask) Abort()                  { d.aborts++ }
func (d *driverTask) Counters() Counters      { return d.counters.Clone() }
func (d *driverTask) Status() string          { return "fine" }

func TestDriverLifecycle(t *testing.T) {
	for _, fail := range []string{"", "b"} {
		d := &driverTask{failAt: fail, counters: Counters{}}
		var watched any
		stops := 0
		task := Task{
			Job: &Job{NewMapper: func(TaskInfo) (Mapper, error) { return d, nil }},
			Watch: func(u any) func() {
				watched = u
				return func() { stops++ }
			},
		}
		c, err := RunMapTask(context.Background(), task, records("a", "b", "c"), discard)
		wantSeen, wantIn, wantOut, wantClosed, wantAborts := int64(3), int64(3), int64(4), 1, 0
		if fail != "" {
			wantSeen, wantIn, wantOut, wantClosed, wantAborts = 2, 2, 1, 0, 1
			if !IsUserError(err) || err.Error() != "failed at b" {
				t.Errorf("fail at %q: %v", fail, err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if c.Get("user:seen") != wantSeen || c.Get(MAP_INPUT_RECORDS) != wantIn || c.Get(MAP_OUTPUT_RECORDS) != wantOut ||
			c.Get(MAP_OUTPUT_BYTES) != 2*wantOut || d.closed != wantClosed || d.aborts != wantAborts {
			t.Errorf("fail at %q: counters %v, closed %d, aborted %d", fail, c, d.closed, d.aborts)
		}
		if watched != d || stops != 1 {
			t.Errorf("fail at %q: watched %v, stopped %d times", fail, watched, stops)
		}
	}

	// Reduce: groups and output counted, the caller counts input records.
	d := &driverTask{counters: Counters{}}
	task := Task{Job: &Job{NewReducer: func(TaskInfo) (Reducer, error) { return d, nil }}}
	c, err := RunReduceTask(context.Background(), task, oneGroup("k", "1", "2"), discard)
	if err != nil || c.Get(REDUCE_INPUT_GROUPS) != 1 || c.Get(REDUCE_OUTPUT_RECORDS) != 2 || d.closed != 1 || c.Get("user:seen") != 1 {
		t.Errorf("reduce: %v %v closed %d", err, c, d.closed)
	}
	if _, ok := c[REDUCE_INPUT_RECORDS]; ok {
		t.Errorf("the driver counted REDUCE_INPUT_RECORDS: %v", c)
	}

	// A done context: nothing is built.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	built := false
	task.Job.NewMapper = func(TaskInfo) (Mapper, error) { built = true; return d, nil }
	if _, err := RunMapTask(ctx, task, records("a"), discard); !errors.Is(err, context.Canceled) || built {
		t.Errorf("cancelled: %v, built %v", err, built)
	}
}

func TestDriverChecksContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j := &Job{NewMapper: func(TaskInfo) (Mapper, error) {
		return MapperFunc(func(k, v []byte, out Emitter) error { cancel(); return nil }), nil
	}}
	endless := RecordSource(func(fn func(k, v []byte) error) error {
		for {
			if err := fn(nil, nil); err != nil {
				return err
			}
		}
	})
	c, err := RunMapTask(ctx, Task{Job: j}, endless, discard)
	if !errors.Is(err, context.Canceled) || IsUserError(err) || c.Get(MAP_INPUT_RECORDS) != ctxCheckEvery {
		t.Errorf("got %v after %d records, want the cancel noticed at %d", err, c.Get(MAP_INPUT_RECORDS), ctxCheckEvery)
	}
	if k := generatorKey(t, 42); k != "42" {
		t.Errorf("generator key %q, want 42", k)
	}
}

// generatorKey returns the one key GeneratorInput(n) feeds.
func generatorKey(t *testing.T, n int) string {
	var keys []string
	if err := GeneratorInput(n)(func(k, v []byte) error {
		if len(v) != 0 {
			t.Errorf("generator value %q", v)
		}
		keys = append(keys, string(k))
		return nil
	}); err != nil || len(keys) != 1 {
		t.Fatalf("generator input: %v %q", err, keys)
	}
	return keys[0]
}
