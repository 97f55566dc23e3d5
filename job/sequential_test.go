package job

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// memFS collects the files a run creates.
type memFS struct {
	files      map[string]*bytes.Buffer
	order      []string // creation order
	open       map[string]bool
	failCreate string // create of this name fails
	failClose  string // close of this name fails
}

func newMemFS() *memFS {
	return &memFS{files: make(map[string]*bytes.Buffer), open: make(map[string]bool)}
}

type memFile struct {
	*bytes.Buffer
	fs   *memFS
	name string
}

func (f *memFile) Close() error {
	if !f.fs.open[f.name] {
		return fmt.Errorf("%s closed twice", f.name)
	}
	f.fs.open[f.name] = false
	if f.name == f.fs.failClose {
		return errors.New("disk full")
	}
	return nil
}

func (m *memFS) create(name string) (io.WriteCloser, error) {
	if name == m.failCreate {
		return nil, errors.New("no space")
	}
	if _, ok := m.files[name]; ok {
		return nil, fmt.Errorf("%s created twice", name)
	}
	b := new(bytes.Buffer)
	m.files[name] = b
	m.order = append(m.order, name)
	m.open[name] = true
	return &memFile{b, m, name}, nil
}

// contents returns every file's contents and checks all were closed.
func (m *memFS) contents(t *testing.T) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for name, b := range m.files {
		if m.open[name] {
			t.Errorf("%s was not closed", name)
		}
		out[name] = b.String()
	}
	return out
}

func inputs(kv ...string) []Input {
	var in []Input
	for i := 0; i < len(kv); i += 2 {
		data := kv[i+1]
		in = append(in, Input{Path: kv[i], Open: func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(data)), nil
		}})
	}
	return in
}

// wordJob counts space-separated words: a wordcount of this package's own.
func wordJob() *Job {
	return &Job{
		NewMapper: func(TaskInfo) (Mapper, error) {
			one := []byte("1")
			return MapperFunc(func(_, line []byte, out Emitter) error {
				for _, w := range bytes.Fields(line) {
					if err := out.Emit(w, one); err != nil {
						return err
					}
				}
				return nil
			}), nil
		},
		NewReducer: func(TaskInfo) (Reducer, error) { return countReducer(), nil },
	}
}

// countReducer emits (key, number of values).
func countReducer() Reducer {
	return ReducerFunc(func(k []byte, vs Values, out Emitter) error {
		n := 0
		for _, ok := vs.Next(); ok; _, ok = vs.Next() {
			n++
		}
		return out.Emit(k, strconv.AppendInt(nil, int64(n), 10))
	})
}

func run(t *testing.T, j *Job, in []Input, reducers int) (map[string]string, Counters) {
	t.Helper()
	fs := newMemFS()
	c, err := RunSequential(context.Background(), j, "job-1", map[string]string{"p": "v"}, in, reducers, fs.create)
	if err != nil {
		t.Fatal(err)
	}
	return fs.contents(t), c
}

func TestRunSequentialWordCount(t *testing.T) {
	in := inputs("/in/a", "a b a\nb c\n")
	got, c := run(t, wordJob(), in, 1)
	if want := map[string]string{"part-r-00000": "a\t2\nb\t2\nc\t1\n"}; !maps.Equal(got, want) {
		t.Errorf("1 reducer: got %q, want %q", got, want)
	}
	want := Counters{
		MAP_INPUT_RECORDS: 2, MAP_OUTPUT_RECORDS: 5, MAP_OUTPUT_BYTES: 10,
		REDUCE_INPUT_GROUPS: 3, REDUCE_INPUT_RECORDS: 5, REDUCE_OUTPUT_RECORDS: 3,
		TOTAL_LAUNCHED_MAPS: 1, TOTAL_LAUNCHED_REDUCES: 1,
	}
	if !maps.Equal(c, want) {
		t.Errorf("counters: got %v, want %v", c, want)
	}

	// FNV-1a: a and c go to partition 0, b to 1.
	got, c = run(t, wordJob(), in, 2)
	if want := map[string]string{"part-r-00000": "a\t2\nc\t1\n", "part-r-00001": "b\t2\n"}; !maps.Equal(got, want) {
		t.Errorf("2 reducers: got %q, want %q", got, want)
	}
	if c.Get(TOTAL_LAUNCHED_REDUCES) != 2 || c.Get(REDUCE_INPUT_GROUPS) != 3 {
		t.Errorf("2 reducers: counters %v", c)
	}

	// Several inputs; reducers 0 means the job's default.
	j := wordJob()
	j.DefaultReducers = 3
	got, c = run(t, j, inputs("/a", "a b a\n", "/b", "", "/c", "b c\n\n"), 0)
	want3 := map[string]string{"part-r-00000": "", "part-r-00001": "a\t2\nb\t2\n", "part-r-00002": "c\t1\n"}
	if !maps.Equal(got, want3) {
		t.Errorf("3 inputs, 3 reducers: got %q, want %q", got, want3)
	}
	if c.Get(TOTAL_LAUNCHED_MAPS) != 3 || c.Get(MAP_INPUT_RECORDS) != 3 {
		t.Errorf("3 inputs: counters %v", c)
	}
}

func TestRunSequentialSortsByKeyThenValue(t *testing.T) {
	j := &Job{
		Input: KeyValueInput,
		NewMapper: func(TaskInfo) (Mapper, error) {
			return MapperFunc(func(k, v []byte, out Emitter) error { return out.Emit(k, v) }), nil
		},
		NewReducer: func(TaskInfo) (Reducer, error) {
			var buf []byte
			return ReducerFunc(func(k []byte, vs Values, out Emitter) error {
				buf = buf[:0]
				for i := 0; ; i++ {
					v, ok := vs.Next()
					if !ok {
						break
					}
					if i > 0 {
						buf = append(buf, ',')
					}
					buf = append(buf, v...)
				}
				return out.Emit(k, buf)
			}), nil
		},
	}
	in := inputs(
		"/1", "k\tb\nk\ta\n\xff\t1\nab\tz\n",
		"/2", "k\tab\na\ty\nk\t\na\nk\tB\n",
	)
	got, c := run(t, j, in, 1)
	// Bytewise: "" < "B" < "a" < "ab" < "b"; "a" < "ab" < "k" < "\xff".
	want := "a\t,y\nab\tz\nk\t,B,a,ab,b\n\xff\t1\n"
	if got["part-r-00000"] != want {
		t.Errorf("got %q, want %q", got["part-r-00000"], want)
	}
	if c.Get(MAP_OUTPUT_BYTES) != 2+2+2+3+3+2+1+1+2 {
		t.Errorf("MAP_OUTPUT_BYTES = %d", c.Get(MAP_OUTPUT_BYTES))
	}
}

func TestRunSequentialMapOnly(t *testing.T) {
	j := &Job{
		MapOnly: true,
		NewMapper: func(TaskInfo) (Mapper, error) {
			return MapperFunc(func(k, v []byte, out Emitter) error { return out.Emit(v, k) }), nil
		},
	}
	in := inputs("/x", "b\na\n", "/y", "", "/z", "c")
	in[2].Offset = 100 // a later split of its file
	got, c := run(t, j, in, 5)
	want := map[string]string{"part-m-00000": "b\t0\na\t2\n", "part-m-00001": "", "part-m-00002": "c\t100\n"}
	if !maps.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if c.Get(TOTAL_LAUNCHED_REDUCES) != 0 || c.Get(MAP_OUTPUT_RECORDS) != 3 || c.Get(TOTAL_LAUNCHED_MAPS) != 3 {
		t.Errorf("counters %v", c)
	}

	got, _ = run(t, j, nil, 5)
	if len(got) != 0 {
		t.Errorf("map-only with no input created %q", got)
	}
}

func TestRunSequentialEmptyInput(t *testing.T) {
	fs := newMemFS()
	c, err := RunSequential(context.Background(), wordJob(), "j", nil, inputs("/e", ""), 3, fs.create)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"part-r-00000": "", "part-r-00001": "", "part-r-00002": ""}
	if got := fs.contents(t); !maps.Equal(got, want) {
		t.Errorf("got %q", got)
	}
	if !slices.Equal(fs.order, []string{"part-r-00000", "part-r-00001", "part-r-00002"}) {
		t.Errorf("creation order %q", fs.order)
	}
	if len(c) != 8 || c.Get(TOTAL_LAUNCHED_REDUCES) != 3 || c.Get(TOTAL_LAUNCHED_MAPS) != 1 || c.Get(MAP_INPUT_RECORDS) != 0 {
		t.Errorf("counters %v", c)
	}

	got, _ := run(t, wordJob(), nil, 2)
	if want := map[string]string{"part-r-00000": "", "part-r-00001": ""}; !maps.Equal(got, want) {
		t.Errorf("no inputs: got %q", got)
	}
}

func TestRunSequentialTaskInfo(t *testing.T) {
	var infos []TaskInfo
	j := &Job{
		NewMapper: func(ti TaskInfo) (Mapper, error) {
			if infos = append(infos, ti); len(infos) == 1 {
				ti.Params["p"] = "changed by a task" // must not leak to other tasks
			}
			return MapperFunc(func(k, v []byte, out Emitter) error { return nil }), nil
		},
		NewReducer: func(ti TaskInfo) (Reducer, error) {
			infos = append(infos, ti)
			return countReducer(), nil
		},
	}
	params := map[string]string{"p": "v"}
	_, err := RunSequential(context.Background(), j, "job-7", params, inputs("/a", "", "/b", ""), 2, newMemFS().create)
	if err != nil {
		t.Fatal(err)
	}
	want := []TaskInfo{
		{JobID: "job-7", TaskID: "m-000000", InputFile: "/a"},
		{JobID: "job-7", TaskID: "m-000001", InputFile: "/b"},
		{JobID: "job-7", TaskID: "r-00000", Partition: 0},
		{JobID: "job-7", TaskID: "r-00001", Partition: 1},
	}
	if len(infos) != len(want) {
		t.Fatalf("got %d tasks, want %d", len(infos), len(want))
	}
	for i, ti := range infos {
		p := ti.Params
		ti.Params = nil
		if fmt.Sprint(ti) != fmt.Sprint(want[i]) {
			t.Errorf("task %d: got %+v, want %+v", i, ti, want[i])
		}
		if i > 0 && p["p"] != "v" {
			t.Errorf("task %d: params %v", i, p)
		}
	}
	if params["p"] != "v" {
		t.Error("a task changed the caller's params")
	}
}

// summer counts records in the mapper and emits once, at Close; its
// reducer sums and adds a trailer at Close.
type summer struct {
	n   int64
	buf []byte
}

func (s *summer) Map(_, _ []byte, _ Emitter) error { s.n++; return nil }

func (s *summer) Reduce(k []byte, vs Values, out Emitter) error {
	for v, ok := vs.Next(); ok; v, ok = vs.Next() {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return err
		}
		s.n += n
	}
	return nil
}

func (s *summer) Close(out Emitter) error {
	s.buf = strconv.AppendInt(s.buf[:0], s.n, 10)
	return out.Emit([]byte("lines"), s.buf)
}

func TestRunSequentialClosers(t *testing.T) {
	j := &Job{
		NewMapper:  func(TaskInfo) (Mapper, error) { return &summer{}, nil },
		NewReducer: func(TaskInfo) (Reducer, error) { return &summer{}, nil },
	}
	got, c := run(t, j, inputs("/a", "1\n2\n3\n", "/b", "x\n"), 1)
	if want := "lines\t4\n"; got["part-r-00000"] != want {
		t.Errorf("got %q, want %q", got["part-r-00000"], want)
	}
	if c.Get(MAP_OUTPUT_RECORDS) != 2 || c.Get(REDUCE_OUTPUT_RECORDS) != 1 {
		t.Errorf("counters %v", c)
	}
}

func TestRunSequentialValuesAreIsolated(t *testing.T) {
	// A reducer that appends to a value, or skips values, must not
	// disturb the values it reads next or the next group.
	j := wordJob()
	j.Input = KeyValueInput
	j.NewMapper = func(TaskInfo) (Mapper, error) {
		return MapperFunc(func(k, v []byte, out Emitter) error { return out.Emit(k, v) }), nil
	}
	j.NewReducer = func(TaskInfo) (Reducer, error) {
		return ReducerFunc(func(k []byte, vs Values, out Emitter) error {
			v1, _ := vs.Next()
			v1 = append(v1, "XXXX"...)
			v2, ok := vs.Next()
			if !ok {
				return out.Emit(k, v1)
			}
			return out.Emit(k, v2)
		}), nil
	}
	got, c := run(t, j, inputs("/a", "k\t1\nk\t2\nk\t3\nl\t4\n"), 1)
	if want := "k\t2\nl\t4XXXX\n"; got["part-r-00000"] != want {
		t.Errorf("got %q, want %q", got["part-r-00000"], want)
	}
	if c.Get(REDUCE_INPUT_RECORDS) != 4 || c.Get(REDUCE_INPUT_GROUPS) != 2 {
		t.Errorf("counters %v", c)
	}
}

func TestRunSequentialErrors(t *testing.T) {
	boom := errors.New("boom")
	failOn := func(line string, err error, panicking bool) func(TaskInfo) (Mapper, error) {
		return func(TaskInfo) (Mapper, error) {
			return MapperFunc(func(_, v []byte, out Emitter) error {
				if string(v) == line {
					if panicking {
						panic("kaboom")
					}
					return err
				}
				return out.Emit(v, nil)
			}), nil
		}
	}
	in := inputs("/in/a", "ok\n", "/in/b", "ok\nbad\n", "/x", "ok\nbad\n")
	tests := []struct {
		name   string
		modify func(j *Job, in []Input, fs *memFS)
		is     error
		panics bool
		msg    string
	}{
		{name: "map error", is: boom, msg: "map task m-000001 (input /in/b): boom",
			modify: func(j *Job, _ []Input, _ *memFS) { j.NewMapper = failOn("bad", boom, false) }},
		{name: "map panic", panics: true, msg: "map task m-000001 (input /in/b): panic: kaboom",
			modify: func(j *Job, _ []Input, _ *memFS) { j.NewMapper = failOn("bad", nil, true) }},
		{name: "new mapper error", is: boom, msg: "map task m-000000 (input /in/a): new mapper: boom",
			modify: func(j *Job, _ []Input, _ *memFS) {
				j.NewMapper = func(TaskInfo) (Mapper, error) { return nil, boom }
			}},
		{name: "new mapper panic", panics: true, msg: "map task m-000000 (input /in/a): new mapper: panic: no",
			modify: func(j *Job, _ []Input, _ *memFS) {
				j.NewMapper = func(TaskInfo) (Mapper, error) { panic("no") }
			}},
		{name: "nil mapper", msg: "map task m-000000 (input /in/a): new mapper: returned no mapper",
			modify: func(j *Job, _ []Input, _ *memFS) {
				j.NewMapper = func(TaskInfo) (Mapper, error) { return nil, nil }
			}},
		{name: "open error", is: boom, msg: "map task m-000002 (input /x): open input: boom",
			modify: func(_ *Job, in []Input, _ *memFS) {
				in[2].Open = func() (io.ReadCloser, error) { return nil, boom }
			}},
		{name: "reduce error", is: boom, msg: "reduce task r-00000: boom", // "bad" is in partition 0
			modify: func(j *Job, _ []Input, _ *memFS) {
				j.NewReducer = func(TaskInfo) (Reducer, error) {
					return ReducerFunc(func(k []byte, _ Values, _ Emitter) error {
						if string(k) == "bad" {
							return boom
						}
						return nil
					}), nil
				}
			}},
		{name: "reduce panic", panics: true, msg: "reduce task r-00000: panic: runtime error: index out of range [5] with length 3",
			modify: func(j *Job, _ []Input, _ *memFS) {
				j.NewReducer = func(TaskInfo) (Reducer, error) {
					return ReducerFunc(func(k []byte, _ Values, _ Emitter) error {
						i := 5
						_ = k[i]
						return nil
					}), nil
				}
			}},
		{name: "new reducer error", is: boom, msg: "reduce task r-00000: new reducer: boom",
			modify: func(j *Job, _ []Input, _ *memFS) {
				j.NewReducer = func(TaskInfo) (Reducer, error) { return nil, boom }
			}},
		{name: "partitioner out of range", msg: "map task m-000000 (input /in/a): partitioner returned 2 for 2 partitions",
			modify: func(j *Job, _ []Input, _ *memFS) {
				j.Partitioner = PartitionerFunc(func([]byte, int) int { return 2 })
			}},
		{name: "partitioner panic", panics: true, msg: "map task m-000000 (input /in/a): panic: part",
			modify: func(j *Job, _ []Input, _ *memFS) {
				j.Partitioner = PartitionerFunc(func([]byte, int) int { panic("part") })
			}},
		{name: "create error", msg: "reduce task r-00001: create part-r-00001: no space",
			modify: func(_ *Job, _ []Input, fs *memFS) { fs.failCreate = "part-r-00001" }},
		{name: "close error", msg: "reduce task r-00000: write part-r-00000: disk full",
			modify: func(_ *Job, _ []Input, fs *memFS) { fs.failClose = "part-r-00000" }},
		{name: "invalid job", msg: "run job j: job has no reducer and is not map-only",
			modify: func(j *Job, _ []Input, _ *memFS) { j.NewReducer = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := wordJob()
			in := slices.Clone(in)
			fs := newMemFS()
			tt.modify(j, in, fs)
			_, err := RunSequential(context.Background(), j, "j", nil, in, 2, fs.create)
			if err == nil || err.Error() != tt.msg {
				t.Fatalf("got %v, want %q", err, tt.msg)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%v does not wrap %v", err, tt.is)
			}
			var pe *PanicError
			if errors.As(err, &pe) != tt.panics {
				t.Errorf("%v: PanicError = %v, want %v", err, !tt.panics, tt.panics)
			}
			for name, open := range fs.open {
				if open {
					t.Errorf("%s left open", name)
				}
			}
		})
	}
}

func TestRunSequentialMapOnlyErrors(t *testing.T) {
	fs := newMemFS()
	fs.failClose = "part-m-00000"
	j := &Job{MapOnly: true, NewMapper: func(TaskInfo) (Mapper, error) {
		return MapperFunc(func(k, v []byte, out Emitter) error { return out.Emit(k, v) }), nil
	}}
	_, err := RunSequential(context.Background(), j, "j", nil, inputs("/a", "x\n"), 1, fs.create)
	if err == nil || err.Error() != "map task m-000000 (input /a): write part-m-00000: disk full" {
		t.Errorf("got %v", err)
	}
}

func TestRunSequentialCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := RunSequential(ctx, wordJob(), "j", nil, inputs("/a", "x\n"), 1, newMemFS().create)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled before: %v", err)
	}

	// Canceled by the mapper during a long input: the run notices.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	j := wordJob()
	j.NewMapper = func(TaskInfo) (Mapper, error) {
		return MapperFunc(func(_, _ []byte, _ Emitter) error { cancel(); return nil }), nil
	}
	fs := newMemFS()
	c, err := RunSequential(ctx, j, "j", nil, inputs("/a", strings.Repeat("x\n", 5000)), 1, fs.create)
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "map task m-000000 (input /a): ") {
		t.Errorf("canceled during: %v", err)
	}
	if n := c.Get(MAP_INPUT_RECORDS); n != ctxCheckEvery {
		t.Errorf("read %d records after the cancel, want it noticed at %d", n, ctxCheckEvery)
	}
}

func BenchmarkRunSequential(b *testing.B) {
	var sb strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&sb, "w%d the w%d of and a w%d\n", i%100, i%1000, i%7)
	}
	in := inputs("/a", sb.String())
	b.SetBytes(int64(sb.Len()))
	b.ReportAllocs()
	for b.Loop() {
		create := func(string) (io.WriteCloser, error) { return nopWriteCloser{io.Discard}, nil }
		if _, err := RunSequential(context.Background(), wordJob(), "j", nil, in, 4, create); err != nil {
			b.Fatal(err)
		}
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
